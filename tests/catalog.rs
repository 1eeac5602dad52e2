//! The catalog through the service and the CLI, against the real engine: import (GPU Deck's file,
//! Argon's payload), revisions, refusals that change nothing, filters, export → import → export,
//! and a launch whose container gets the rendered argv with an injection attempt as literal text
//! and the secret only in its environment.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use serde_json::Value;

fn write(dir: &std::path::Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.display().to_string()
}

fn entry_yaml(name: &str, version: &str) -> String {
    format!(
        r#"format: gpudeck-catalog
schema: 1
entries:
  - name: {name}
    version: "{version}"
    image: {TEST_IMAGE}
    displayName: {{ zh-CN: 回声, en: Echo }}
    framework: pytorch
    tasks: [Predict]
    cpuOnly: true
    gpus: {{ min: 0, max: 0, default: 0 }}
    command: [sh, -c, 'printf %s "$1" > "$2/result.txt"; printf %s "$TOKEN" > "$2/token.txt"; trap "exit 0" TERM; while true; do sleep 1; done', _, "{{{{inputs.msg}}}}", "{{{{outputs.dir}}}}"]
    params:
      - {{ name: msg, kind: input, type: string, required: true, index: 0, displayName: {{ zh-CN: 消息, en: Message }} }}
      - {{ name: dir, kind: output, type: path, required: true, index: 1 }}
      - {{ name: token, kind: config, type: secret, index: 2 }}
"#
    )
}

fn err(out: &std::process::Output) -> String {
    assert!(
        !out.status.success(),
        "should fail: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stderr).to_string()
}

#[test]
fn import_render_launch_and_refusals() {
    let fake = FakeNvml::new(1);
    let dir = tempfile::tempdir().unwrap();
    let name = unique("echo").replace('-', "");
    let f1 = write(dir.path(), "a.yaml", &entry_yaml(&name, "1.0"));
    let v = json(&fake.cli(&["catalog", "import", &f1, "--json"]));
    assert_eq!(v[0]["revision"], 1);
    let v = json(&fake.cli(&["catalog", "import", &f1, "--json"]));
    assert_eq!(v[0]["revision"], 1, "unchanged: no new revision");
    // An edit of the same name and version makes a revision (another version would be an
    // entry of its own, as UFDL keys images).
    let f2 = write(
        dir.path(),
        "b.yaml",
        &entry_yaml(&name, "1.0").replace("en: Echo", "en: Echo back"),
    );
    let v = json(&fake.cli(&["catalog", "import", &f2, "--json"]));
    assert_eq!(v[0]["revision"], 2, "an edit makes a revision");

    // A placeholder in a shell's script is refused on save, and nothing is saved.
    let bad = entry_yaml(&format!("{name}bad"), "1")
        .replace(r#""{{inputs.msg}}""#, "x")
        .replace("printf %s \\\"$1\\\"", "printf {{inputs.msg}}");
    let bad = bad.replace(
        r#"'printf %s "$1" > "$2/result.txt";"#,
        r#"'printf {{inputs.msg}} > "$2/result.txt";"#,
    );
    let fb = write(dir.path(), "bad.yaml", &bad);
    let e = err(&fake.cli(&["catalog", "import", &fb]));
    assert!(e.contains("positional parameter"), "{e}");
    assert!(err(&fake.cli(&["catalog", "show", &format!("{name}bad")])).contains("there is none"));

    // The preview: the value is one argument, literally; the secret masked, never in argv.
    let evil = "; rm -rf / $(id) `id`";
    let out_dir = dir.path().join("out");
    std::fs::create_dir_all(&out_dir).unwrap();
    let sets = [
        format!("inputs.msg={evil}"),
        format!("outputs.dir={}", out_dir.display()),
        "configs.token=s3cr3t-value".to_string(),
    ];
    let mut args = vec!["catalog", "render", &name, "--json"];
    for s in &sets {
        args.extend(["--set", s.as_str()]);
    }
    let r = json(&fake.cli(&args));
    assert_eq!(r["argv"][4], evil);
    assert_eq!(r["argv"][5], "/mnt/gpudeck/outputs/dir");
    assert_eq!(r["env"], serde_json::json!(["TOKEN=••••"]));
    assert!(!r.to_string().contains("s3cr3t-value"));

    // Launch: the container runs the argv; the injection is literal text in the file it wrote.
    let rs = unique("cat").replace('-', "");
    let mut args = vec!["catalog", "launch", &name, "--as", &rs, "--json"];
    for s in &sets {
        args.extend(["--set", s.as_str()]);
    }
    let info = json(&fake.cli(&args));
    assert_eq!(info["spec"]["command"][4], evil);
    let t0 = std::time::Instant::now();
    while !out_dir.join("token.txt").exists() {
        assert!(
            t0.elapsed().as_secs() < 20,
            "the container did not write its files"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    std::thread::sleep(std::time::Duration::from_millis(200));
    assert_eq!(
        std::fs::read_to_string(out_dir.join("result.txt")).unwrap(),
        evil
    );
    assert_eq!(
        std::fs::read_to_string(out_dir.join("token.txt")).unwrap(),
        "s3cr3t-value"
    );
    let inspect = docker_ok(&["inspect", "-f", "{{json .Args}}", &format!("{rs}-1")]);
    assert!(
        !inspect.contains("s3cr3t-value"),
        "the secret is not in argv: {inspect}"
    );

    // Delete is refused while it runs, naming it; allowed after.
    let e = err(&fake.cli(&["catalog", "rm", &name]));
    assert!(e.contains(&rs), "{e}");
    json(&fake.cli(&["rs", "rm", &rs, "--json"]));

    // Filters: a whitelist of fields, UFDL's expressions.
    let f = r#"{"expressions":[{"type":"exact","field":"framework","value":"PyTorch","case_insensitive":true},{"type":"exact","field":"tasks","value":"Predict"}]}"#;
    let ls = json(&fake.cli(&["catalog", "ls", "--filter", f, "--json"]));
    assert!(ls
        .as_array()
        .unwrap()
        .iter()
        .any(|i| i["record"]["entry"]["name"] == name.as_str()));
    assert_eq!(ls[0]["compat"]["status"], "ok", "CPU-only runs anywhere");
    let e = err(&fake.cli(&[
        "catalog",
        "ls",
        "--filter",
        r#"{"expressions":[{"type":"exact","field":"doc","value":"x"}]}"#,
    ]));
    assert!(e.contains("not a field"), "{e}");

    // Export → import → export is byte-identical.
    let one = fake.cli(&["catalog", "export", &name]);
    assert!(one.status.success());
    let fe = write(dir.path(), "e.json", &String::from_utf8_lossy(&one.stdout));
    json(&fake.cli(&["catalog", "import", &fe, "--json"]));
    let two = fake.cli(&["catalog", "export", &name]);
    assert_eq!(one.stdout, two.stdout);

    json(&fake.cli(&["catalog", "rm", &name, "--json"]));
    let ls: Value = json(&fake.cli(&["catalog", "ls", "--json"]));
    assert!(!ls.to_string().contains(&format!("\"{name}\"")));
    let all = json(&fake.cli(&[
        "catalog",
        "ls",
        "--filter",
        r#"{"include_inactive":true}"#,
        "--json",
    ]));
    assert!(all.to_string().contains(&name), "a delete is soft");
}

#[test]
fn argons_payload_imports_and_says_what_it_added() {
    let fake = FakeNvml::new(0);
    let dir = tempfile::tempdir().unwrap();
    let n = format!("转码{}", std::process::id());
    let text = format!(
        r#"{{"image": {{"name": "{n}", "displayName": "普通整片转码", "repository": "{TEST_IMAGE}", "price": "0",
        "command": ["python3 /main.py --task_id={{{{inputs.task_id}}}} --output={{{{outputs.output}}}} --format={{{{inputs.format}}}}"],
        "inputs": [{{"controls": "input", "default": "-", "displayName": "任务ID", "index": 0, "kind": "input", "name": "task_id", "type": "string"}}],
        "outputs": [{{"controls": "input", "default": "/data", "displayName": "输出", "index": 1, "kind": "output", "name": "output", "type": "string"}}]}}}}"#
    );
    let f = write(dir.path(), "argon.json", &text);
    // As documented, without --format: the payload's shape says it is Argon's.
    let v = json(&fake.cli(&["catalog", "import", &f, "--json"]));
    assert_eq!(v[0]["command"][0], "python3");
    assert_eq!(
        v[0]["fixes"]["addedParams"],
        serde_json::json!(["inputs.format"])
    );
    let item = json(&fake.cli(&["catalog", "show", &n, "--json"]));
    assert_eq!(
        item["record"]["entry"]["displayName"]["zh-CN"],
        "普通整片转码"
    );
    let e = err(&fake.cli(&["catalog", "render", &n]));
    assert!(e.contains("inputs.format") && e.contains("required"), "{e}");
    let r = json(&fake.cli(&[
        "catalog",
        "render",
        &n,
        "--set",
        "inputs.format=mp4",
        "--json",
    ]));
    assert_eq!(r["argv"][2], "--task_id=-");
}

#[test]
fn the_check_reads_the_images_own_cuda_version() {
    // The fake driver is 550.54.15, CUDA 12.4, one A100 (compute 8.0).
    let fake = FakeNvml::new(1);
    let dir = tempfile::tempdir().unwrap();
    let n = unique("cuda").replace('-', "");
    let img = format!("gpudeck-test/{n}:v1");
    let c = unique("cudaimg");
    docker_ok(&["create", "--name", &c, TEST_IMAGE, "true"]);
    docker_ok(&["commit", "--change", "ENV CUDA_VERSION=13.0.1", &c, &img]);
    docker_ok(&["rm", &c]);
    let text = format!(
        r#"{{"format":"gpudeck-catalog","schema":1,"entries":[
        {{"name":"{n}-ok","image":"{TEST_IMAGE}","cudaVersion":"12.4","minGpuGeneration":"Ampere","command":["true"]}},
        {{"name":"{n}-hopper","image":"{TEST_IMAGE}","cudaVersion":"12.4","minGpuGeneration":"Hopper","command":["true"]}},
        {{"name":"{n}-own","image":"{img}","command":["true"]}}]}}"#
    );
    let f = write(dir.path(), "c.json", &text);
    json(&fake.cli(&["catalog", "import", &f, "--json"]));
    let ok = fake.cli(&["catalog", "check", &format!("{n}-ok"), "--json"]);
    assert!(ok.status.success(), "{ok:?}");
    assert_eq!(json(&ok)["status"], "ok");
    let hopper = fake.cli(&["catalog", "check", &format!("{n}-hopper"), "--json"]);
    assert_eq!(hopper.status.code(), Some(3));
    let v: Value = serde_json::from_slice(&hopper.stdout).unwrap();
    assert_eq!(v["status"], "blocked");
    assert!(v["reasons"][0].as_str().unwrap().contains("Hopper"), "{v}");
    let own: Value = serde_json::from_slice(
        &fake
            .cli(&["catalog", "check", &format!("{n}-own"), "--json"])
            .stdout,
    )
    .unwrap();
    assert_eq!(own["status"], "blocked", "{own}");
    assert!(
        own["reasons"][0]
            .as_str()
            .unwrap()
            .contains("declares CUDA 13.0.1"),
        "{own}"
    );
    assert!(
        own["reasons"][1].as_str().unwrap().contains("580.65.06"),
        "{own}"
    );
    let _ = docker(&["rmi", &img]);
}

/// UFDL's own migration files (`migrations/docker_images/*.json`), imported as documented
/// (no --format): the registry object's url and the `license` spelling are kept, the password
/// never read; a file of no known shape names the flag to add; an `and` holding an `or` is
/// refused with UFDL's rule.
#[test]
fn ufdls_migration_files_import_without_a_format() {
    let fake = FakeNvml::new(0);
    let dir = tempfile::tempdir().unwrap();
    let n = format!("mmclass{}", std::process::id());
    let text = format!(
        r#"{{"name": "{n}", "version": "0.25.0", "url": "{TEST_IMAGE}",
        "registry": {{"url": "public.reg.lab:443", "user": "public", "password": "pw-{n}"}}, "cuda_version": "11.1",
        "framework": {{"name": "mmclass", "version": "0.25.0"}}, "domain": "ic", "tasks": ["Train", "Predict"],
        "min_hardware_generation": "Pascal", "cpu": false, "license": "Apache 2.0"}}"#
    );
    let f = write(dir.path(), "mmclassification-0.25.0.json", &text);
    let v = json(&fake.cli(&["catalog", "import", &f, "--json"]));
    assert_eq!(v[0]["name"], n.as_str(), "{v}");
    let item = json(&fake.cli(&["catalog", "show", &n, "--json"]));
    let e = &item["record"]["entry"];
    assert_eq!(e["registry"], "public.reg.lab:443", "{e}");
    assert_eq!(e["licence"], "Apache 2.0", "{e}");
    let exported = String::from_utf8(fake.cli(&["catalog", "export", &n]).stdout).unwrap();
    assert!(
        !exported.contains(&format!("pw-{n}")),
        "the password is never kept"
    );
    let filter = format!(
        r#"{{"expressions":[{{"type":"exact","field":"licence","value":"Apache 2.0"}},{{"type":"exact","field":"name","value":"{n}"}}]}}"#
    );
    let listed = json(&fake.cli(&["catalog", "ls", "--filter", &filter, "--json"]));
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");

    // UFDL keys an image by name and version: three versions of one name stay three entries,
    // and the filters see them all.
    let three: Vec<String> = ["0.23.1", "0.25.0", "0.9"]
        .iter()
        .map(|v| text.replace("\"0.25.0\", \"url\"", &format!("\"{v}\", \"url\"")))
        .collect();
    let f3 = write(dir.path(), "three.json", &format!("[{}]", three.join(",")));
    let v = json(&fake.cli(&["catalog", "import", &f3, "--json"]));
    assert_eq!(v.as_array().unwrap().len(), 3, "{v}");
    let by_name = format!(r#"{{"expressions":[{{"type":"exact","field":"name","value":"{n}"}}]}}"#);
    let listed = json(&fake.cli(&["catalog", "ls", "--filter", &by_name, "--json"]));
    let mut versions: Vec<String> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            i["record"]["entry"]["version"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    versions.sort();
    assert_eq!(versions, vec!["0.23.1", "0.25.0", "0.9"], "{listed}");
    let newer = format!(
        r#"{{"expressions":[{{"type":"exact","field":"name","value":"{n}"}},{{"type":"compare","field":"version","operator":">","value":"0.20"}}]}}"#
    );
    let listed = json(&fake.cli(&["catalog", "ls", "--filter", &newer, "--json"]));
    assert_eq!(
        listed.as_array().unwrap().len(),
        2,
        "versions compare as numbers: {listed}"
    );
    let one = json(&fake.cli(&["catalog", "show", &format!("{n}@0.9"), "--json"]));
    assert_eq!(one["record"]["entry"]["version"], "0.9");
    let newest = json(&fake.cli(&["catalog", "show", &n, "--json"]));
    assert_eq!(
        newest["record"]["entry"]["version"], "0.25.0",
        "a bare name is its newest"
    );
    let e = err(&fake.cli(&["catalog", "rm", &n]));
    assert!(e.contains("has the versions 0.9, 0.23.1, 0.25.0"), "{e}");
    assert!(fake
        .cli(&["catalog", "rm", &format!("{n}@0.9")])
        .status
        .success());
    let listed = json(&fake.cli(&["catalog", "ls", "--filter", &by_name, "--json"]));
    assert_eq!(listed.as_array().unwrap().len(), 2, "{listed}");

    let odd = write(dir.path(), "odd.json", r#"{"title": "not an image"}"#);
    let e = err(&fake.cli(&["catalog", "import", &odd]));
    assert!(
        e.contains("--format gpudeck") && e.contains("--format ufdl"),
        "{e}"
    );
    let and_or = r#"{"expressions":[{"type":"and","sub_expressions":[{"type":"exact","field":"cpu","value":true},{"type":"or","sub_expressions":[{"type":"exact","field":"name","value":"x"}]}]}]}"#;
    let e = err(&fake.cli(&["catalog", "ls", "--filter", and_or]));
    assert!(e.contains("an \"and\" cannot contain an \"or\""), "{e}");
}
