//! A catalog entry and GPU Deck's own file format for it (`gpudeck-catalog`, schema 1, YAML or
//! JSON; README "The catalog file format"), its validation on save, and the values a form gives
//! turned into an argv, env and binds.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::template::{ParamKind, Template};
use crate::image::ImageRef;
use crate::replicaset::Bind;
use crate::{CoreError, Result};

pub const SCHEMA: u32 = 1;
pub const FORMAT: &str = "gpudeck-catalog";

/// Text in both languages; one may fall back to the other.
#[derive(
    Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema, ts_rs::TS,
)]
pub struct I18n {
    #[serde(rename = "zh-CN", default, skip_serializing_if = "Option::is_none")]
    pub zh_cn: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub en: Option<String>,
}

impl I18n {
    pub fn get(&self, lang: &str) -> Option<&str> {
        let (a, b) = if lang.starts_with("zh") {
            (&self.zh_cn, &self.en)
        } else {
            (&self.en, &self.zh_cn)
        };
        a.as_deref().or(b.as_deref())
    }

    pub fn is_empty(&self) -> bool {
        self.zh_cn.is_none() && self.en.is_none()
    }
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema, ts_rs::TS,
)]
#[serde(rename_all = "lowercase")]
pub enum ParamType {
    String,
    Int,
    Float,
    Bool,
    Enum,
    Path,
    Secret,
}

/// One typed parameter of the command template.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema, ts_rs::TS)]
#[serde(rename_all = "camelCase")]
pub struct Param {
    pub name: String,
    pub kind: ParamKind,
    #[serde(rename = "type")]
    pub ty: ParamType,
    /// The form's control (`input`, `select`, `checkbox`, `number`, `folder`, `password`); by type when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub control: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<String>,
    #[serde(default)]
    pub required: bool,
    /// A regular expression the whole value must match (strings, paths).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pattern: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<String>,
    #[serde(default, skip_serializing_if = "I18n::is_empty")]
    pub display_name: I18n,
    #[serde(default, skip_serializing_if = "I18n::is_empty")]
    pub help: I18n,
    #[serde(default)]
    pub index: i32,
    /// A value that fills a whole argument may start with `-`.
    #[serde(default)]
    pub allow_dash: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema, ts_rs::TS)]
pub struct GpuRange {
    pub min: u32,
    pub max: u32,
    pub default: u32,
}

impl Default for GpuRange {
    fn default() -> Self {
        GpuRange {
            min: 0,
            max: 8,
            default: 1,
        }
    }
}

/// An entry, as GPU Deck's file format holds it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema, ts_rs::TS)]
#[serde(rename_all = "camelCase")]
pub struct Entry {
    pub name: String,
    #[serde(default)]
    pub version: String,
    pub image: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registry: Option<String>,
    #[serde(default)]
    pub display_name: I18n,
    #[serde(default)]
    pub description: I18n,
    #[serde(default)]
    pub group: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cover: Option<String>,
    #[serde(default)]
    pub price: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cuda_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub framework: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub framework_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    #[serde(default)]
    pub tasks: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_gpu_generation: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gpu_archs: Vec<String>,
    /// `16GB`, `80GiB` or bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_gpu_memory: Option<String>,
    #[serde(default)]
    pub cpu_only: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub licence: Option<String>,
    #[serde(default)]
    pub gpus: GpuRange,
    pub command: Vec<String>,
    #[serde(default)]
    pub params: Vec<Param>,
}

/// The file: `format: gpudeck-catalog`, `schema: 1`, `entries: [...]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CatalogFile {
    pub format: String,
    pub schema: u32,
    pub entries: Vec<Entry>,
}

fn bad(what: impl Into<String>, reason: impl Into<String>) -> CoreError {
    CoreError::InvalidInput {
        what: what.into(),
        reason: reason.into(),
    }
}

pub fn validate_name(name: &str) -> Result<()> {
    if name.trim().is_empty()
        || name.len() > 128
        || name.contains('/')
        || name.chars().any(char::is_control)
    {
        return Err(bad(
            format!("catalog entry name \"{}\"", name.escape_debug()),
            "use up to 128 characters, none of them '/' or a control character",
        ));
    }
    Ok(())
}

fn check_typed(p: &Param, v: &str) -> Result<String> {
    let what = || {
        format!(
            "{}.{} = \"{}\"",
            p.kind.placeholder_word(),
            p.name,
            v.escape_debug()
        )
    };
    if v.contains('\0') {
        return Err(bad(what(), "it holds a NUL character"));
    }
    let num_range = |x: f64| -> Result<()> {
        if p.min.is_some_and(|m| x < m) || p.max.is_some_and(|m| x > m) {
            return Err(bad(
                what(),
                format!(
                    "it must be between {} and {}",
                    p.min.map(|m| m.to_string()).unwrap_or("-∞".into()),
                    p.max.map(|m| m.to_string()).unwrap_or("∞".into())
                ),
            ));
        }
        Ok(())
    };
    let out = match p.ty {
        ParamType::Int => {
            let n: i64 = v
                .trim()
                .parse()
                .map_err(|_| bad(what(), "it is not a whole number"))?;
            num_range(n as f64)?;
            n.to_string()
        }
        ParamType::Float => {
            let x: f64 = v
                .trim()
                .parse()
                .map_err(|_| bad(what(), "it is not a number"))?;
            if !x.is_finite() {
                return Err(bad(what(), "it is not a finite number"));
            }
            num_range(x)?;
            x.to_string()
        }
        ParamType::Bool => match v.trim().to_lowercase().as_str() {
            "true" | "yes" | "1" | "on" => "true".into(),
            "false" | "no" | "0" | "off" => "false".into(),
            _ => return Err(bad(what(), "it is not true or false")),
        },
        ParamType::Enum => {
            if !p.options.iter().any(|o| o == v) {
                return Err(bad(
                    what(),
                    format!("it is not one of {}", p.options.join(", ")),
                ));
            }
            v.to_string()
        }
        ParamType::String | ParamType::Path | ParamType::Secret => v.to_string(),
    };
    if let Some(pat) = &p.pattern {
        let re = regex::Regex::new(&format!("^(?:{pat})$"))
            .map_err(|e| bad(format!("pattern of {}", p.name), e.to_string()))?;
        if !re.is_match(&out) {
            return Err(bad(what(), format!("it does not match {pat}")));
        }
    }
    Ok(out)
}

/// What an import changed to make an entry whole.
#[derive(Debug, Clone, Default, Serialize, Deserialize, schemars::JsonSchema, ts_rs::TS)]
#[serde(rename_all = "camelCase")]
pub struct Fixes {
    /// Placeholders that had no entry and got a required string one.
    pub added_params: Vec<String>,
}

impl Entry {
    /// Makes it whole on import: a placeholder without an entry gets a required string one (listed).
    pub fn complete(&mut self) -> Result<Fixes> {
        if self.command.is_empty() {
            return Ok(Fixes::default());
        }
        let t = Template::parse(&self.command)?;
        let mut fixes = Fixes::default();
        for (kind, name) in t.slots() {
            if !self.params.iter().any(|p| p.kind == kind && p.name == name) {
                fixes
                    .added_params
                    .push(format!("{}.{name}", kind.placeholder_word()));
                self.params.push(Param {
                    name,
                    kind,
                    ty: ParamType::String,
                    control: None,
                    default: None,
                    required: true,
                    pattern: None,
                    min: None,
                    max: None,
                    options: vec![],
                    display_name: I18n::default(),
                    help: I18n::default(),
                    index: self.params.len() as i32,
                    allow_dash: false,
                });
            }
        }
        Ok(fixes)
    }

    /// Saving validates everything: name, image, template, every placeholder's entry, types and
    /// defaults, enum options, GPU range.
    pub fn validate(&self) -> Result<Template> {
        validate_name(&self.name)?;
        ImageRef::parse(&self.image)?;
        // No command: the image's own runs (UFDL's entries have none).
        let t = if self.command.is_empty() {
            Template { args: vec![] }
        } else {
            Template::parse(&self.command)?
        };
        for (kind, name) in t.slots() {
            let p = self
                .params
                .iter()
                .find(|p| p.kind == kind && p.name == name)
                .ok_or_else(|| {
                    bad(
                        format!("{}.{name}", kind.placeholder_word()),
                        "the template uses it but no parameter entry describes it",
                    )
                })?;
            if p.ty == ParamType::Secret {
                return Err(bad(
                    format!("{}.{name}", kind.placeholder_word()),
                    "a secret goes only into the environment, never into the command line: remove it from the template (the container gets it as an environment variable)",
                ));
            }
        }
        let mut seen = std::collections::HashSet::new();
        for p in &self.params {
            let id = format!("{}.{}", p.kind.placeholder_word(), p.name);
            if !seen.insert(id.clone()) {
                return Err(bad(id, "two parameter entries have this name"));
            }
            if p.ty == ParamType::Enum && p.options.is_empty() {
                return Err(bad(id, "an enum needs options"));
            }
            if p.ty == ParamType::Secret && p.default.is_some() {
                return Err(bad(
                    id,
                    "a secret has no default (it would be stored in the catalog)",
                ));
            }
            if let Some(d) = &p.default {
                check_typed(p, d).map_err(|e| bad(format!("default of {id}"), e.to_string()))?;
            }
            if let Some(pat) = &p.pattern {
                regex::Regex::new(pat)
                    .map_err(|e| bad(format!("pattern of {id}"), e.to_string()))?;
            }
        }
        let g = &self.gpus;
        if !(g.min <= g.default && g.default <= g.max) {
            return Err(bad(
                "gpus",
                format!(
                    "min {} ≤ default {} ≤ max {} does not hold",
                    g.min, g.default, g.max
                ),
            ));
        }
        if self.cpu_only && g.min > 0 {
            return Err(bad("gpus", "a CPU-only entry needs no GPU: set min to 0"));
        }
        if let Some(m) = &self.min_gpu_memory {
            crate::volume::parse_size(m)?;
        }
        if self.price < 0.0 || !self.price.is_finite() {
            return Err(bad("price", "it must be zero or more"));
        }
        Ok(t)
    }
}

/// What a launch runs: the argv, the environment (secrets), the binds of path parameters.
#[derive(Debug, Clone, Default, Serialize, Deserialize, schemars::JsonSchema, ts_rs::TS)]
#[serde(rename_all = "camelCase")]
pub struct Rendered {
    pub argv: Vec<String>,
    /// `NAME=value`; secrets masked in what is shown.
    pub env: Vec<String>,
    pub binds: Vec<Bind>,
}

/// Where a path parameter's folder appears in the container.
pub fn container_path(kind: ParamKind, name: &str) -> String {
    format!("/mnt/gpudeck/{}/{name}", kind.placeholder_word())
}

/// Fills the template with `values` (`(kind, name) → text`, defaults for the rest). A path value
/// (a host folder or a volume name) is bound into the container (inputs read-only) and the argv
/// gets the container's path; a secret becomes the environment variable NAME (upper case).
/// With `mask`, secrets show as `••••`.
pub fn render(
    e: &Entry,
    values: &BTreeMap<(ParamKind, String), String>,
    mask: bool,
) -> Result<Rendered> {
    let t = e.validate()?;
    for (k, n) in values.keys() {
        if !e.params.iter().any(|p| p.kind == *k && p.name == *n) {
            return Err(bad(
                format!("{}.{n}", k.placeholder_word()),
                "the entry has no such parameter",
            ));
        }
    }
    let mut filled = BTreeMap::new();
    let mut out = Rendered::default();
    let mut params: Vec<&Param> = e.params.iter().collect();
    params.sort_by_key(|p| p.index);
    for p in params {
        let id = format!("{}.{}", p.kind.placeholder_word(), p.name);
        let raw = values
            .get(&(p.kind, p.name.clone()))
            .cloned()
            .or_else(|| p.default.clone());
        let Some(raw) = raw.filter(|v| !v.is_empty() || p.ty == ParamType::String) else {
            if p.required {
                return Err(bad(id, "it is required and has no value"));
            }
            filled.insert((p.kind, p.name.clone()), String::new());
            continue;
        };
        let v = check_typed(p, &raw)?;
        match p.ty {
            ParamType::Secret => {
                let var = p.name.to_uppercase();
                out.env
                    .push(format!("{var}={}", if mask { "••••" } else { v.as_str() }));
            }
            ParamType::Path => {
                let inside = container_path(p.kind, &p.name);
                out.binds.push(Bind {
                    src: v.clone(),
                    dest: inside.clone(),
                    read_only: p.kind == ParamKind::Input,
                });
                filled.insert((p.kind, p.name.clone()), inside);
            }
            _ => {
                filled.insert((p.kind, p.name.clone()), v);
            }
        }
    }
    out.argv = t.render(&filled, |k, n| {
        e.params
            .iter()
            .any(|p| p.kind == k && p.name == n && p.allow_dash)
    })?;
    Ok(out)
}

/// `KIND.NAME=VALUE` (`inputs.file=/data/x`, or `input.file`) → the key and value.
pub fn parse_set(s: &str) -> Result<((ParamKind, String), String)> {
    let (k, v) = s.split_once('=').ok_or_else(|| {
        bad(
            format!("--set {s}"),
            "write KIND.NAME=VALUE, e.g. inputs.file=/data/a.png",
        )
    })?;
    let (kind, name) = k.split_once('.').ok_or_else(|| {
        bad(
            format!("--set {s}"),
            "the name is KIND.NAME (inputs, outputs or configs)",
        )
    })?;
    let kind = match kind {
        "inputs" | "input" => ParamKind::Input,
        "outputs" | "output" => ParamKind::Output,
        "configs" | "config" => ParamKind::Config,
        _ => {
            return Err(bad(
                format!("--set {s}"),
                "KIND is inputs, outputs or configs",
            ))
        }
    };
    Ok(((kind, name.to_string()), v.to_string()))
}

/// Reads GPU Deck's file (YAML or JSON: JSON is YAML too).
pub fn read_file(text: &str) -> Result<CatalogFile> {
    let f: CatalogFile = if text.trim_start().starts_with('{') {
        serde_json::from_str(text).map_err(|e| bad("catalog file", e.to_string()))?
    } else {
        serde_yaml_ng::from_str(text).map_err(|e| bad("catalog file", e.to_string()))?
    };
    if f.format != FORMAT {
        return Err(bad(
            "catalog file",
            format!("its format is \"{}\", not \"{FORMAT}\"", f.format),
        ));
    }
    if f.schema > SCHEMA {
        return Err(bad(
            "catalog file",
            format!(
                "it is schema {}, newer than this GPU Deck reads ({SCHEMA}): update GPU Deck",
                f.schema
            ),
        ));
    }
    Ok(f)
}

/// Writes GPU Deck's file as pretty JSON (stable: the same entries give the same bytes).
pub fn write_json(entries: &[Entry]) -> String {
    let f = CatalogFile {
        format: FORMAT.into(),
        schema: SCHEMA,
        entries: entries.to_vec(),
    };
    serde_json::to_string_pretty(&f).unwrap_or_default() + "\n"
}

pub fn write_yaml(entries: &[Entry]) -> String {
    let f = CatalogFile {
        format: FORMAT.into(),
        schema: SCHEMA,
        entries: entries.to_vec(),
    };
    serde_yaml_ng::to_string(&f).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Entry {
        let text = r#"
format: gpudeck-catalog
schema: 1
entries:
  - name: 超分辨率 ESRGAN
    version: "1.0"
    image: 127.0.0.1:5000/lab/esrgan:1.0
    displayName: { zh-CN: 超分辨率, en: Super resolution }
    description: { en: Upscales images 4x }
    group: vision
    price: 0
    cudaVersion: "12.4"
    framework: pytorch
    tasks: [Predict]
    minGpuGeneration: Ampere
    gpus: { min: 1, max: 2, default: 1 }
    command: [python, run.py, "--in={{inputs.file}}", "--out={{outputs.dir}}", --scale, "{{configs.scale}}", --mode, "{{configs.mode}}", --fp16, "{{configs.fp16}}"]
    params:
      - { name: file, kind: input, type: path, required: true, index: 0, displayName: { zh-CN: 输入图片, en: Input image } }
      - { name: dir, kind: output, type: path, required: true, index: 1 }
      - { name: scale, kind: config, type: int, default: "4", min: 2, max: 8, index: 2 }
      - { name: mode, kind: config, type: enum, options: [fast, best], default: fast, index: 3 }
      - { name: fp16, kind: config, type: bool, default: "yes", index: 4 }
      - { name: hf_token, kind: config, type: secret, index: 5 }
"#;
        read_file(text).unwrap().entries.remove(0)
    }

    fn set(v: &[(&str, &str)]) -> BTreeMap<(ParamKind, String), String> {
        v.iter()
            .map(|(k, x)| parse_set(&format!("{k}={x}")).unwrap())
            .collect()
    }

    #[test]
    fn a_form_becomes_argv_env_and_binds() {
        let e = sample();
        e.validate().unwrap();
        let r = render(
            &e,
            &set(&[
                ("inputs.file", "/home/alice/in"),
                ("outputs.dir", "data"),
                ("configs.scale", " 04 "),
                ("configs.hf_token", "s3cret"),
            ]),
            true,
        )
        .unwrap();
        assert_eq!(
            r.argv,
            [
                "python",
                "run.py",
                "--in=/mnt/gpudeck/inputs/file",
                "--out=/mnt/gpudeck/outputs/dir",
                "--scale",
                "4",
                "--mode",
                "fast",
                "--fp16",
                "true"
            ]
        );
        assert_eq!(
            r.env,
            ["HF_TOKEN=••••"],
            "a secret only in the env, masked in the preview"
        );
        assert!(
            r.binds[0].read_only && !r.binds[1].read_only,
            "inputs read-only, outputs read-write"
        );
        let r = render(
            &e,
            &set(&[
                ("inputs.file", "/x"),
                ("outputs.dir", "/y"),
                ("configs.hf_token", "s3cret"),
            ]),
            false,
        )
        .unwrap();
        assert_eq!(r.env, ["HF_TOKEN=s3cret"]);
        assert!(!r.argv.iter().any(|a| a.contains("s3cret")));
        for (vals, why) in [
            (vec![("outputs.dir", "/y")], "required"),
            (
                vec![
                    ("inputs.file", "/x"),
                    ("outputs.dir", "/y"),
                    ("configs.scale", "9"),
                ],
                "between 2 and 8",
            ),
            (
                vec![
                    ("inputs.file", "/x"),
                    ("outputs.dir", "/y"),
                    ("configs.scale", "four"),
                ],
                "whole number",
            ),
            (
                vec![
                    ("inputs.file", "/x"),
                    ("outputs.dir", "/y"),
                    ("configs.mode", "slow"),
                ],
                "one of fast, best",
            ),
            (
                vec![
                    ("inputs.file", "/x"),
                    ("outputs.dir", "/y"),
                    ("configs.nope", "1"),
                ],
                "no such parameter",
            ),
        ] {
            let e2 = render(&e, &set(&vals), true).unwrap_err().to_string();
            assert!(e2.contains(why), "{vals:?}: {e2}");
        }
    }

    #[test]
    fn saving_validates() {
        let mut e = sample();
        e.params.retain(|p| p.name != "mode");
        assert!(e
            .validate()
            .unwrap_err()
            .to_string()
            .contains("no parameter entry"));
        let mut e = sample();
        e.params
            .iter_mut()
            .find(|p| p.name == "mode")
            .unwrap()
            .default = Some("slow".into());
        assert!(e
            .validate()
            .unwrap_err()
            .to_string()
            .contains("one of fast, best"));
        let mut e = sample();
        e.command.push("{{configs.hf_token}}".into());
        assert!(e
            .validate()
            .unwrap_err()
            .to_string()
            .contains("only into the environment"));
        let mut e = sample();
        e.gpus.default = 3;
        assert!(e.validate().unwrap_err().to_string().contains("≤ max"));
        let mut e = sample();
        e.name = "a/b".into();
        assert!(e.validate().is_err());
        let mut e = sample();
        e.image = "Bad:".into();
        assert!(e.validate().is_err());
    }

    #[test]
    fn export_import_export_is_byte_identical() {
        let e = sample();
        let once = write_json(std::slice::from_ref(&e));
        let back = read_file(&once).unwrap();
        assert_eq!(back.entries[0], e);
        assert_eq!(write_json(&back.entries), once);
        let y = write_yaml(std::slice::from_ref(&e));
        assert_eq!(read_file(&y).unwrap().entries[0], e);
        assert!(read_file("format: other\nschema: 1\nentries: []").is_err());
        assert!(
            read_file("format: gpudeck-catalog\nschema: 99\nentries: []")
                .unwrap_err()
                .to_string()
                .contains("newer")
        );
    }
}
