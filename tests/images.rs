//! Images and registries against real parts: the rig's Docker engine, and Debian's
//! `docker-registry` started here on 127.0.0.1 with bcrypt htpasswd auth and deletes enabled
//! (a second one without deletes for the 405 case). The password is chosen so that the
//! standard base64 of the engine's auth header holds '+' or '/': the push only works when
//! GPU Deck sends it URL-safe, as the engine decodes it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use base64::Engine as _;
use common::registry::{free_port, Registry};
use common::*;
use serde_json::Value;

/// A password whose auth header, in the standard alphabet, holds '+' or '/'.
fn tricky_password(user: &str, host: &str) -> String {
    for i in 0..1000 {
        let p = format!("s3cr?t>>{i}~~");
        let json = serde_json::json!({ "username": user, "password": p, "serveraddress": host });
        let std = base64::engine::general_purpose::STANDARD.encode(json.to_string());
        if std.contains('+') || std.contains('/') {
            return p;
        }
    }
    panic!("no tricky password found")
}

fn cli_in(fake: &FakeNvml, args: &[&str], stdin: Option<&str>) -> Output {
    let mut c = fake.cli_command(args);
    if let Some(s) = stdin {
        use std::io::Write;
        c.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = c.spawn().unwrap();
        child.stdin.take().unwrap().write_all(s.as_bytes()).unwrap();
        return child.wait_with_output().unwrap();
    }
    c.output().unwrap()
}

fn lines(out: &Output) -> Vec<Value> {
    assert!(
        out.status.success(),
        "failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

fn err(out: &Output) -> String {
    assert!(
        !out.status.success(),
        "should fail: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stderr).to_string()
}

/// Every file under `dir`, recursively.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut v = vec![];
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            v.extend(files(&p));
        } else {
            v.push(p);
        }
    }
    v
}

/// An image of two layers (the test image's and one more), named `name`.
fn two_layer_image(name: &str) {
    let c = unique("twolayer");
    docker_ok(&[
        "run",
        "--name",
        &c,
        TEST_IMAGE,
        "sh",
        "-c",
        "head -c 3000000 /dev/urandom > /payload",
    ]);
    docker_ok(&["commit", &c, name]);
    docker_ok(&["rm", &c]);
}

#[test]
fn bad_references_are_refused_before_anything_is_sent() {
    let fake = FakeNvml::new(0);
    for (r, why) in [
        ("Ubuntu", "upper-case"),
        ("ubuntu:", "tag after ':' is empty"),
        (":latest", "name before ':' is empty"),
        ("a/b:c:d", "more than one ':'"),
        ("", "empty"),
    ] {
        let e = err(&cli_in(&fake, &["image", "pull", r], None));
        assert!(e.contains(why), "{r}: {e}");
        assert_eq!(e.trim_end().lines().count(), 1, "{e}");
    }
    let e = err(&cli_in(&fake, &["image", "push", "--", "-x"], None));
    assert!(e.contains("starts with '-'"), "{e}");
    // Nothing was started.
    let jobs = json(&cli_in(&fake, &["image", "ls", "--json"], None));
    assert!(jobs.is_array());
    let out = cli_in(&fake, &["registry", "ls", "--json"], None);
    assert_eq!(json(&out), serde_json::json!([]));
}

#[test]
fn push_tags_info_pull_and_delete_through_a_registry_with_auth() {
    let fake = FakeNvml::new(0);
    let user = "lab";
    let port = free_port();
    let host = format!("127.0.0.1:{port}");
    let pass = tricky_password(user, &host);
    let _reg = Registry::start_on(port, Some((user, &pass)), true);
    let url = format!("http://{host}");

    // A wrong password is refused and nothing is stored.
    let e = err(&cli_in(
        &fake,
        &[
            "registry",
            "add",
            "lab",
            &url,
            "--user",
            user,
            "--password-stdin",
        ],
        Some("wrong\n"),
    ));
    assert!(e.contains("refused the user name and password"), "{e}");
    assert_eq!(
        json(&cli_in(&fake, &["registry", "ls", "--json"], None)),
        serde_json::json!([])
    );
    // The right one is taken, checked first.
    let added = json(&cli_in(
        &fake,
        &[
            "registry",
            "add",
            "lab",
            &url,
            "--user",
            user,
            "--password-stdin",
            "--json",
        ],
        Some(&format!("{pass}\n")),
    ));
    assert_eq!(added["host"], host);
    assert!(!added.to_string().contains(&pass));
    let ls = cli_in(&fake, &["registry", "ls", "--json"], None);
    assert!(!String::from_utf8_lossy(&ls.stdout).contains(&pass));
    assert_eq!(json(&ls)[0]["username"], user);

    // Push an image of two layers: per-layer events, then the digest.
    let image = format!("{host}/team/two-{}:v1", std::process::id());
    two_layer_image(&image);
    let repo = image
        .split_once('/')
        .unwrap()
        .1
        .rsplit_once(':')
        .unwrap()
        .0
        .to_string();
    let ev = lines(&cli_in(&fake, &["image", "push", &image, "--json"], None));
    let last = ev.last().unwrap();
    let digest = last["digest"].as_str().unwrap().to_string();
    assert!(digest.starts_with("sha256:"), "{last}");
    let layers: std::collections::HashSet<&str> =
        ev.iter().filter_map(|e| e["layer"].as_str()).collect();
    assert!(
        layers.len() >= 2,
        "per-layer events for both layers: {ev:?}"
    );
    assert!(
        ev.iter().any(|e| e["status"] == "Pushed"),
        "a layer was pushed: {ev:?}"
    );
    if containerd_store() {
        // That store reports a push's bytes only while a sample of its writers catches one
        // under way (seen in CI: both layers said only "Pushed"); each layer ends pushed.
        for l in &layers {
            let last = ev.iter().rfind(|e| e["layer"] == *l).unwrap();
            assert_eq!(last["status"], "Pushed", "{ev:?}");
        }
    } else {
        assert!(
            ev.iter()
                .any(|e| e["status"] == "Pushing" && e["total"].as_u64().unwrap_or(0) > 0),
            "bytes were counted: {ev:?}"
        );
    }

    // Tags, repositories, info.
    let tags = json(&cli_in(
        &fake,
        &["registry", "tags", "lab", &repo, "--json"],
        None,
    ));
    assert_eq!(tags, serde_json::json!(["v1"]));
    let repos = json(&cli_in(
        &fake,
        &["registry", "repos", "lab", "--json"],
        None,
    ));
    assert!(
        repos.as_array().unwrap().iter().any(|r| r == repo.as_str()),
        "{repos}"
    );
    let info = json(&cli_in(
        &fake,
        &["registry", "info", "lab", &format!("{repo}:v1"), "--json"],
        None,
    ));
    assert_eq!(info["digest"], digest.as_str());
    assert!(info["size"].as_u64().unwrap() > 1_000_000, "{info}");
    assert!(info["created"].as_str().is_some(), "{info}");
    assert_eq!(info["platforms"].as_array().unwrap().len(), 1);

    // A second push: every layer exists.
    let t0 = std::time::Instant::now();
    let again = lines(&cli_in(&fake, &["image", "push", &image, "--json"], None));
    eprintln!("second push: {:?}", t0.elapsed());
    assert!(again
        .iter()
        .filter(|e| e["layer"].is_string())
        .all(|e| e["status"] != "Pushing"));
    assert!(again.iter().any(|e| e["status"] == "Layer already exists"));
    assert_eq!(again.last().unwrap()["digest"], digest.as_str());

    // Pull it back: per-layer events, the same digest.
    docker_ok(&["rmi", &image]);
    let pulled = lines(&cli_in(&fake, &["image", "pull", &image, "--json"], None));
    if containerd_store() {
        // No extract phase there, and nothing per layer for blobs its content store still has
        // (an image removed keeps them): every layer it names ends downloaded.
        for e in pulled.iter().filter(|e| e["layer"].is_string()) {
            let last = pulled.iter().rfind(|x| x["layer"] == e["layer"]).unwrap();
            assert_eq!(last["status"], "Download complete", "{pulled:?}");
        }
    } else {
        assert!(
            pulled.iter().any(|e| e["status"] == "Pull complete"),
            "{pulled:?}"
        );
    }
    assert_eq!(pulled.last().unwrap()["digest"], digest.as_str());
    docker_ok(&["image", "inspect", &image]);

    // The password is in no file of the data folder (sealed), nor in any output so far.
    for f in files(&fake.data_dir()) {
        let bytes = std::fs::read(&f).unwrap_or_default();
        assert!(
            !String::from_utf8_lossy(&bytes).contains(&pass),
            "{} holds the password",
            f.display()
        );
    }
    for o in [&ev, &again, &pulled] {
        assert!(!format!("{o:?}").contains(&pass));
    }

    // Delete by digest, naming every tag that goes with it.
    docker_ok(&["tag", &image, &image.replace(":v1", ":v1-alias")]);
    lines(&cli_in(
        &fake,
        &[
            "image",
            "push",
            &image.replace(":v1", ":v1-alias"),
            "--json",
        ],
        None,
    ));
    let del = json(&cli_in(
        &fake,
        &["registry", "delete", "lab", &format!("{repo}:v1"), "--json"],
        None,
    ));
    assert_eq!(del["digest"], digest.as_str());
    let mut gone: Vec<String> = serde_json::from_value(del["tags"].clone()).unwrap();
    gone.sort();
    assert_eq!(gone, vec!["v1".to_string(), "v1-alias".to_string()]);
    let tags = cli_in(&fake, &["registry", "tags", "lab", &repo, "--json"], None);
    if tags.status.success() {
        assert!(!String::from_utf8_lossy(&tags.stdout).contains("\"v1\""));
    }

    // A registry with deletes disabled says so.
    let plain = Registry::start(None, false);
    let purl = format!("http://{}", plain.host());
    json(&cli_in(
        &fake,
        &["registry", "add", "plain", &purl, "--json"],
        None,
    ));
    let pimage = format!("{}/team/keep:v1", plain.host());
    docker_ok(&["tag", &image, &pimage]);
    lines(&cli_in(&fake, &["image", "push", &pimage, "--json"], None));
    let e = err(&cli_in(
        &fake,
        &["registry", "delete", "plain", "team/keep:v1"],
        None,
    ));
    assert!(e.contains("deletes are disabled"), "{e}");

    // Forgetting a registry forgets its password.
    cli_in(&fake, &["registry", "rm", "lab"], None);
    assert!(!String::from_utf8_lossy(
        &std::fs::read(fake.data_dir().join("registry-secrets.sealed")).unwrap_or_default()
    )
    .contains("\"lab\""));
    let _ = docker(&["rmi", &image, &pimage, &image.replace(":v1", ":v1-alias")]);
}

#[test]
fn an_image_a_replicaset_uses_is_not_removed_and_a_tag_is() {
    let fake = FakeNvml::new(0);
    let name = unique("imguse").replace('-', "");
    let tag = format!("gpudeck-test/{name}:v1");
    docker_ok(&["tag", TEST_IMAGE, &tag]);
    let out = fake.cli(&[
        "rs", "run", &name, "--image", &tag, "--json", "--", "sleep", "600",
    ]);
    json(&out);
    // The image now has two names: removing one is only an untag.
    let ls = json(&fake.cli(&["image", "ls", "--json"]));
    let mine = ls
        .as_array()
        .unwrap()
        .iter()
        .find(|i| {
            i["tags"]
                .as_array()
                .unwrap()
                .iter()
                .any(|t| t == tag.as_str())
        })
        .unwrap()
        .clone();
    assert!(mine["usedBy"]
        .as_array()
        .unwrap()
        .iter()
        .any(|u| u["replicaset"] == name.as_str()));
    let id = mine["id"].as_str().unwrap().to_string();
    let e = err(&fake.cli(&["image", "rm", &id]));
    assert!(e.contains(&format!("{name}-1")), "{e}");
    json(&fake.cli(&["image", "rm", &tag, "--json"]));
    docker_ok(&["image", "inspect", TEST_IMAGE]);
    // Inspect shows the layers and who uses it.
    let d = json(&fake.cli(&["image", "inspect", TEST_IMAGE, "--json"]));
    assert!(!d["layers"].as_array().unwrap().is_empty());
    assert!(d["image"]["usedBy"]
        .as_array()
        .unwrap()
        .iter()
        .any(|u| u["replicaset"] == name.as_str()));
    json(&fake.cli(&["rs", "rm", &name, "--json"]));
}

/// Jobs as the service lists them (root: every job).
fn jobs(fake: &FakeNvml) -> Vec<Value> {
    let out = Command::new("curl")
        .args(["-s", "--unix-socket"])
        .arg(fake.socket())
        .arg("http://gpudeck/v1/jobs")
        .output()
        .unwrap();
    serde_json::from_slice::<Value>(&out.stdout)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

#[test]
fn ending_the_cli_mid_pull_cancels_the_engines_pull() {
    use std::io::BufRead;
    let fake = FakeNvml::new(0);
    let reg = Registry::start(None, true);
    json(&cli_in(
        &fake,
        &[
            "registry",
            "add",
            "big",
            &format!("http://{}", reg.host()),
            "--json",
        ],
        None,
    ));
    let image = format!("{}/team/big-{}:v1", reg.host(), std::process::id());
    let c = unique("big");
    docker_ok(&[
        "run",
        "--name",
        &c,
        TEST_IMAGE,
        "sh",
        "-c",
        "for i in 1 2 3 4; do head -c 60000000 /dev/urandom > /f$i; done",
    ]);
    docker_ok(&["commit", &c, &image]);
    docker_ok(&["rm", &c]);
    lines(&cli_in(&fake, &["image", "push", &image, "--json"], None));
    docker_ok(&["rmi", &image]);

    let mut child = fake
        .cli_command(&["image", "pull", &image, "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut first = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert!(first.contains("phase"), "{first}");
    child.kill().unwrap();
    let _ = child.wait();
    let t0 = std::time::Instant::now();
    let state = loop {
        let j = jobs(&fake)
            .into_iter()
            .find(|j| j["kind"] == "pull" && j["image"] == image.as_str())
            .unwrap();
        if j["state"] != "running" || t0.elapsed().as_secs() > 20 {
            break j["state"].clone();
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    assert_eq!(state, "cancelled");
    // The engine stopped too: the image never arrives.
    std::thread::sleep(std::time::Duration::from_secs(2));
    assert!(!docker(&["image", "inspect", &image]).status.success());
}

#[test]
fn commit_and_push_is_one_job_in_two_phases() {
    let fake = FakeNvml::new(0);
    let reg = Registry::start(None, true);
    json(&cli_in(
        &fake,
        &[
            "registry",
            "add",
            "cp",
            &format!("http://{}", reg.host()),
            "--json",
        ],
        None,
    ));
    let name = unique("cpush").replace('-', "");
    json(&fake.cli(&[
        "rs",
        "run",
        &name,
        "--image",
        TEST_IMAGE,
        "--json",
        "--",
        "sh",
        "-c",
        "echo made > /made; sleep 600",
    ]));
    let image = format!("{}/team/{name}:v1", reg.host());
    let ev = lines(&fake.cli(&["rs", "commit", &name, &image, "--push", "--json"]));
    let phases: Vec<&str> = ev.iter().filter_map(|e| e["phase"].as_str()).collect();
    assert_eq!(phases.first(), Some(&"commit"), "{ev:?}");
    assert!(phases.contains(&"push"), "{ev:?}");
    let digest = ev.last().unwrap()["digest"].as_str().unwrap().to_string();
    let info = json(&cli_in(
        &fake,
        &[
            "registry",
            "info",
            "cp",
            &format!("team/{name}:v1"),
            "--json",
        ],
        None,
    ));
    assert_eq!(info["digest"], digest.as_str());
    // The commit is on the replicaSet's timeline.
    let hist = json(&fake.cli(&["rs", "history", &name, "--json"]));
    assert!(hist.to_string().contains(&image), "{hist}");
    json(&fake.cli(&["rs", "rm", &name, "--json"]));
    let _ = docker(&["rmi", &image]);
}
