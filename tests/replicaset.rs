//! ReplicaSets end to end through the `gpudeck rs` CLI, against the real Docker engine, the fake
//! NVML (8 GPUs) and the stand-in NVIDIA hook: the seed scenario, and the reference system's
//! failure modes.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashSet;
use std::process::Output;

use common::*;
use serde_json::Value;

/// A container command that stops at once on SIGTERM (so stop and patch do not wait 10 s).
const IDLE: &[&str] = &[
    "--",
    "sh",
    "-c",
    "trap 'exit 0' TERM; while true; do sleep 1; done",
];

fn name(prefix: &str) -> String {
    unique(prefix).replace('-', "")
}

struct Rig {
    fake: FakeNvml,
}

impl Rig {
    fn new(gpus: usize) -> Rig {
        Rig {
            fake: FakeNvml::new(gpus),
        }
    }

    fn run(&self, args: &[&str]) -> Output {
        self.fake.cli(args)
    }

    fn ok(&self, args: &[&str]) -> Value {
        let mut a = args.to_vec();
        a.push("--json");
        // `--json` must come before a trailing `-- CMD`.
        if let Some(i) = a.iter().position(|x| *x == "--") {
            let j = a.pop().unwrap();
            a.insert(i, j);
        }
        json(&self.run(&a))
    }

    fn fail(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            !out.status.success(),
            "{args:?} should fail: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        let err = String::from_utf8_lossy(&out.stderr).to_string();
        assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
        err
    }

    fn sh(&self, rs: &str, script: &str) -> Value {
        self.ok(&["rs", "exec", rs, "--", "sh", "-c", script])
    }

    fn gpus_of(v: &Value) -> Vec<String> {
        v["gpus"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| g.as_str().unwrap().to_string())
            .collect()
    }

    fn run_rs(&self, rs: &str, extra: &[&str]) -> Value {
        let mut a = vec!["rs", "run", rs, "--image", TEST_IMAGE];
        a.extend_from_slice(extra);
        a.extend_from_slice(IDLE);
        self.ok(&a)
    }

    fn environ(&self, rs: &str) -> String {
        self.sh(rs, "tr '\\0' '\\n' </proc/1/environ")["stdout"]
            .as_str()
            .unwrap()
            .to_string()
    }

    fn cleanup(&self, rs: &str) {
        let _ = self.run(&["rs", "rm", rs]);
    }
}

fn ports_of(v: &Value) -> Vec<u64> {
    v["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p[1].as_u64().unwrap())
        .collect()
}

#[test]
fn seed_scenario_run_commit_patch_rollback_stop_restart_exec_delete() {
    let rig = Rig::new(8);
    let foo = name("foo");
    let data = rig.fake.dir.path().join("shared");
    std::fs::create_dir_all(&data).unwrap();
    let bind = format!("{}:/data", data.display());

    let v1 = rig.run_rs(
        &foo,
        &[
            "--gpus", "3", "--bind", &bind, "--env", "USER=foo", "--port", "22", "--port", "443",
        ],
    );
    assert_eq!(v1["version"], 1);
    assert_eq!(v1["container"], format!("{foo}-1"));
    assert_eq!(v1["status"], "running");
    let g1 = Rig::gpus_of(&v1);
    assert_eq!(g1.iter().collect::<HashSet<_>>().len(), 3);
    let p1 = ports_of(&v1);
    assert_eq!(p1.len(), 2);
    assert!(p1.iter().all(|p| (41000..=61000).contains(p)) && p1[0] != p1[1]);
    let env = rig.environ(&foo);
    let visible: HashSet<&str> = env
        .lines()
        .find_map(|l| l.strip_prefix("NVIDIA_VISIBLE_DEVICES="))
        .unwrap()
        .split(',')
        .collect();
    assert_eq!(visible, g1.iter().map(String::as_str).collect());
    assert!(
        env.contains("USER=foo") && env.contains("CONTAINER_VERSION=1"),
        "{env}"
    );

    // Files of every kind, and a deletion from the image.
    let w = rig.sh(&foo, "mkdir -p /work && echo hello > /work/f && ln /work/f /work/hard && ln -s /work/f /work/sym && chown 1234:99 /work/f && chmod 640 /work/f && rm /bin/vi && echo shared > /data/s");
    assert_eq!(w["exitCode"], 0, "{w}");
    let check = "cat /work/f; stat -c '%h %u:%g %a' /work/f; readlink /work/sym; test -e /bin/vi && echo vi-back || echo vi-gone";
    let expect = "hello\n2 1234:99 640\n/work/f\nvi-gone\n";

    let image = format!("lab/{foo}:v1");
    let c = rig.ok(&["rs", "commit", &foo, &image, "--message", "first"]);
    assert_eq!(c["image"], image.as_str());
    docker_ok(&["image", "inspect", &image]);

    let v2 = rig.ok(&["rs", "patch", &foo, "--gpus", "1"]);
    assert_eq!(
        (v2["version"].as_u64(), Rig::gpus_of(&v2).len()),
        (Some(2), 1)
    );
    assert_eq!(ports_of(&v2), p1, "host ports are kept across versions");
    assert_eq!(rig.sh(&foo, check)["stdout"], expect);
    assert!(
        docker(&["inspect", &format!("{foo}-1")]).status.code() != Some(0),
        "the old container is gone"
    );

    let v3 = rig.ok(&["rs", "rollback", &foo, "1"]);
    assert_eq!(
        (v3["version"].as_u64(), Rig::gpus_of(&v3).len()),
        (Some(3), 3)
    );
    assert_eq!(rig.sh(&foo, check)["stdout"], expect);
    assert!(rig.environ(&foo).contains("CONTAINER_VERSION=3"));

    let h = rig.ok(&["rs", "history", &foo]);
    let ops: Vec<&str> = h
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["op"].as_str().unwrap())
        .collect();
    assert_eq!(ops, vec!["run", "patch", "rollback 1"]);
    assert_eq!(
        h[1]["changes"][0],
        serde_json::json!({"kind": "gpus", "from": 3, "to": 1})
    );

    let s = rig.ok(&["rs", "stop", &foo]);
    assert_eq!(s["status"], "stopped");
    let ports = rig.ok(&["ports"]);
    assert!(
        ports["used"]
            .as_array()
            .unwrap()
            .iter()
            .all(|u| u["owner"] != foo.as_str()),
        "{ports}"
    );
    let s2 = rig.ok(&["rs", "stop", &foo]);
    assert_eq!(s2["status"], "stopped");

    let r = rig.ok(&["rs", "restart", &foo]);
    assert_eq!(
        (r["version"].as_u64(), r["status"].as_str()),
        (Some(4), Some("running"))
    );
    assert_eq!(
        rig.sh(&foo, check)["stdout"],
        expect,
        "restart carries the files of a stopped version"
    );

    let e = rig.sh(&foo, "echo out; echo err >&2; exit 3");
    assert_eq!(
        (
            e["exitCode"].as_i64(),
            e["stdout"].as_str(),
            e["stderr"].as_str()
        ),
        (Some(3), Some("out\n"), Some("err\n"))
    );

    rig.ok(&["rs", "rm", &foo]);
    assert!(docker_ok(&[
        "ps",
        "-aq",
        "--filter",
        &format!("label=gpudeck.replicaset={foo}")
    ])
    .is_empty());
    let err = rig.fail(&["rs", "info", &foo]);
    assert!(
        err.contains(&format!("No replicaSet is named \"{foo}\"")),
        "{err}"
    );
    let _ = docker(&["rmi", &image]);
}

#[test]
fn bad_input_is_refused_and_changes_nothing() {
    let rig = Rig::new(2);
    for (args, says) in [
        (
            vec!["rs", "run", "Bad-Name", "--image", TEST_IMAGE],
            "lowercase letters",
        ),
        (
            vec!["rs", "run", "okname", "--image", "gpudeck-test/nope:none"],
            "is not on this machine",
        ),
        (
            vec![
                "rs",
                "run",
                "okname",
                "--image",
                TEST_IMAGE,
                "--bind",
                "/etc:/host-etc",
            ],
            "system path",
        ),
        (
            vec![
                "rs", "run", "okname", "--image", TEST_IMAGE, "--bind", "/tmp:/",
            ],
            "not allowed",
        ),
        (
            vec![
                "rs", "run", "okname", "--image", TEST_IMAGE, "--env", "NOEQ",
            ],
            "KEY=VALUE",
        ),
        (
            vec!["rs", "run", "okname", "--image", TEST_IMAGE, "--gpus", "3"],
            "3 GPU(s) requested, 2 free",
        ),
    ] {
        let err = rig.fail(&args);
        assert!(err.contains(says), "{args:?}: {err}");
    }
    assert!(docker_ok(&["ps", "-aq", "--filter", "label=gpudeck.replicaset=okname"]).is_empty());
    assert_eq!(rig.ok(&["rs", "ls"]).as_array().unwrap().len(), 0);

    // An admin may allow system binds; then the same bind is accepted (read-only here).
    let settings = rig.fake.dir.path().join("data/settings.json");
    let mut v: Value = serde_json::from_str(&std::fs::read_to_string(&settings).unwrap()).unwrap();
    v["settings"]["allowSystemBinds"] = Value::Bool(true);
    std::fs::write(&settings, v.to_string()).unwrap();
    let rs = name("sys");
    let info = rig.run_rs(&rs, &["--bind", "/etc:/host-etc:ro"]);
    assert_eq!(info["status"], "running");
    assert_eq!(
        rig.sh(&rs, "test -f /host-etc/passwd && echo yes")["stdout"],
        "yes\n"
    );
    rig.cleanup(&rs);
}

#[test]
fn patch_and_restart_after_stop_keep_the_data_and_zero_gpus_means_void() {
    let rig = Rig::new(4);
    let a = name("a");
    rig.run_rs(&a, &[]);
    assert!(rig.environ(&a).contains("NVIDIA_VISIBLE_DEVICES=void"));
    rig.sh(&a, "echo kept > /kept");
    rig.ok(&["rs", "stop", &a]);
    let v2 = rig.ok(&["rs", "patch", &a, "--gpus", "2"]);
    assert_eq!(
        (v2["version"].as_u64(), Rig::gpus_of(&v2).len()),
        (Some(2), 2)
    );
    assert_eq!(rig.sh(&a, "cat /kept")["stdout"], "kept\n");
    // Rollback to the version with no GPU gives none again.
    let v3 = rig.ok(&["rs", "rollback", &a, "1"]);
    assert!(Rig::gpus_of(&v3).is_empty());
    assert!(rig.environ(&a).contains("NVIDIA_VISIBLE_DEVICES=void"));
    assert_eq!(rig.sh(&a, "cat /kept")["stdout"], "kept\n");
    rig.cleanup(&a);
}

#[test]
fn continue_after_stop_never_double_books() {
    let rig = Rig::new(2);
    let (a, b) = (name("a"), name("b"));
    let va = rig.run_rs(&a, &["--gpus", "2"]);
    rig.ok(&["rs", "stop", &a]);
    let vb = rig.run_rs(&b, &["--gpus", "2"]);
    assert_eq!(
        Rig::gpus_of(&va).iter().collect::<HashSet<_>>(),
        Rig::gpus_of(&vb).iter().collect::<HashSet<_>>()
    );
    let err = rig.fail(&["rs", "continue", &a]);
    assert!(err.contains("taken") && err.contains("restart"), "{err}");
    assert_eq!(rig.ok(&["rs", "info", &a])["status"], "stopped");
    assert_eq!(Rig::gpus_of(&rig.ok(&["rs", "info", &b])).len(), 2);
    let err = rig.fail(&["rs", "restart", &a]);
    assert!(err.contains("2 GPU(s) requested, 0 free"), "{err}");
    rig.ok(&["rs", "stop", &b]);
    assert_eq!(rig.ok(&["rs", "continue", &a])["status"], "running");
    rig.ok(&["rs", "pause", &a]);
    assert_eq!(rig.ok(&["rs", "info", &a])["status"], "paused");
    let err = rig.fail(&["rs", "continue", &b]);
    assert!(err.contains("taken"), "paused keeps its GPUs: {err}");
    rig.ok(&["rs", "continue", &a]);
    rig.cleanup(&a);
    rig.cleanup(&b);
}

#[test]
fn two_replicasets_with_the_same_versions_never_mix_snapshots() {
    let rig = Rig::new(2);
    let (x, y) = (name("x"), name("y"));
    for (rs, word) in [(&x, "ex"), (&y, "why")] {
        rig.run_rs(rs, &[]);
        rig.sh(rs, &format!("echo {word} > /mine"));
        rig.ok(&["rs", "restart", rs]);
        rig.sh(rs, "echo later > /mine");
    }
    for (rs, word) in [(&x, "ex"), (&y, "why")] {
        rig.ok(&["rs", "rollback", rs, "1"]);
        assert_eq!(rig.sh(rs, "cat /mine")["stdout"], format!("{word}\n"));
    }
    rig.cleanup(&x);
    rig.cleanup(&y);
}

#[test]
fn a_container_removed_outside_the_app_can_still_be_deleted() {
    let rig = Rig::new(2);
    let z = name("z");
    rig.run_rs(&z, &["--gpus", "1", "--port", "80"]);
    docker_ok(&["rm", "-f", &format!("{z}-1")]);
    assert_eq!(rig.ok(&["rs", "info", &z])["status"], "missing");
    rig.ok(&["rs", "rm", &z]);
    let ports = rig.ok(&["ports"]);
    assert!(ports["used"]
        .as_array()
        .unwrap()
        .iter()
        .all(|u| u["owner"] != z.as_str()));
}

/// 50 `gpudeck rs run --gpus 1` processes at once on 8 GPUs: exactly 8 succeed, each with its
/// own GPU; the others say so clearly and leave nothing behind.
#[test]
fn fifty_concurrent_runs_on_eight_gpus() {
    let rig = Rig::new(8);
    let base = name("c");
    let children: Vec<_> = (0..50)
        .map(|i| {
            let rs = format!("{base}n{i}");
            let mut cmd = rig.fake.cli_command(&[
                "rs", "run", &rs, "--image", TEST_IMAGE, "--gpus", "1", "--json",
            ]);
            cmd.args(IDLE)
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped());
            (rs, cmd.spawn().unwrap())
        })
        .collect();
    let mut won = Vec::new();
    for (rs, child) in children {
        let out = child.wait_with_output().unwrap();
        if out.status.success() {
            let v: Value = serde_json::from_slice(&out.stdout).unwrap();
            won.extend(Rig::gpus_of(&v));
        } else {
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(err.contains("1 GPU(s) requested, 0 free"), "{rs}: {err}");
            assert!(
                docker_ok(&[
                    "ps",
                    "-aq",
                    "--filter",
                    &format!("label=gpudeck.replicaset={rs}")
                ])
                .is_empty(),
                "{rs} leaked a container"
            );
        }
    }
    assert_eq!(won.len(), 8);
    assert_eq!(
        won.iter().collect::<HashSet<_>>().len(),
        8,
        "a GPU was given twice"
    );
    for rs in rig.ok(&["rs", "ls"]).as_array().unwrap() {
        rig.cleanup(rs["name"].as_str().unwrap());
    }
}

/// Kill the CLI (exit 137, as kill -9) right after each journaled step of a patch; the next
/// command recovers: one running container, the files intact, no GPU or port held by nothing.
#[test]
fn a_crash_at_any_step_of_a_patch_loses_nothing() {
    let rig = Rig::new(4);
    for step in [
        "begun",
        "claimed",
        "created",
        "stopped_old",
        "snapshotted",
        "copied",
        "started",
        "recorded",
    ] {
        let rs = name("k");
        rig.run_rs(&rs, &["--gpus", "1", "--port", "8080"]);
        rig.sh(&rs, "echo precious > /precious");
        let out = rig
            .fake
            .cli_command(&["rs", "patch", &rs, "--gpus", "2"])
            .env("GPUDECK_CRASH_AT", step)
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(137),
            "{step}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let info = rig.ok(&["rs", "info", &rs]);
        assert_eq!(info["status"], "running", "{step}: {info}");
        let expect_version = if step == "recorded" { 2 } else { 1 };
        assert_eq!(info["version"], expect_version, "{step}");
        assert_eq!(Rig::gpus_of(&info).len(), expect_version as usize, "{step}");
        assert_eq!(
            rig.sh(&rs, "cat /precious")["stdout"],
            "precious\n",
            "{step}"
        );
        let containers = docker_ok(&[
            "ps",
            "-aq",
            "--filter",
            &format!("label=gpudeck.replicaset={rs}"),
        ]);
        assert_eq!(containers.lines().count(), 1, "{step}: one container");
        let claims = rig.ok(&["ports"]);
        let mine: Vec<&Value> = claims["used"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|u| u["owner"] == rs.as_str())
            .collect();
        assert_eq!(mine.len(), 1, "{step}: {claims}");
        rig.cleanup(&rs);
    }
}

#[test]
fn patch_swaps_a_bind_and_keeps_the_container_files() {
    let rig = Rig::new(1);
    let rs = name("swap");
    let (a, b) = (
        rig.fake.dir.path().join("veil0"),
        rig.fake.dir.path().join("veil1"),
    );
    std::fs::create_dir_all(&a).unwrap();
    std::fs::create_dir_all(&b).unwrap();
    std::fs::write(a.join("which"), "zero\n").unwrap();
    std::fs::write(b.join("which"), "one\n").unwrap();
    let old = format!("{}:/data", a.display());
    rig.run_rs(&rs, &["--bind", &old]);
    rig.sh(&rs, "echo mine > /inside");
    let swap = format!("{old}={}:/data", b.display());
    let v2 = rig.ok(&["rs", "patch", &rs, "--swap-bind", &swap]);
    assert_eq!(v2["version"], 2);
    assert_eq!(
        rig.sh(&rs, "cat /data/which /inside")["stdout"],
        "one\nmine\n"
    );
    let h = rig.ok(&["rs", "history", &rs]);
    assert_eq!(
        h[1]["changes"][0],
        serde_json::json!({"kind": "bind", "from": format!("{}:/data", a.display()), "to": format!("{}:/data", b.display())})
    );
    let err = rig.fail(&["rs", "patch", &rs, "--swap-bind", "/nope:/data=/x:/data"]);
    assert!(err.contains("has no bind /nope:/data"), "{err}");
    rig.cleanup(&rs);
}
