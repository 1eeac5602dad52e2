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
    _gpu_indexes: GpuIndexes,
}

/// A container that takes a GPU by its index (`--device nvidia.com/gpu=0`) holds that index on
/// every fake machine of the tests that share its engine: the test that makes one runs alone
/// (write), every other test's rig holds a read.
static GPU_INDEXES: std::sync::RwLock<()> = std::sync::RwLock::new(());

enum GpuIndexes {
    Shared(#[allow(dead_code)] std::sync::RwLockReadGuard<'static, ()>),
    Alone(#[allow(dead_code)] std::sync::RwLockWriteGuard<'static, ()>),
}

impl Rig {
    fn new(gpus: usize) -> Rig {
        let shared = GPU_INDEXES.read().unwrap_or_else(|e| e.into_inner());
        Rig {
            fake: FakeNvml::new(gpus),
            _gpu_indexes: GpuIndexes::Shared(shared),
        }
    }

    /// A rig for a test that takes GPUs by index outside GPU Deck: it waits for the other
    /// tests' rigs to go, and they wait for it.
    fn alone(gpus: usize) -> Rig {
        let alone = GPU_INDEXES.write().unwrap_or_else(|e| e.into_inner());
        Rig {
            fake: FakeNvml::new(gpus),
            _gpu_indexes: GpuIndexes::Alone(alone),
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

    /// Changes one saved setting (the service reads them per request).
    fn set_setting(&self, key: &str, value: Value) {
        let settings = self.fake.dir.path().join("data/settings.json");
        let mut v: Value =
            serde_json::from_str(&std::fs::read_to_string(&settings).unwrap()).unwrap();
        v["settings"][key] = value;
        std::fs::write(&settings, v.to_string()).unwrap();
    }

    /// No container of `rs` and no replicaSet at all.
    fn left_nothing(&self, rs: &str) {
        let label = format!("label=gpudeck.replicaset={rs}");
        assert!(docker_ok(&["ps", "-aq", "--filter", &label]).is_empty());
        assert_eq!(self.ok(&["rs", "ls"]).as_array().unwrap().len(), 0);
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

/// How many containers (any state) replicaSet `rs` has.
fn containers_of(rs: &str) -> usize {
    docker_ok(&[
        "ps",
        "-aq",
        "--filter",
        &format!("label=gpudeck.replicaset={rs}"),
    ])
    .lines()
    .count()
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
    // A container run from the committed image is not taken for one of the replicaSet's.
    let labels = docker_ok(&[
        "image",
        "inspect",
        "-f",
        "{{index .Config.Labels \"gpudeck.replicaset\"}}",
        &image,
    ]);
    assert_eq!(
        labels, "",
        "the replicaSet label is blanked in a committed image"
    );

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
    assert_eq!(
        h[0]["commits"],
        serde_json::json!([image]),
        "the commit shows at the version it came from"
    );
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
    rig.set_setting("allowSystemBinds", Value::Bool(true));
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
    let steps = patch_steps();
    for &step in steps {
        let rs = name("k");
        rig.run_rs(&rs, &["--gpus", "1", "--port", "8080"]);
        rig.sh(&rs, "echo precious > /precious");
        let args = ["rs", "patch", &rs, "--gpus", "2"];
        if step == "saved" {
            rig.fake.crash_after_reply_at(step, &args);
        } else {
            rig.fake.crash_at(step, &args);
        }
        let info = rig.ok(&["rs", "info", &rs]);
        assert_eq!(info["status"], "running", "{step}: {info}");
        let done = matches!(step, "recorded" | "saved");
        let expect_version = if done { 2 } else { 1 };
        assert_eq!(info["version"], expect_version, "{step}");
        assert_eq!(Rig::gpus_of(&info).len(), expect_version as usize, "{step}");
        assert_eq!(
            rig.sh(&rs, "cat /precious")["stdout"],
            "precious\n",
            "{step}"
        );
        assert_eq!(containers_of(&rs), 1, "{step}: one container");
        let claims = rig.ok(&["ports"]);
        let mine: Vec<&Value> = claims["used"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|u| u["owner"] == rs.as_str())
            .collect();
        assert_eq!(mine.len(), 1, "{step}: {claims}");
        if done {
            // Version 1's files were kept for a rollback.
            rig.ok(&["rs", "rollback", &rs, "1"]);
            assert_eq!(
                rig.sh(&rs, "cat /precious")["stdout"],
                "precious\n",
                "{step}: rollback"
            );
        }
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

/// A crash at any step of `rs run` leaves nothing: no container, no claim, and the name is free.
#[test]
fn a_crash_at_any_step_of_a_run_leaves_nothing() {
    let rig = Rig::new(2);
    for step in ["run_begun", "run_claimed", "run_created"] {
        let rs = name("r");
        let mut args = vec![
            "rs", "run", &rs, "--image", TEST_IMAGE, "--gpus", "1", "--port", "80",
        ];
        args.extend_from_slice(IDLE);
        rig.fake.crash_at(step, &args);
        // The next command settles it.
        rig.ok(&["rs", "ls"]);
        let ports = rig.ok(&["ports"]);
        assert!(
            ports["used"]
                .as_array()
                .unwrap()
                .iter()
                .all(|u| u["owner"] != rs.as_str()),
            "{step}: {ports}"
        );
        let left = docker_ok(&[
            "ps",
            "-aq",
            "--filter",
            &format!("label=gpudeck.replicaset={rs}"),
        ]);
        assert!(left.is_empty(), "{step}: a container was left");
        // The name is free again, and the GPU it had claimed can be had.
        let v = rig.run_rs(&rs, &["--gpus", "2"]);
        assert_eq!(Rig::gpus_of(&v).len(), 2, "{step}");
        rig.cleanup(&rs);
    }
}

/// Files carried by the Docker API only (commit of the stopped container): stop → patch keeps
/// them; a file deleted in v2 stays deleted in v3; rollback to 1 brings back v1's files, including
/// one deleted later. Runs again on a vfs engine (no overlay2) in scripts/test.sh.
#[test]
fn files_are_carried_deleted_and_rolled_back_on_any_storage_driver() {
    let rig = Rig::new(2);
    let rs = name("files");
    rig.run_rs(&rs, &["--gpus", "1"]);
    rig.sh(
        &rs,
        "echo one > /a; echo keep > /b; mkdir -p /etc/x && echo cfg > /etc/x/c; rm /etc/passwd",
    );
    rig.ok(&["rs", "stop", &rs]);
    let v2 = rig.ok(&["rs", "patch", &rs, "--gpus", "2"]);
    assert_eq!(v2["version"], 2);
    assert_eq!(
        rig.sh(&rs, "cat /a /b /etc/x/c")["stdout"],
        "one\nkeep\ncfg\n"
    );
    assert_eq!(
        rig.sh(&rs, "test -e /etc/passwd || echo gone")["stdout"],
        "gone\n",
        "an image file deleted in v1 stays deleted"
    );
    rig.sh(&rs, "rm /a; echo two > /b");
    rig.ok(&["rs", "restart", &rs]);
    assert_eq!(
        rig.sh(&rs, "test -e /a || echo gone; cat /b")["stdout"],
        "gone\ntwo\n"
    );
    let v4 = rig.ok(&["rs", "rollback", &rs, "1"]);
    assert_eq!(v4["version"], 4);
    assert_eq!(
        rig.sh(&rs, "cat /a /b")["stdout"],
        "one\nkeep\n",
        "v1's files as v1 left them"
    );
    // Every replaced version has its files' size on record; the current one not yet.
    let h = rig.ok(&["rs", "history", &rs]);
    let h = h.as_array().unwrap();
    assert!(
        h[..3].iter().all(|v| v["snapshotBytes"].as_u64().is_some()),
        "{h:?}"
    );
    assert!(h[3]["snapshotBytes"].is_null());
    rig.cleanup(&rs);
    let snaps = docker_ok(&[
        "images",
        "-q",
        "--filter",
        &format!("reference=gpudeck-snapshot:{rs}-*"),
    ]);
    assert!(snaps.is_empty(), "rs rm removes the snapshots: {snaps}");
}

/// A container that deleted none of its image's files has what it added and changed carried
/// without a commit on every engine (the archive way; overlay2's copy way commits nothing
/// either): a new tree with a hard link, a symbolic link, an owner and a mode, an image file
/// appended to, an image folder's new mode. Nothing under a mount is read or written: a bind
/// moved onto a path the old version had written keeps only what the host has there. A rollback
/// writes a kept version back from its folder.
#[test]
fn added_and_changed_files_are_carried_and_rolled_back_without_a_commit() {
    let rig = Rig::new(1);
    let rs = name("arch");
    let (a, b) = (
        rig.fake.dir.path().join(format!("{rs}-a")),
        rig.fake.dir.path().join(format!("{rs}-b")),
    );
    std::fs::create_dir_all(&a).unwrap();
    std::fs::create_dir_all(&b).unwrap();
    std::fs::write(a.join("which"), "a\n").unwrap();
    let bind = format!("{}:/data", a.display());
    rig.run_rs(&rs, &["--bind", &bind]);
    rig.sh(
        &rs,
        "mkdir -p /opt/t/sub && echo deep > /opt/t/sub/f && ln /opt/t/sub/f /opt/t/hard \
         && ln -s sub/f /opt/t/soft && chmod 640 /opt/t/sub/f && chown 1234:5678 /opt/t/sub \
         && echo more >> /etc/group && chmod 700 /etc && mkdir -p /mnt2 && echo secret > /mnt2/secret",
    );
    let check = |what: &str, extra: &str| {
        let out = rig.sh(
            &rs,
            "cat /opt/t/sub/f /opt/t/hard; readlink /opt/t/soft; \
             stat -c '%a %u:%g' /opt/t/sub/f /opt/t/sub /etc; stat -c %h /opt/t/hard; \
             tail -1 /etc/group; cat /opt/t/two 2>/dev/null; true",
        )["stdout"]
            .as_str()
            .unwrap()
            .to_string();
        assert_eq!(
            out,
            format!("deep\ndeep\nsub/f\n640 0:0\n755 1234:5678\n700 0:0\n2\nmore\n{extra}"),
            "{what}"
        );
    };
    let t0 = unix_now();
    let swap = format!("{bind}={}:/mnt2", b.display());
    assert_eq!(
        rig.ok(&["rs", "patch", &rs, "--swap-bind", &swap])["version"],
        2
    );
    let ev = engine_events(&format!("{rs}-1"), t0);
    assert!(!ev.iter().any(|e| e == "commit"), "no commit: {ev:?}");
    check("v2", "");
    assert_eq!(
        rig.sh(&rs, "ls /mnt2")["stdout"],
        "",
        "the bind shows the host's folder"
    );
    assert!(
        std::fs::read_dir(&b).unwrap().next().is_none(),
        "nothing was written into the bound host folder"
    );
    rig.sh(&rs, "echo two > /opt/t/two");
    assert_eq!(rig.ok(&["rs", "restart", &rs])["version"], 3);
    check("v3", "two\n");
    // Each version's files as it left them: v1 with what it wrote where v2 had the bind; v2
    // with the file written in it before it was replaced.
    assert_eq!(rig.ok(&["rs", "rollback", &rs, "1"])["version"], 4);
    check("rollback to v1", "");
    assert_eq!(
        rig.sh(&rs, "cat /mnt2/secret /data/which")["stdout"],
        "secret\na\n"
    );
    assert_eq!(rig.ok(&["rs", "rollback", &rs, "2"])["version"], 5);
    check("rollback to v2", "two\n");
    let h = rig.ok(&["rs", "history", &rs]);
    let h = h.as_array().unwrap();
    assert!(
        h[..4].iter().all(|v| v["snapshotBytes"].as_u64().is_some()),
        "{h:?}"
    );
    rig.cleanup(&rs);
}

/// A file whose name is not UTF-8 cannot be asked for by name through the engine's list of
/// changes (it replaces the bytes), so such a container's files go the layer way, and the file
/// is kept with its name.
#[test]
fn a_name_that_is_not_utf8_is_carried_too() {
    let rig = Rig::new(0);
    let rs = name("utf");
    rig.run_rs(&rs, &[]);
    rig.sh(&rs, "printf kept > \"/caf$(printf '\\351')\"");
    let t0 = unix_now();
    assert_eq!(rig.ok(&["rs", "restart", &rs])["version"], 2);
    let ev = engine_events(&format!("{rs}-1"), t0);
    if !copy_way() {
        assert!(ev.iter().any(|e| e == "commit"), "the layer way: {ev:?}");
    }
    assert_eq!(
        rig.sh(&rs, "cat \"/caf$(printf '\\351')\"; ls / | grep -c '^caf'")["stdout"],
        "kept1\n"
    );
    rig.cleanup(&rs);
}

/// When the engine cannot stream a path out of the old container (its bound host folder became
/// a file, so the engine cannot mount it to read the container), the new version is committed
/// instead: the patch still works and nothing is lost.
#[test]
fn a_container_the_engine_cannot_stream_is_committed_instead() {
    let rig = Rig::new(0);
    let rs = name("fallback");
    let (a, b) = (
        rig.fake.dir.path().join(format!("{rs}-a")),
        rig.fake.dir.path().join(format!("{rs}-b")),
    );
    std::fs::create_dir_all(&a).unwrap();
    std::fs::create_dir_all(&b).unwrap();
    let bind = format!("{}:/data", a.display());
    rig.run_rs(&rs, &["--bind", &bind]);
    rig.sh(&rs, "echo mine > /inside");
    rig.ok(&["rs", "stop", &rs]);
    std::fs::remove_dir_all(&a).unwrap();
    std::fs::write(&a, "not a folder").unwrap();
    let t0 = unix_now();
    let swap = format!("{bind}={}:/data", b.display());
    assert_eq!(
        rig.ok(&["rs", "patch", &rs, "--swap-bind", &swap])["version"],
        2
    );
    let ev = engine_events(&format!("{rs}-1"), t0);
    if !copy_way() {
        assert!(ev.iter().any(|e| e == "commit"), "committed: {ev:?}");
    }
    assert_eq!(rig.sh(&rs, "cat /inside")["stdout"], "mine\n");
    assert_eq!(containers_of(&rs), 1);
    rig.cleanup(&rs);
}

/// Versions are built on the image id recorded at run: re-tagging the image later changes
/// nothing for the next version.
#[test]
fn a_retagged_image_does_not_change_the_base_of_later_versions() {
    let rig = Rig::new(1);
    let rs = name("retag");
    let tag = format!("gpudeck-test/{rs}:v1");
    docker_ok(&["tag", TEST_IMAGE, &tag]);
    let mut a = vec!["rs", "run", &rs, "--image", &tag];
    a.extend_from_slice(IDLE);
    rig.ok(&a);
    rig.sh(&rs, "echo mine > /mine");
    // The tag now names another image (as after a pull of a newer build).
    let tmp = format!("{rs}-tmp");
    docker_ok(&["create", "--name", &tmp, TEST_IMAGE, "true"]);
    docker_ok(&["commit", "--change", "LABEL other=1", &tmp, &tag]);
    docker_ok(&["rm", &tmp]);
    rig.ok(&["rs", "restart", &rs]);
    assert_eq!(rig.sh(&rs, "cat /mine")["stdout"], "mine\n");
    let h = rig.ok(&["rs", "history", &rs]);
    assert_eq!(h[0]["imageId"], h[1]["imageId"]);
    let base = docker_ok(&["image", "inspect", "-f", "{{.Id}}", TEST_IMAGE]);
    assert_eq!(h[0]["imageId"].as_str().unwrap(), base.trim());
    rig.cleanup(&rs);
    let _ = docker(&["rmi", &tag]);
}

/// A folder of the image replaced by a new one (overlay's opaque folder) stays replaced across
/// versions and in a rollback, with hard links and modes kept (and holes, the copy way).
#[test]
fn a_replaced_image_folder_stays_replaced() {
    let rig = Rig::new(1);
    let rs = name("opq");
    let tag = format!("gpudeck-test/{rs}:v1");
    let tmp = format!("{rs}-tmp");
    docker_ok(&[
        "run",
        "--name",
        &tmp,
        TEST_IMAGE,
        "sh",
        "-c",
        "mkdir /opq && echo x > /opq/x && echo y > /opq/y",
    ]);
    docker_ok(&["commit", &tmp, &tag]);
    docker_ok(&["rm", &tmp]);
    let mut a = vec!["rs", "run", &rs, "--image", &tag];
    a.extend_from_slice(IDLE);
    rig.ok(&a);
    rig.sh(
        &rs,
        "rm -rf /opq && mkdir /opq && echo z > /opq/z && ln /opq/z /opq/z2 && chmod 640 /opq/z \
         && dd if=/dev/zero of=/opq/sparse bs=1 count=1 seek=50M 2>/dev/null",
    );
    let check = |what: &str| {
        let out = rig.sh(
            &rs,
            "ls /opq; stat -c '%h %a' /opq/z; du -k /opq/sparse | cut -f1",
        )["stdout"]
            .as_str()
            .unwrap()
            .to_string();
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 5, "{what}: {out}");
        assert_eq!(lines[..4], ["sparse", "z", "z2", "2 640"], "{what}: {out}");
        // Holes survive the copy way; `docker commit` writes them out in full.
        if copy_way() || what == "v1" {
            assert!(
                lines[4].parse::<u64>().unwrap() < 1024,
                "{what}: still sparse: {out}"
            );
        }
    };
    check("v1");
    rig.ok(&["rs", "restart", &rs]);
    check("v2");
    rig.sh(&rs, "rm -rf /opq");
    rig.ok(&["rs", "restart", &rs]);
    assert_eq!(
        rig.sh(&rs, "ls /opq 2>&1 || echo gone")["stdout"]
            .as_str()
            .unwrap()
            .lines()
            .last(),
        Some("gone")
    );
    // Version 2 removed it; version 1 (that made it) brings it back.
    rig.ok(&["rs", "rollback", &rs, "1"]);
    check("rollback to 1");
    rig.cleanup(&rs);
    let _ = docker(&["rmi", &tag]);
}

/// An image `VOLUME` (a database's data folder) gets a named volume of the replicaSet's, mounted
/// by every version: its data is carried, and deleting the replicaSet removes it.
#[test]
fn an_image_volume_keeps_its_data_across_versions() {
    let rig = Rig::new(1);
    let rs = name("pg");
    let img = format!("gpudeck-test/{rs}:vol");
    let tmp = format!("{rs}-tmp");
    docker_ok(&["create", "--name", &tmp, TEST_IMAGE, "true"]);
    docker_ok(&["commit", "--change", "VOLUME /state", &tmp, &img]);
    docker_ok(&["rm", &tmp]);
    let mut a = vec!["rs", "run", &rs, "--image", &img];
    a.extend_from_slice(IDLE);
    rig.ok(&a);
    rig.sh(&rs, "echo rows > /state/db");
    rig.ok(&["rs", "patch", &rs, "--gpus", "1"]);
    assert_eq!(rig.sh(&rs, "cat /state/db")["stdout"], "rows\n");
    rig.ok(&["rs", "rollback", &rs, "1"]);
    assert_eq!(rig.sh(&rs, "cat /state/db")["stdout"], "rows\n");
    let vols = docker_ok(&[
        "volume",
        "ls",
        "-q",
        "--filter",
        &format!("label=gpudeck.replicaset={rs}"),
    ]);
    assert_eq!(vols.lines().count(), 1, "{vols}");
    rig.cleanup(&rs);
    let vols = docker_ok(&[
        "volume",
        "ls",
        "-q",
        "--filter",
        &format!("label=gpudeck.replicaset={rs}"),
    ]);
    assert!(vols.is_empty(), "rs rm removes its volumes: {vols}");
    let _ = docker(&["rmi", &img]);
}

/// `rs prune --keep K`: older versions' files go; a rollback to one is refused with a sentence
/// that names --config-only, changes nothing, and with --config-only starts from the clean image.
#[test]
fn a_pruned_version_rolls_back_only_as_configuration() {
    let rig = Rig::new(1);
    let rs = name("prune");
    rig.run_rs(&rs, &[]);
    rig.sh(&rs, "echo v1 > /f");
    rig.ok(&["rs", "restart", &rs]);
    rig.sh(&rs, "echo v2 > /f");
    rig.ok(&["rs", "restart", &rs]);
    let p = rig.ok(&["rs", "prune", &rs, "--keep", "1"]);
    assert_eq!(p["pruned"], serde_json::json!([1]));
    let h = rig.ok(&["rs", "history", &rs]);
    assert_eq!(
        (h[0]["pruned"].as_bool(), h[1]["pruned"].as_bool()),
        (Some(true), Some(false))
    );
    let err = rig.fail(&["rs", "rollback", &rs, "1"]);
    assert!(
        err.contains("--config-only") && err.contains("Nothing was changed"),
        "{err}"
    );
    assert_eq!(rig.ok(&["rs", "info", &rs])["version"], 3);
    let v = rig.ok(&["rs", "rollback", &rs, "1", "--config-only"]);
    assert_eq!(v["version"], 4);
    assert_eq!(rig.sh(&rs, "test -e /f || echo clean")["stdout"], "clean\n");
    // Version 2's files are still kept.
    rig.ok(&["rs", "rollback", &rs, "2"]);
    assert_eq!(rig.sh(&rs, "cat /f")["stdout"], "v2\n");
    // v5 runs on v2's files. As snapshot images, pruning everything keeps those (its container
    // is built on them); as folders (copied into v5's container) they go too.
    let p = rig.ok(&["rs", "prune", &rs, "--keep", "0"]);
    let h = rig.ok(&["rs", "history", &rs]);
    if !layer_way() {
        assert_eq!(p["pruned"], serde_json::json!([4, 3, 2]));
        assert_eq!(h[1]["pruned"], true);
        assert_eq!(
            rig.sh(&rs, "cat /f")["stdout"],
            "v2\n",
            "v5's own files stay"
        );
    } else {
        assert_eq!(p["pruned"], serde_json::json!([4, 3]));
        assert_eq!(h[1]["pruned"], false);
    }
    rig.cleanup(&rs);
}

/// A continue that cannot start gives back what it claimed, and stop works afterwards.
#[test]
fn a_failed_continue_keeps_no_claims() {
    let rig = Rig::new(2);
    let rs = name("cont");
    let dir = rig.fake.dir.path().join(format!("{rs}-bind"));
    std::fs::create_dir_all(&dir).unwrap();
    let bind = format!("{}:/data", dir.display());
    rig.run_rs(&rs, &["--gpus", "2", "--port", "80", "--bind", &bind]);
    rig.ok(&["rs", "stop", &rs]);
    // A file where the bound folder was: the engine cannot mount it on /data, so start fails.
    std::fs::remove_dir_all(&dir).unwrap();
    std::fs::write(&dir, "not a folder").unwrap();
    rig.fail(&["rs", "continue", &rs]);
    let ports = rig.ok(&["ports"]);
    assert!(
        ports["used"]
            .as_array()
            .unwrap()
            .iter()
            .all(|u| u["owner"] != rs.as_str()),
        "{ports}"
    );
    let other = name("other");
    let v = rig.run_rs(&other, &["--gpus", "2"]);
    assert_eq!(Rig::gpus_of(&v).len(), 2, "the GPUs are free again");
    assert_eq!(rig.ok(&["rs", "stop", &rs])["status"], "stopped");
    rig.cleanup(&other);
    rig.cleanup(&rs);
}

/// Ten patches of a container with 200 MB unchanged and 10 MB changing each time keep at most
/// 200 MB + 10 × 10 MB × 1.2 of version files: each version's files are stored once.
#[test]
fn ten_patches_store_each_version_files_once() {
    let rig = Rig::new(1);
    let rs = name("disk");
    rig.run_rs(&rs, &[]);
    rig.sh(
        &rs,
        "dd if=/dev/urandom of=/big bs=1M count=200 2>/dev/null",
    );
    for i in 0..10 {
        rig.sh(
            &rs,
            &format!("dd if=/dev/urandom of=/small bs=1M count=10 2>/dev/null; echo {i} > /n"),
        );
        rig.ok(&["rs", "restart", &rs]);
    }
    let h = rig.ok(&["rs", "history", &rs]);
    let total: u64 = h
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v["snapshotBytes"].as_u64())
        .sum();
    let mb = 1_000_000u64;
    // Docker's containerd image store keeps every layer twice, unpacked and as a compressed
    // blob; random data does not compress, so there the layer way's files take twice their
    // size, said so. The archive way keeps folders, as the copy way does.
    let copies = if containerd_store() && layer_way() {
        2
    } else {
        1
    };
    let limit = copies * (200 * 1_048_576 + (10 * 10 * 1_048_576 * 12) / 10);
    eprintln!(
        "version files: {} MB (at most {} MB)",
        total / mb,
        limit / mb
    );
    assert!(
        total <= limit,
        "version files take {} MB, more than {} MB",
        total / mb,
        limit / mb
    );
    assert!(
        total >= copies * 300 * mb,
        "the sizes are real: {} MB",
        total / mb
    );
    assert_eq!(
        rig.sh(&rs, "cat /n; ls -l /big | awk '{print $5}'")["stdout"],
        "9\n209715200\n"
    );
    rig.cleanup(&rs);
}

/// A container of the nvidia runtime that takes a GPU through `NVIDIA_VISIBLE_DEVICES` (no device
/// request) holds it: replicaSets get the other GPUs, and a shortage says so.
#[test]
fn a_gpu_taken_through_the_nvidia_runtime_environment_counts_as_held() {
    if !docker_ok(&["info", "-f", "{{json .Runtimes}}"]).contains("\"nvidia\"") {
        panic!("the rig engine has no runtime named nvidia: restart it with tests/rig/setup.sh");
    }
    let rig = Rig::new(2);
    let held = rig.fake.gpus[0].uuid.clone();
    let outside = Container::run(
        &name("cuda"),
        &[
            "--runtime",
            "nvidia",
            "-e",
            &format!("NVIDIA_VISIBLE_DEVICES={held}"),
        ],
        &IDLE[1..],
    );
    let rs = name("env");
    let v = rig.run_rs(&rs, &["--gpus", "1"]);
    assert_eq!(Rig::gpus_of(&v), vec![rig.fake.gpus[1].uuid.clone()]);
    let other = name("env2");
    let mut a = vec!["rs", "run", &other, "--image", TEST_IMAGE, "--gpus", "1"];
    a.extend_from_slice(IDLE);
    let err = rig.fail(&a);
    assert!(err.contains("1 GPU(s) requested, 0 free"), "{err}");
    drop(outside);
    rig.cleanup(&rs);
}

/// Containers given GPUs through CDI (`--device nvidia.com/gpu=…`, by index and by UUID, the
/// names `nvidia-ctk cdi generate` writes) hold them: replicaSets get the other GPU, a shortage
/// says so, `gpus` names the holders and doctor says CDI is on. Needs an engine with CDI:
/// `tests/rig/docker26.sh` (scripts/test.sh runs this with `--include-ignored` there).
#[test]
#[ignore = "needs a CDI engine: tests/rig/docker26.sh, then `. target/rig-cdi/env`"]
fn a_gpu_taken_through_cdi_counts_as_held() {
    let dirs: Vec<String> =
        serde_json::from_str(&docker_ok(&["info", "-f", "{{json .CDISpecDirs}}"])).unwrap();
    let spec_dir = dirs
        .first()
        .expect("the engine has no CDI spec folder: start it with tests/rig/docker26.sh");
    let rig = Rig::alone(3);
    let g = &rig.fake.gpus;
    // The spec the NVIDIA toolkit would write for these GPUs: each by index and by UUID.
    let mut spec = String::from("cdiVersion: \"0.5.0\"\nkind: nvidia.com/gpu\ndevices:\n");
    for (i, gpu) in g.iter().enumerate() {
        for n in [i.to_string(), gpu.uuid.clone()] {
            spec.push_str(&format!(
                "- name: \"{n}\"\n  containerEdits:\n    env: [\"NVIDIA_VISIBLE_DEVICES={}\", \"CDI_EDIT_{i}={n}\"]\n",
                gpu.uuid
            ));
        }
    }
    // GPU Deck's own containers get GPUs through CDI too when the admin says so (the rig's
    // engine has the stand-in hook, so Automatic keeps `--gpus`-style requests here). Without
    // a spec for nvidia.com/gpu that is refused before anything is claimed or made.
    remove_cdi_specs(spec_dir);
    rig.set_setting("gpuRequests", Value::String("cdi".into()));
    let rs = name("cdi");
    let mut a = vec!["rs", "run", &rs, "--image", TEST_IMAGE, "--gpus", "1"];
    a.extend_from_slice(IDLE);
    let err = rig.fail(&a);
    assert!(
        err.contains(&format!("no CDI spec for nvidia.com/gpu in {spec_dir}"))
            && err.contains("nvidia-ctk cdi generate"),
        "{err}"
    );
    rig.left_nothing(&rs);

    let spec_file = write_cdi_spec(spec_dir, &spec);
    let by_index = Container::run(
        &name("cdiidx"),
        &["--device", "nvidia.com/gpu=0"],
        &IDLE[1..],
    );
    let by_uuid = Container::run(
        &name("cdiuuid"),
        &["--device", &format!("nvidia.com/gpu={}", g[2].uuid)],
        &IDLE[1..],
    );
    // The engine really applied the spec (the container's own process has the edit), and
    // recorded a CDI device request, not a device request of the nvidia driver.
    let environ = docker_ok(&[
        "exec",
        &by_index.0,
        "sh",
        "-c",
        "tr '\\0' '\\n' </proc/1/environ",
    ]);
    assert!(
        environ.contains(&format!("NVIDIA_VISIBLE_DEVICES={}", g[0].uuid)),
        "{environ}"
    );
    let requests = docker_ok(&[
        "inspect",
        "-f",
        "{{json .HostConfig.DeviceRequests}}",
        &by_uuid.0,
    ]);
    assert!(requests.contains("\"Driver\":\"cdi\""), "{requests}");

    let v = rig.run_rs(&rs, &["--gpus", "1"]);
    assert_eq!(Rig::gpus_of(&v), vec![g[1].uuid.clone()]);
    // Asked for by the name the spec gives it (its UUID), and given by the engine from the spec.
    let cdi_request = |rs: &str, version: u32| {
        docker_ok(&[
            "inspect",
            "-f",
            "{{json .HostConfig.DeviceRequests}}",
            &format!("{rs}-{version}"),
        ])
    };
    let requests = cdi_request(&rs, 1);
    assert!(
        requests.contains("\"Driver\":\"cdi\"")
            && requests.contains(&format!("nvidia.com/gpu={}", g[1].uuid))
            && !requests.contains("nvidia\""),
        "{requests}"
    );
    assert!(
        rig.environ(&rs)
            .contains(&format!("CDI_EDIT_1={}", g[1].uuid)),
        "{}",
        rig.environ(&rs)
    );
    // A new version keeps asking that way.
    rig.ok(&["rs", "restart", &rs]);
    let requests = cdi_request(&rs, 2);
    assert!(requests.contains("\"Driver\":\"cdi\""), "{requests}");
    assert!(
        rig.environ(&rs).contains("CDI_EDIT_1="),
        "{}",
        rig.environ(&rs)
    );
    let other = name("cdi2");
    let mut a = vec!["rs", "run", &other, "--image", TEST_IMAGE, "--gpus", "1"];
    a.extend_from_slice(IDLE);
    let err = rig.fail(&a);
    assert!(err.contains("1 GPU(s) requested, 0 free"), "{err}");

    let gpus = json(&rig.fake.cli(&["gpus", "--json"]));
    let held_by = |i: usize| -> Vec<String> {
        gpus["gpus"][i]["heldBy"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(held_by(0), vec![by_index.0.clone()], "{gpus}");
    assert_eq!(held_by(2), vec![by_uuid.0.clone()], "{gpus}");
    assert_eq!(held_by(1).len(), 1, "the replicaSet: {gpus}");

    let doctor = json(&rig.fake.cli(&["doctor", "--json"]));
    let toolkit = doctor
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "nvidia_container")
        .unwrap();
    let summary = toolkit["summary"].as_str().unwrap();
    assert!(
        summary.contains(&format!("CDI on (specs in {spec_dir})"))
            && summary.contains(&format!(
                "get GPUs through CDI (nvidia.com/gpu=…, spec {})",
                spec_file.display()
            )),
        "{toolkit}"
    );

    // Released with the container: the GPU is free again.
    drop(by_index);
    let v = rig.run_rs(&other, &["--gpus", "1"]);
    assert_eq!(Rig::gpus_of(&v), vec![g[0].uuid.clone()]);
    rig.cleanup(&other);
    rig.cleanup(&rs);
    drop(by_uuid);
    std::fs::remove_file(spec_file).unwrap();
}

/// Removes earlier runs' test specs from `dir`: a second file naming the same devices makes the
/// engine refuse them all as conflicting ("unresolvable CDI devices").
fn remove_cdi_specs(dir: &str) {
    for old in std::fs::read_dir(dir).unwrap() {
        let old = old.unwrap().path();
        if old
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("gpudeck")
        {
            std::fs::remove_file(old).unwrap();
        }
    }
}

/// Writes `spec` as the one test spec in `dir`.
fn write_cdi_spec(dir: &str, spec: &str) -> std::path::PathBuf {
    remove_cdi_specs(dir);
    let file = std::path::Path::new(dir).join(format!("{}.yaml", name("gpudeck")));
    std::fs::write(&file, spec).unwrap();
    file
}

/// A host whose GPUs are served by CDI only (nvidia-container-toolkit-base's spec, no NVIDIA hook
/// or runtime): the engine refuses what `docker run --gpus` sends, and GPU Deck, left on
/// Automatic, gives its containers their GPUs through the spec, naming each GPU as the spec does
/// (by index here, as older toolkits write it). Needs `tests/rig/docker26.sh --cdi-only`.
#[test]
#[ignore]
fn automatic_gpu_requests_go_through_cdi_where_only_cdi_serves_gpus() {
    let info: Value = serde_json::from_str(&docker_ok(&["info", "-f", "{{json .}}"])).unwrap();
    let start_it = "start the engine with tests/rig/docker26.sh --cdi-only";
    assert!(
        info["Runtimes"].get("nvidia").is_none(),
        "the engine has a runtime named nvidia: {start_it}"
    );
    let spec_dir = info["CDISpecDirs"][0]
        .as_str()
        .unwrap_or_else(|| panic!("the engine has CDI off: {start_it}"))
        .to_string();
    let refused = docker(&["run", "--rm", "--gpus", "1", TEST_IMAGE, "true"]);
    assert!(
        !refused.status.success()
            && String::from_utf8_lossy(&refused.stderr).contains("could not select device driver"),
        "the engine took a --gpus request: {start_it}"
    );
    let rig = Rig::new(2);
    // The service as on such a host: no stand-in hook on its PATH either.
    let plain: Vec<_> = std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .filter(|p| !p.ends_with("tests/rig/bin"))
        .collect();
    let plain = std::env::join_paths(plain).unwrap();
    rig.fake.always_env("PATH", plain.to_str().unwrap());
    let g = &rig.fake.gpus;
    let mut spec = String::from("cdiVersion: \"0.5.0\"\nkind: nvidia.com/gpu\ndevices:\n");
    for (i, gpu) in g.iter().enumerate() {
        spec.push_str(&format!(
            "- name: \"{i}\"\n  containerEdits:\n    env: [\"NVIDIA_VISIBLE_DEVICES={}\", \"CDI_EDIT={i}\"]\n",
            gpu.uuid
        ));
    }
    let spec_file = write_cdi_spec(&spec_dir, &spec);

    let doctor = json(&rig.fake.cli(&["doctor", "--json"]));
    let toolkit = doctor
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "nvidia_container")
        .unwrap()
        .clone();
    assert_eq!(toolkit["status"], "ok", "{toolkit}");
    assert!(
        toolkit["summary"].as_str().unwrap().starts_with(&format!(
            "no NVIDIA container hook or runtime; GPU Deck's containers get GPUs through CDI (nvidia.com/gpu=…, spec {})",
            spec_file.display()
        )),
        "{toolkit}"
    );

    let rs = name("cdionly");
    let v = rig.run_rs(&rs, &["--gpus", "1"]);
    let uuid = Rig::gpus_of(&v).remove(0);
    let index = g.iter().position(|x| x.uuid == uuid).unwrap();
    for version in [1, 2] {
        if version == 2 {
            // A new version asks the same way.
            rig.ok(&["rs", "restart", &rs]);
        }
        let requests = docker_ok(&[
            "inspect",
            "-f",
            "{{json .HostConfig.DeviceRequests}}",
            &format!("{rs}-{version}"),
        ]);
        assert!(
            requests.contains("\"Driver\":\"cdi\"")
                && requests.contains(&format!("\"nvidia.com/gpu={index}\"")),
            "{requests}"
        );
        let env = rig.environ(&rs);
        assert!(env.contains(&format!("CDI_EDIT={index}")), "{env}");
    }
    assert_eq!(rig.ok(&["rs", "info", &rs])["status"], "running");
    rig.cleanup(&rs);

    // Set to the nvidia driver's requests, a run here is refused with what to do, leaving nothing.
    rig.set_setting("gpuRequests", Value::String("nvidia".into()));
    let mut a = vec!["rs", "run", &rs, "--image", TEST_IMAGE, "--gpus", "1"];
    a.extend_from_slice(IDLE);
    let err = rig.fail(&a);
    assert!(
        err.contains("nothing on this host serves the Docker engine's GPU requests")
            && err.contains("set GPU requests to Automatic or CDI in Settings"),
        "{err}"
    );
    rig.left_nothing(&rs);
    std::fs::remove_file(spec_file).unwrap();
}

/// Near the layer limit (lowered to 4 here) the next version's files are flattened into one
/// layer: every file as it was, a deleted one still deleted, the command and environment kept,
/// and the history says so.
#[test]
fn a_long_chain_is_flattened_near_the_layer_limit() {
    let rig = Rig::new(1);
    let rs = name("flat");
    // Snapshot images even on overlay2 (the copy way adds no layers).
    rig.fake
        .start_service_with(&[("GPUDECK_MAX_LAYERS", "4"), ("GPUDECK_CARRY", "layers")]);
    let with_limit = |args: &[&str]| -> Value {
        let mut a = args.to_vec();
        a.push("--json");
        let out = rig.fake.cli_command(&a).output().unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    };
    rig.run_rs(&rs, &["--env", "KEEP=me"]);
    rig.sh(&rs, "echo kept > /kept; rm /bin/vi");
    for _ in 0..4 {
        with_limit(&["rs", "restart", &rs]);
        rig.sh(&rs, "date >> /log");
    }
    let layers = |c: &str| {
        let img = docker_ok(&["inspect", "-f", "{{.Image}}", c]);
        docker_ok(&["image", "inspect", "-f", "{{len .RootFS.Layers}}", &img])
            .parse::<usize>()
            .unwrap()
    };
    let info = rig.ok(&["rs", "info", &rs]);
    assert!(layers(info["container"].as_str().unwrap()) <= 4);
    let h = rig.ok(&["rs", "history", &rs]);
    assert!(
        h.as_array()
            .unwrap()
            .iter()
            .any(|v| v["op"].as_str().unwrap().contains("(flattened)")),
        "{h}"
    );
    assert_eq!(
        rig.sh(
            &rs,
            "cat /kept; test -e /bin/vi || echo vi-gone; wc -l < /log"
        )["stdout"],
        "kept\nvi-gone\n4\n"
    );
    let env = rig.environ(&rs);
    assert!(
        env.contains("KEEP=me") && env.contains("CONTAINER_VERSION=5"),
        "{env}"
    );
    assert_eq!(info["status"], "running", "its command still runs");
    rig.cleanup(&rs);
    let left = docker_ok(&[
        "images",
        "-q",
        "--filter",
        &format!("reference=gpudeck-snapshot:{rs}-*"),
    ]);
    assert!(left.is_empty(), "{left}");
}

/// What the engine did to container `c` since `since` (Unix seconds), in order: "pause",
/// "commit", "kill 9", "kill 15", …
fn engine_events(c: &str, since: f64) -> Vec<String> {
    let until = unix_now();
    docker_ok(&[
        "events",
        "--since",
        &format!("{since:.3}"),
        "--until",
        &format!("{until:.3}"),
        "--filter",
        &format!("container={c}"),
        "--format",
        "{{.Action}} {{index .Actor.Attributes \"signal\"}}",
    ])
    .lines()
    .map(|l| l.trim().to_string())
    .collect()
}

fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// The layer way: a workload in which nothing handles the stop signal is committed frozen and
/// killed meanwhile (there is nothing it could write on its way down); one that handles it is stopped
/// gracefully first and what it writes then is kept. A handler in any process of the container
/// (a `docker exec` session too) keeps the graceful stop, and a paused replicaSet is committed
/// as it is.
#[test]
fn the_layer_way_commits_a_quiet_workload_frozen_and_lets_a_listening_one_finish() {
    let rig = Rig::new(0);
    rig.fake.always_env("GPUDECK_CARRY", "layers");
    let run = |rs: &str, cmd: &[&str]| {
        let mut a = vec!["rs", "run", rs, "--image", TEST_IMAGE, "--"];
        a.extend_from_slice(cmd);
        rig.ok(&a)
    };
    let at = |ev: &[String], what: &str| ev.iter().position(|e| e == what);

    let quiet = name("quiet");
    run(&quiet, &["sleep", "1000000"]);
    rig.sh(&quiet, "echo mine > /mine");
    let t0 = unix_now();
    assert_eq!(rig.ok(&["rs", "restart", &quiet])["version"], 2);
    let ev = engine_events(&format!("{quiet}-1"), t0);
    let (pause, commit, kill) = (at(&ev, "pause"), at(&ev, "commit"), at(&ev, "kill 9"));
    // Both while frozen: the kill (SIGKILL runs none of its code) overlaps the commit.
    assert!(
        pause.is_some() && commit.is_some() && kill.is_some() && pause < commit && pause < kill,
        "frozen, then committed and killed: {ev:?}"
    );
    assert!(at(&ev, "kill 15").is_none(), "{ev:?}");
    assert_eq!(rig.sh(&quiet, "cat /mine")["stdout"], "mine\n");

    let listening = name("listen");
    run(
        &listening,
        &[
            "sh",
            "-c",
            "trap 'echo bye > /bye; exit 0' TERM; while true; do sleep 0.2; done",
        ],
    );
    let t0 = unix_now();
    assert_eq!(rig.ok(&["rs", "restart", &listening])["version"], 2);
    let ev = engine_events(&format!("{listening}-1"), t0);
    let (stop, commit) = (at(&ev, "kill 15"), at(&ev, "commit"));
    assert!(
        stop.is_some() && stop < commit,
        "stopped, then committed: {ev:?}"
    );
    assert!(at(&ev, "kill 9").is_none(), "{ev:?}");
    // What it wrote on the stop signal is in the new version.
    assert_eq!(rig.sh(&listening, "cat /bye")["stdout"], "bye\n");
    assert_eq!(rig.ok(&["rs", "info", &listening])["status"], "running");

    // A quiet main process, and a `docker exec` session that handles SIGTERM.
    let exec = name("exec");
    run(&exec, &["sleep", "1000000"]);
    docker_ok(&[
        "exec",
        "-d",
        &format!("{exec}-1"),
        "sh",
        "-c",
        "trap 'exit 0' TERM; while true; do sleep 0.2; done",
    ]);
    std::thread::sleep(std::time::Duration::from_millis(500));
    let t0 = unix_now();
    rig.ok(&["rs", "restart", &exec]);
    let ev = engine_events(&format!("{exec}-1"), t0);
    assert!(
        at(&ev, "kill 15").is_some() && at(&ev, "kill 9").is_none(),
        "{ev:?}"
    );

    // Paused by its user: committed as it is, and the new version runs.
    let paused = name("paused");
    run(&paused, &["sleep", "1000000"]);
    rig.sh(&paused, "echo still > /still");
    rig.ok(&["rs", "pause", &paused]);
    let v = rig.ok(&["rs", "restart", &paused]);
    assert_eq!(
        (v["version"].as_u64(), v["status"].as_str()),
        (Some(2), Some("running"))
    );
    assert_eq!(rig.sh(&paused, "cat /still")["stdout"], "still\n");
    for rs in [&quiet, &listening, &exec, &paused] {
        rig.cleanup(rs);
    }
}

/// The frozen way's steps (a commit, or the archive way), each a crash: the next start undoes
/// it (the old version runs again, no longer frozen) or finishes it, and no file is lost.
#[test]
fn a_crash_at_any_step_of_a_frozen_commit_loses_nothing() {
    let rig = Rig::new(2);
    // The layer way (committed frozen, killed meanwhile), and the archive way (killed while
    // the new container is made, its files read from the stopped one).
    let ways: [(&str, &[&str]); 2] = [
        (
            "layers",
            &[
                "claimed",
                "committed",
                "stopped_old",
                "created",
                "started",
                "recorded",
            ],
        ),
        // After "begun", which comes before the freeze.
        ("archive", &FOLDER_STEPS[1..]),
    ];
    for (carry, steps) in ways {
        rig.fake.always_env("GPUDECK_CARRY", carry);
        for &step in steps {
            let rs = name("fz");
            rig.ok(&[
                "rs", "run", &rs, "--image", TEST_IMAGE, "--gpus", "1", "--", "sleep", "1000000",
            ]);
            rig.sh(&rs, "echo precious > /precious");
            let args = ["rs", "patch", &rs, "--gpus", "2"];
            if step == "saved" {
                rig.fake.crash_after_reply_at(step, &args);
            } else {
                rig.fake.crash_at(step, &args);
            }
            let info = rig.ok(&["rs", "info", &rs]);
            assert_eq!(info["status"], "running", "{carry} {step}: {info}");
            let expect = if matches!(step, "recorded" | "saved") {
                2
            } else {
                1
            };
            assert_eq!(info["version"], expect, "{step}");
            assert_eq!(Rig::gpus_of(&info).len(), expect as usize, "{step}");
            assert_eq!(
                rig.sh(&rs, "cat /precious")["stdout"],
                "precious\n",
                "{step}"
            );
            assert_eq!(containers_of(&rs), 1, "{step}: one container");
            if expect == 2 {
                rig.ok(&["rs", "rollback", &rs, "1"]);
                assert_eq!(
                    rig.sh(&rs, "cat /precious")["stdout"],
                    "precious\n",
                    "{carry} {step}: rollback"
                );
            }
            rig.cleanup(&rs);
        }
    }
}

/// A small file system mounted (tmpfs) for the test, unmounted when dropped.
struct SmallFs(tempfile::TempDir);

impl SmallFs {
    fn mount(mb: u32, filled_mb: u32) -> SmallFs {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().to_str().unwrap();
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={mb}m"), "tmpfs", p])
            .status()
            .unwrap();
        assert!(ok.success(), "mount tmpfs on {p}");
        let fill = std::process::Command::new("dd")
            .args([
                "if=/dev/zero",
                &format!("of={p}/fill"),
                "bs=1M",
                &format!("count={filled_mb}"),
            ])
            .output()
            .unwrap();
        assert!(fill.status.success());
        SmallFs(dir)
    }
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg(self.0.path())
            .status();
    }
}

/// The layer way checks, before anything is stopped, that the old container's commit and the
/// new container fit where the engine keeps its data, asking the engine for the sizes (real
/// containers, a real 256 MB file system with 100 MB free): a container that changed 4 MB
/// passes, one that changed 40 MB is refused with how much it needs and how much is free.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_layer_way_checks_for_room_before_stopping_anything() {
    use gpudeck_core::replicaset::check_room_at;
    let driver = docker_ok(&["info", "-f", "{{.Driver}}"]);
    let d = gpudeck_core::docker::DockerAdapter::new(None)
        .unwrap()
        .connect()
        .await
        .unwrap();
    let changed = |mb: u32| {
        let c = Container::run(&unique("gpudeck-room"), &[], &["sleep", "300"]);
        docker_ok(&[
            "exec",
            &c.0,
            "dd",
            "if=/dev/zero",
            "of=/changed",
            "bs=1M",
            &format!("count={mb}"),
        ]);
        c
    };
    let (small, big) = (changed(4), changed(40));
    let fs = SmallFs::mount(256, 156);
    check_room_at(&d, "small", &small.0, fs.0.path(), &driver)
        .await
        .expect("4 MB of changes fit in 100 MB");
    let e = check_room_at(&d, "big", &big.0, fs.0.path(), &driver)
        .await
        .expect_err("40 MB of changes, twice over, leave less than 64 MB spare")
        .to_string();
    assert!(
        e.contains("short of disk space")
            && e.contains("Nothing was stopped")
            && e.contains("MB are free"),
        "{e}"
    );
    // Nothing was touched: both still run.
    for c in [&small, &big] {
        assert_eq!(
            docker_ok(&["inspect", "-f", "{{.State.Status}}", &c.0]),
            "running"
        );
    }
}

/// An operation that fails and whose undo fails too (a fault: out of file descriptors, the
/// engine gone a moment) is settled by the running service, with no restart: its replicaSet is
/// back as it was, one container, running.
#[test]
fn a_failure_whose_undo_failed_too_settles_without_a_restart() {
    let rig = Rig::new(2);
    for step in ["stopped_old", "created"] {
        let rs = name("ab");
        rig.fake.start_service_with(&[]);
        rig.run_rs(&rs, &["--gpus", "1"]);
        rig.sh(&rs, "echo precious > /precious");
        rig.fake.start_service_with(&[
            ("GPUDECK_FAIL_AT", &format!("{step},undo")),
            ("GPUDECK_SETTLE_EVERY_MS", "300"),
        ]);
        let out = rig
            .fake
            .cli_command(&["rs", "restart", &rs])
            .output()
            .unwrap();
        assert!(!out.status.success(), "{step}: the restart should fail");
        let t0 = std::time::Instant::now();
        let info = loop {
            let info = rig.ok(&["rs", "info", &rs]);
            if info["status"] == "running" && containers_of(&rs) == 1 {
                break info;
            }
            assert!(
                t0.elapsed() < std::time::Duration::from_secs(15),
                "{step}: not settled: {info}"
            );
            std::thread::sleep(std::time::Duration::from_millis(200));
        };
        assert_eq!(info["version"], 1, "{step}: {info}");
        assert_eq!(
            rig.sh(&rs, "cat /precious")["stdout"],
            "precious\n",
            "{step}"
        );
        rig.ok(&["rs", "rm", &rs]);
    }
    rig.fake.start_service_with(&[]);
}
