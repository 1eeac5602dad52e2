//! Importing entries from the two systems the catalog joins: Argon's image-create payload (its
//! strings are zh-CN; its command one string, split once here) and UFDL's Docker-image JSON
//! (CUDA, framework, hardware generation, CPU-only, licence; no command: the image's own runs).
//! UFDL's registry password is never read into GPU Deck.

use serde_json::Value;

use super::entry::{Entry, GpuRange, I18n, Param, ParamType};
use super::template::{split_command, ParamKind};
use super::ImportFormat;
use crate::{CoreError, Result};

/// Which of the three formats `text` is in, told from its shape: GPU Deck's file says
/// `format:`; Argon's payload is an `image` object (or the inner object) with a `repository`;
/// UFDL's image JSON is an object, or an array of them, with a `url`. `None` when it is none
/// of these (the caller names the flag to add).
pub fn detect(text: &str) -> Option<ImportFormat> {
    let v: Value = serde_json::from_str(text)
        .ok()
        .or_else(|| serde_yaml_ng::from_str(text).ok())?;
    let has = |o: &Value, k: &str| o.get(k).is_some_and(|x| !x.is_null());
    if has(&v, "format") {
        return Some(ImportFormat::Gpudeck);
    }
    if v.get("image").is_some_and(|i| has(i, "repository")) || has(&v, "repository") {
        return Some(ImportFormat::Argon);
    }
    let ufdl = |o: &Value| o.is_object() && has(o, "url") && has(o, "name");
    match &v {
        Value::Array(a) if !a.is_empty() && a.iter().all(ufdl) => Some(ImportFormat::Ufdl),
        o if ufdl(o) => Some(ImportFormat::Ufdl),
        _ => None,
    }
}

fn bad(reason: impl Into<String>) -> CoreError {
    CoreError::InvalidInput {
        what: "import".into(),
        reason: reason.into(),
    }
}

fn s(v: &Value, k: &str) -> Option<String> {
    match v.get(k)? {
        Value::String(x) if !x.is_empty() => Some(x.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn zh(v: Option<String>) -> I18n {
    I18n { zh_cn: v, en: None }
}

fn param_type(t: &str) -> ParamType {
    match t.to_lowercase().as_str() {
        "int" | "integer" => ParamType::Int,
        "number" | "float" | "double" => ParamType::Float,
        "bool" | "boolean" => ParamType::Bool,
        "enum" | "select" => ParamType::Enum,
        "path" | "file" | "dir" | "folder" => ParamType::Path,
        "secret" | "password" => ParamType::Secret,
        _ => ParamType::String,
    }
}

/// Argon's `{"image": {...}}` (or the inner object). The command string is split once; the
/// caller shows the argv for confirmation.
pub fn from_argon(text: &str) -> Result<Entry> {
    let v: Value = serde_json::from_str(text).map_err(|e| bad(format!("not Argon's JSON: {e}")))?;
    let img = v.get("image").unwrap_or(&v);
    let name = s(img, "name").ok_or_else(|| bad("Argon's image has no name"))?;
    let image = s(img, "repository").ok_or_else(|| bad("Argon's image has no repository"))?;
    let command = match img.get("command") {
        Some(Value::Array(a)) if a.len() == 1 => split_command(a[0].as_str().unwrap_or_default())?,
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(|x| x.as_str().map(str::to_string))
            .collect(),
        Some(Value::String(c)) => split_command(c)?,
        _ => vec![],
    };
    let mut params = Vec::new();
    for (section, kind) in [
        ("inputs", ParamKind::Input),
        ("outputs", ParamKind::Output),
        ("configs", ParamKind::Config),
    ] {
        for p in img
            .get(section)
            .and_then(|x| x.as_array())
            .into_iter()
            .flatten()
        {
            let Some(pname) = s(p, "name") else { continue };
            let ty = param_type(&s(p, "type").unwrap_or_default());
            params.push(Param {
                name: pname,
                kind,
                ty,
                control: s(p, "controls").or_else(|| s(p, "control")),
                default: if ty == ParamType::Secret {
                    None
                } else {
                    s(p, "default")
                },
                required: p.get("required").and_then(|r| r.as_bool()).unwrap_or(false),
                pattern: None,
                min: None,
                max: None,
                options: p
                    .get("options")
                    .and_then(|o| o.as_array())
                    .map(|a| {
                        a.iter()
                            .filter_map(|x| x.as_str().map(str::to_string))
                            .collect()
                    })
                    .unwrap_or_default(),
                display_name: zh(s(p, "displayName")),
                help: zh(s(p, "description")),
                index: p.get("index").and_then(|i| i.as_i64()).unwrap_or(0) as i32,
                allow_dash: false,
            });
        }
    }
    Ok(Entry {
        name,
        version: s(img, "version").unwrap_or_default(),
        image,
        registry: None,
        display_name: zh(s(img, "displayName")),
        description: zh(s(img, "description")),
        group: s(img, "group").unwrap_or_default(),
        cover: s(img, "cover"),
        price: s(img, "price").and_then(|p| p.parse().ok()).unwrap_or(0.0),
        cuda_version: None,
        framework: None,
        framework_version: None,
        domain: None,
        tasks: vec![],
        min_gpu_generation: None,
        gpu_archs: vec![],
        min_gpu_memory: None,
        cpu_only: false,
        licence: None,
        gpus: GpuRange::default(),
        command,
        params,
    })
}

/// A UFDL field that may be a string, a number, or an object with a name/version.
fn named(v: &Value, k: &str, inner: &[&str]) -> Option<String> {
    match v.get(k)? {
        Value::String(x) if !x.is_empty() => Some(x.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Object(o) => inner.iter().find_map(|i| match o.get(*i)? {
            Value::String(x) if !x.is_empty() => Some(x.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        }),
        _ => None,
    }
}

/// UFDL's Docker-image JSON (one object, or an array of them).
pub fn from_ufdl(text: &str) -> Result<Vec<Entry>> {
    let v: Value = serde_json::from_str(text).map_err(|e| bad(format!("not UFDL's JSON: {e}")))?;
    let items = match v {
        Value::Array(a) => a,
        o => vec![o],
    };
    items
        .iter()
        .map(|i| {
            let name = s(i, "name").ok_or_else(|| bad("a UFDL image has no name"))?;
            let image =
                s(i, "url").ok_or_else(|| bad(format!("UFDL image \"{name}\" has no url")))?;
            let cpu = i.get("cpu").and_then(|c| c.as_bool()).unwrap_or(false);
            Ok(Entry {
                name,
                version: s(i, "version").unwrap_or_default(),
                image,
                // The API's `registry_url`, its documents' `registry`, or the migration files'
                // `registry: {url, user, password}` (only the url is read).
                registry: s(i, "registry_url").or_else(|| named(i, "registry", &["url"])),
                display_name: I18n::default(),
                description: I18n::default(),
                group: String::new(),
                cover: None,
                price: 0.0,
                cuda_version: named(i, "cuda_version", &["version", "name"]),
                framework: named(i, "framework", &["name"]),
                framework_version: i.get("framework").and_then(|f| named(f, "version", &[])),
                domain: named(i, "domain", &["name", "description"]),
                tasks: i
                    .get("tasks")
                    .and_then(|t| t.as_array())
                    .map(|a| {
                        a.iter()
                            .filter_map(|x| x.as_str().map(str::to_string))
                            .collect()
                    })
                    .unwrap_or_default(),
                min_gpu_generation: named(
                    i,
                    "min_hardware_generation",
                    &["min_compute_capability", "name"],
                ),
                gpu_archs: vec![],
                min_gpu_memory: None,
                cpu_only: cpu,
                licence: named(i, "licence", &["name"]).or_else(|| named(i, "license", &["name"])),
                gpus: if cpu {
                    GpuRange {
                        min: 0,
                        max: 0,
                        default: 0,
                    }
                } else {
                    GpuRange::default()
                },
                command: vec![],
                params: vec![],
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argons_example_as_json() {
        let text = r#"{"image": {
            "command": ["python3 /home/mediacloud/main_transcode.py --task_id={{inputs.task_id}} --log_path={{configs.log_path}} --output={{outputs.output}} --format={{inputs.format}}"],
            "configs": [{"controls": "input", "default": "/data/y/argon/workdir/default/cache_path", "displayName": "日志路径", "index": 8, "kind": "config", "name": "log_path", "type": "string"}],
            "description": "普通整片转码", "displayName": "普通整片转码",
            "inputs": [{"controls": "input", "default": "-", "displayName": "任务ID", "index": 0, "kind": "input", "name": "task_id", "type": "string"}],
            "name": "普通整片转码",
            "outputs": [{"controls": "input", "default": "/data/y/argon/data_path", "displayName": "输出文件路径", "index": 6, "kind": "output", "name": "output", "type": "string"}],
            "price": "0", "repository": "registry.lab/media/transcode:1.2", "group": "media"
        }}"#;
        let mut e = from_argon(text).unwrap();
        assert_eq!(e.name, "普通整片转码");
        assert_eq!(e.command[0], "python3");
        assert_eq!(e.command.len(), 6);
        assert_eq!(
            e.display_name.get("en"),
            Some("普通整片转码"),
            "falls back to zh-CN"
        );
        let fixes = e.complete().unwrap();
        assert_eq!(fixes.added_params, vec!["inputs.format".to_string()]);
        e.validate().unwrap();
    }

    #[test]
    fn ufdl_images() {
        let text = r#"[{"pk": 1, "name": "pytorch-1.9", "version": "1", "url": "pytorch/pytorch:1.9.0-cuda11.1-cudnn8-runtime",
            "registry_url": "https://index.docker.io", "registry_username": null, "registry_password": "hunter2",
            "cuda_version": {"version": "11.1", "full_version": "11.1.105", "min_driver_version": "455.23"},
            "framework": {"name": "pytorch", "version": "1.9"}, "domain": "Image Classification",
            "tasks": ["Train", "Predict"], "min_hardware_generation": {"name": "Pascal", "min_compute_capability": 6.0},
            "cpu": false, "licence": "BSD"},
            {"name": "sk", "version": "2", "url": "lab/sklearn:2", "cpu": true, "tasks": ["Train"], "licence": {"name": "MIT"}}]"#;
        let v = from_ufdl(text).unwrap();
        assert_eq!(v[0].cuda_version.as_deref(), Some("11.1"));
        assert_eq!(v[0].framework.as_deref(), Some("pytorch"));
        assert_eq!(v[0].framework_version.as_deref(), Some("1.9"));
        assert_eq!(v[0].min_gpu_generation.as_deref(), Some("6.0"));
        assert!(
            !format!("{v:?}").contains("hunter2"),
            "the registry password is never read"
        );
        assert!(v[1].cpu_only);
        assert_eq!(v[1].licence.as_deref(), Some("MIT"));
        for e in &v {
            e.validate().unwrap();
        }
    }

    /// The shape of UFDL's own migration files (`migrations/docker_images/*.json`): `registry`
    /// is an object with the url and credentials, the licence is spelled `license`, and an empty
    /// generation means none.
    #[test]
    fn ufdl_migration_files() {
        let text = r#"{"name": "mmclassification", "version": "0.25.0", "url": "reg.lab:443/wdm/mmclassification:0.25.0_cuda11.1",
            "registry": {"url": "reg.lab:443", "user": "public", "password": "s3cret"}, "cuda_version": "11.1",
            "framework": {"name": "mmclass", "version": "0.25.0"}, "domain": "ic", "tasks": ["Train", "Predict"],
            "min_hardware_generation": "", "cpu": false, "license": "Apache 2.0"}"#;
        let v = from_ufdl(text).unwrap();
        assert_eq!(v[0].registry.as_deref(), Some("reg.lab:443"));
        assert_eq!(v[0].licence.as_deref(), Some("Apache 2.0"));
        assert_eq!(v[0].min_gpu_generation, None);
        assert!(!format!("{v:?}").contains("s3cret"));
        v[0].validate().unwrap();
    }

    #[test]
    fn formats_are_told_apart() {
        assert_eq!(
            detect("format: gpudeck-catalog\nschema: 1\nentries: []\n"),
            Some(ImportFormat::Gpudeck)
        );
        assert_eq!(
            detect(r#"{"image": {"name": "x", "repository": "r/x:1"}}"#),
            Some(ImportFormat::Argon)
        );
        assert_eq!(
            detect(r#"{"name": "x", "repository": "r/x:1"}"#),
            Some(ImportFormat::Argon)
        );
        assert_eq!(
            detect(r#"[{"name": "x", "version": "1", "url": "r/x:1"}]"#),
            Some(ImportFormat::Ufdl)
        );
        assert_eq!(
            detect(r#"{"name": "x", "url": "r/x:1"}"#),
            Some(ImportFormat::Ufdl)
        );
        assert_eq!(detect(r#"{"name": "x"}"#), None);
        assert_eq!(detect("[]"), None);
        assert_eq!(detect("{not json"), None);
    }
}
