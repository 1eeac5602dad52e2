//! Volumes through `gpudeck vol`, against the real engine: sizes really enforced (ENOSPC inside
//! the container), resize with every byte kept, crash recovery at every step, refusals.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use serde_json::Value;

fn name(prefix: &str) -> String {
    unique(prefix).replace('-', "")
}

fn gd(fake: &FakeNvml, args: &[&str]) -> std::process::Output {
    fake.cli(args)
}

fn ok(fake: &FakeNvml, args: &[&str]) -> Value {
    let mut a = args.to_vec();
    a.insert(1, "--json");
    json(&gd(fake, &a))
}

fn fail(fake: &FakeNvml, args: &[&str]) -> String {
    let out = gd(fake, args);
    assert!(!out.status.success(), "{args:?} should fail");
    String::from_utf8_lossy(&out.stderr).to_string()
}

/// Runs `script` in a throwaway container with `vol` at /v; (exit code, output).
fn in_volume(vol: &str, script: &str) -> (i32, String) {
    let out = docker(&[
        "run",
        "--rm",
        "-v",
        &format!("{vol}:/v"),
        TEST_IMAGE,
        "sh",
        "-c",
        script,
    ]);
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// The kind of limit volumes get where this runs: image files here; `tests/vm/run.sh` runs this
/// binary again on XFS with project quotas and sets GPUDECK_EXPECT_BACKEND=xfs-quota.
fn expected_backend() -> String {
    std::env::var("GPUDECK_EXPECT_BACKEND").unwrap_or_else(|_| "image-file".into())
}

/// What backs the versions of `v` on disk: image files or quota folders named `<v>-<N>`.
fn backings(fake: &FakeNvml, v: &str) -> Vec<String> {
    let Ok(dir) = std::fs::read_dir(fake.dir.path().join("data/volumes")) else {
        return vec![]; // nothing made yet
    };
    let mut found: Vec<String> = dir
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with(&format!("{v}-")))
        .collect();
    found.sort();
    found
}

const FILL: &str = "cd /v && dd if=/dev/urandom of=known bs=1M count=10 2>/dev/null && ln known hard && ln -s known sym && chown 1234:99 known && chmod 640 known && dd if=/dev/zero of=sparse bs=1 count=0 seek=5242880 2>/dev/null && sha256sum known > sum";
const CHECK: &str = "cd /v && sha256sum -c sum >/dev/null && stat -c '%h %u:%g %a' known && readlink sym && stat -c '%s' sparse && du -k sparse | cut -f1";

#[test]
fn size_is_enforced_and_resize_keeps_every_byte() {
    let fake = FakeNvml::new(1);
    let v = name("data");
    let c = ok(&fake, &["vol", "create", &v, "--size", "20MB"]);
    assert_eq!(
        (c["version"].as_u64(), c["sizeBytes"].as_u64()),
        (Some(1), Some(20_000_000))
    );
    assert_eq!(c["backend"], expected_backend().as_str());
    assert_eq!(backings(&fake, &v).len(), 1);
    let d1 = format!("{v}-1");
    assert_eq!(in_volume(&d1, FILL).0, 0);
    let (code, out) = in_volume(&d1, "dd if=/dev/zero of=/v/big bs=1M count=30");
    assert_ne!(code, 0, "writing 30 MB into 20 MB must fail");
    assert!(out.contains("No space left on device"), "{out}");
    in_volume(&d1, "rm -f /v/big");
    let (code, before) = in_volume(&d1, CHECK);
    assert_eq!(code, 0, "{before}");
    assert!(
        before.starts_with("2 1234:99 640\nknown\n5242880\n"),
        "{before}"
    );

    let g = ok(&fake, &["vol", "resize", &v, "--size", "50MB"]);
    assert_eq!(
        (g["version"].as_u64(), g["dockerName"].as_str()),
        (Some(2), Some(format!("{v}-2").as_str()))
    );
    let d2 = format!("{v}-2");
    assert_eq!(
        in_volume(&d2, CHECK),
        (0, before.clone()),
        "every byte, owner, link and hole kept"
    );
    let (code, out) = in_volume(&d2, "dd if=/dev/zero of=/v/big bs=1M count=30 && rm /v/big");
    assert_eq!(code, 0, "30 MB fits in 50 MB now: {out}");
    assert!(
        docker(&["volume", "inspect", &d1]).status.code() != Some(0),
        "the old version is retired"
    );

    let err = fail(&fake, &["vol", "resize", &v, "--size", "5MB"]);
    assert!(
        err.contains("uses 10.") && err.contains("asked 5.0 MB"),
        "{err}"
    );
    assert_eq!(
        ok(&fake, &["vol", "history", &v]).as_array().unwrap().len(),
        2,
        "nothing changed"
    );

    let s = ok(&fake, &["vol", "resize", &v, "--size", "15MB"]);
    assert_eq!(s["version"], 3);
    assert_eq!(in_volume(&format!("{v}-3"), CHECK), (0, before.clone()));

    // Tighter than resize2fs will shrink to: the files are copied one by one instead, and when
    // they do not fit after all (the file system needs room of its own), nothing changes.
    let tight = gd(&fake, &["vol", "--json", "resize", &v, "--size", "12MB"]);
    let now = if tight.status.success() { 4 } else { 3 };
    if !tight.status.success() {
        let err = String::from_utf8_lossy(&tight.stderr);
        assert!(err.contains("do not fit"), "{err}");
        assert!(
            docker(&["volume", "inspect", &format!("{v}-4")])
                .status
                .code()
                != Some(0),
            "no half-made version left"
        );
    }
    assert_eq!(in_volume(&format!("{v}-{now}"), CHECK), (0, before));
    let h = ok(&fake, &["vol", "history", &v]);
    let sizes: Vec<u64> = h
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["sizeBytes"].as_u64().unwrap())
        .collect();
    let mut want = vec![20_000_000, 50_000_000, 15_000_000];
    if now == 4 {
        want.push(12_000_000);
    }
    assert_eq!(sizes, want);
    ok(&fake, &["vol", "rm", &v]);
    assert_eq!(
        ok(&fake, &["vol", "history", &v]).as_array().unwrap().len(),
        want.len(),
        "history stays after delete"
    );
}

#[test]
fn a_resize_moves_the_replicaset_that_binds_it() {
    let fake = FakeNvml::new(1);
    let v = name("ds");
    let rs = name("job");
    ok(&fake, &["vol", "create", &v, "--size", "20MB"]);
    let bind = format!("{v}-1:/data");
    ok(
        &fake,
        &[
            "rs", "run", &rs, "--image", TEST_IMAGE, "--bind", &bind, "--", "sleep", "1000000",
        ],
    );
    ok(
        &fake,
        &[
            "rs",
            "exec",
            &rs,
            "--",
            "sh",
            "-c",
            "echo precious > /data/p && echo mine > /inside",
        ],
    );
    let err = fail(&fake, &["vol", "resize", &v, "--size", "40MB"]);
    assert!(
        err.contains(&format!("{rs}-1")) && err.contains("--move"),
        "{err}"
    );
    assert!(err.lines().count() == 1);

    ok(&fake, &["vol", "resize", &v, "--size", "40MB", "--move"]);
    let info = ok(&fake, &["rs", "info", &rs]);
    assert_eq!(info["version"], 2);
    assert_eq!(info["spec"]["binds"][0]["src"], format!("{v}-2"));
    let cat = ok(
        &fake,
        &["rs", "exec", &rs, "--", "sh", "-c", "cat /data/p /inside"],
    );
    assert_eq!(cat["stdout"], "precious\nmine\n");
    assert!(
        docker(&["volume", "inspect", &format!("{v}-1")])
            .status
            .code()
            != Some(0)
    );

    let err = fail(&fake, &["vol", "rm", &v]);
    assert!(
        err.contains("is used by") && err.contains(&format!("{rs}-2")),
        "{err}"
    );
    ok(&fake, &["rs", "rm", &rs]);
    ok(&fake, &["vol", "rm", &v]);
}

/// A crash at any step of `vol create` leaves nothing: the next command removes what was made,
/// the name is free, and `vol ls` never shows a volume `vol rm` would not know.
#[test]
fn a_crash_at_any_step_of_a_create_leaves_nothing() {
    let fake = FakeNvml::new(1);
    for step in ["create_begun", "create_made", "create_volume"]
        .into_iter()
        .filter(|s| {
            // The emulated VM (tests/vm) runs a few steps only: it is slow.
            std::env::var("GPUDECK_CRASH_STEPS")
                .map_or(true, |only| only.split(',').any(|o| o == *s))
        })
    {
        let v = name("c");
        fake.crash_at(step, &["vol", "create", &v, "--size", "20MB"]);
        let listed = ok(&fake, &["vol", "ls"]);
        assert!(
            listed
                .as_array()
                .unwrap()
                .iter()
                .all(|x| x["name"] != v.as_str()),
            "{step}: {listed}"
        );
        assert!(
            docker(&["volume", "inspect", &format!("{v}-1")])
                .status
                .code()
                != Some(0),
            "{step}: a Docker volume was left"
        );
        assert!(
            backings(&fake, &v).is_empty(),
            "{step}: {:?} left",
            backings(&fake, &v)
        );
        ok(&fake, &["vol", "create", &v, "--size", "20MB"]);
        ok(&fake, &["vol", "rm", &v]);
    }
}

#[test]
fn a_crash_at_any_step_of_a_resize_loses_nothing() {
    let fake = FakeNvml::new(1);
    for step in [
        "begun",
        "users_stopped",
        "created",
        "copied",
        "volume_created",
        "recorded",
        "moved",
    ]
    .into_iter()
    .filter(|s| {
        // The emulated VM (tests/vm) runs a few steps only: it is slow.
        std::env::var("GPUDECK_CRASH_STEPS").map_or(true, |only| only.split(',').any(|o| o == *s))
    }) {
        let v = name("k");
        ok(&fake, &["vol", "create", &v, "--size", "20MB"]);
        assert_eq!(in_volume(&format!("{v}-1"), FILL).0, 0);
        let (_, before) = in_volume(&format!("{v}-1"), CHECK);
        fake.crash_at(step, &["vol", "resize", &v, "--size", "30MB"]);
        let info = ok(&fake, &["vol", "info", &v]);
        let expect = if matches!(step, "recorded" | "moved") {
            2
        } else {
            1
        };
        assert_eq!(info["version"], expect, "{step}: {info}");
        let current = format!("{v}-{expect}");
        assert_eq!(in_volume(&current, CHECK), (0, before), "{step}");
        let other = format!("{v}-{}", 3 - expect);
        assert!(
            docker(&["volume", "inspect", &other]).status.code() != Some(0),
            "{step}: {other} left behind"
        );
        let backed = backings(&fake, &v);
        assert_eq!(backed.len(), 1, "{step}: {backed:?}");
        assert!(backed[0].starts_with(&current), "{step}: {backed:?}");
        if expected_backend() == "image-file" {
            let loops = std::process::Command::new("losetup")
                .arg("-a")
                .output()
                .unwrap();
            let loops = String::from_utf8_lossy(&loops.stdout);
            assert_eq!(
                loops
                    .lines()
                    .filter(|l| l.contains(&format!("/{v}-")))
                    .count(),
                1,
                "{step}: {loops}"
            );
        }
        ok(&fake, &["vol", "rm", &v]);
    }
}

#[test]
fn bad_names_and_sizes_are_refused_clearly() {
    let fake = FakeNvml::new(1);
    for (args, says) in [
        (
            vec!["vol", "create", "Bad-Name", "--size", "20MB"],
            "lowercase letters",
        ),
        (
            vec!["vol", "create", "okvol", "--size", "20XB"],
            "unknown unit",
        ),
        (vec!["vol", "create", "okvol", "--size", "big"], "no number"),
        (
            vec!["vol", "create", "okvol", "--size", "1KB"],
            "smallest volume",
        ),
        (
            vec!["vol", "resize", "nosuchvol", "--size", "20MB"],
            "no volume is named",
        ),
    ] {
        let err = fail(&fake, &args);
        assert!(err.contains(says), "{args:?}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1);
    }
    assert!(docker(&["volume", "inspect", "okvol-1"]).status.code() != Some(0));
    assert_eq!(ok(&fake, &["vol", "ls"]).as_array().unwrap().len(), 0);
}

/// A size the disk cannot give is refused with both sizes, at create and at resize, and
/// nothing is made (an image file is sparse: without the check it would be accepted).
#[test]
fn a_volume_larger_than_the_free_disk_is_refused() {
    let fake = FakeNvml::new(0);
    let v = name("huge");
    let err = fail(&fake, &["vol", "create", &v, "--size", "900TB"]);
    assert!(
        err.contains("would be 900.0 TB")
            && err.contains("but the disk that holds")
            && err.contains("free"),
        "{err}"
    );
    assert!(!docker(&["volume", "inspect", &format!("{v}-1")])
        .status
        .success());
    assert_eq!(ok(&fake, &["vol", "ls"]).as_array().unwrap().len(), 0);
    ok(&fake, &["vol", "create", &v, "--size", "20MB"]);
    let err = fail(&fake, &["vol", "resize", &v, "--size", "900TB"]);
    assert!(err.contains("would be 900.0 TB"), "{err}");
    let info = ok(&fake, &["vol", "info", &v]);
    assert_eq!(info["version"], 1, "{info}");
    ok(&fake, &["vol", "rm", &v]);
}

#[test]
fn volumes_of_every_size_class_are_made() {
    // mke2fs picks 1 KiB blocks under 512 MiB and 4 KiB above; GPU Deck's journal and inode
    // choices must suit both (a 600 MB volume once failed: "journal size ... must be between").
    let fake = FakeNvml::new(1);
    for size in ["100MB", "600MB", "1.5GB"] {
        let v = name("sz");
        let c = ok(&fake, &["vol", "create", &v, "--size", size]);
        assert_eq!(c["version"], 1, "{size}: {c}");
        let (code, out) = in_volume(&format!("{v}-1"), "echo hi > /v/f && cat /v/f");
        assert_eq!((code, out.trim()), (0, "hi"), "{size}");
        ok(&fake, &["vol", "rm", &v]);
    }
}

/// A reboot detaches loop devices and may hand their numbers to other files. Docker is never
/// given a loop number: two volumes bound by two stopped replicaSets, detached and re-attached in
/// the other order (the links on /run gone, as after a reboot), and the first replicaSet still
/// reads its own volume — a plain `docker start` fails instead of mounting the wrong data, and
/// the next GPU Deck command brings each volume back on its own device.
#[test]
fn volumes_come_back_after_a_reboot() {
    if expected_backend() != "image-file" {
        return; // quota folders have nothing to attach
    }
    let fake = FakeNvml::new(1);
    let (a, b) = (name("boota"), name("bootb"));
    let (ra, rb) = (name("ja"), name("jb"));
    let mut devices = Vec::new();
    for (v, rs, word) in [(&a, &ra, "alpha"), (&b, &rb, "beta")] {
        ok(&fake, &["vol", "create", v, "--size", "20MB"]);
        let bind = format!("{v}-1:/data");
        ok(
            &fake,
            &[
                "rs", "run", rs, "--image", TEST_IMAGE, "--bind", &bind, "--", "sleep", "1000000",
            ],
        );
        ok(
            &fake,
            &[
                "rs",
                "exec",
                rs,
                "--",
                "sh",
                "-c",
                &format!("echo {word} > /data/who"),
            ],
        );
        ok(&fake, &["rs", "stop", rs]);
        let given = docker_ok(&[
            "volume",
            "inspect",
            "-f",
            "{{index .Options \"device\"}}",
            &format!("{v}-1"),
        ]);
        assert!(
            given.starts_with("/run/gpudeck/loop/"),
            "Docker is given a stable link, not {given}"
        );
        let real = std::fs::read_link(&given).unwrap().display().to_string();
        assert!(real.starts_with("/dev/loop"), "{real}");
        devices.push((
            given,
            real,
            fake.dir.path().join(format!("data/volumes/{v}-1.img")),
        ));
    }
    // The reboot: the service stops, loop devices are detached, /run cleared, the files attached
    // again the other way round.
    fake.stop_service();
    for (link, real, _) in &devices {
        std::fs::remove_file(link).unwrap();
        assert!(std::process::Command::new("losetup")
            .args(["-d", real])
            .status()
            .unwrap()
            .success());
    }
    for (dev, file) in [
        (&devices[0].1, &devices[1].2),
        (&devices[1].1, &devices[0].2),
    ] {
        let st = std::process::Command::new("losetup")
            .arg(dev)
            .arg(file)
            .status()
            .unwrap();
        assert!(st.success(), "could not attach {} at {dev}", file.display());
    }
    let plain = docker(&["start", &format!("{ra}-1")]);
    assert!(
        !plain.status.success(),
        "docker start must not mount another volume's data"
    );
    // The service, started again at boot, re-attaches the files before it serves anything.
    ok(&fake, &["rs", "continue", &ra]);
    let who = ok(&fake, &["rs", "exec", &ra, "--", "cat", "/data/who"]);
    assert_eq!(who["stdout"], "alpha\n", "it reads its own volume");
    ok(&fake, &["rs", "continue", &rb]);
    assert_eq!(
        ok(&fake, &["rs", "exec", &rb, "--", "cat", "/data/who"])["stdout"],
        "beta\n"
    );
    for rs in [&ra, &rb] {
        ok(&fake, &["rs", "rm", rs]);
    }
    for v in [&a, &b] {
        ok(&fake, &["vol", "rm", v]);
    }
}

/// A volume an earlier GPU Deck gave Docker as `/dev/loopN`, still referenced by a container (so
/// it cannot be re-created): after a reboot its file goes back on that very number, and the
/// container mounts its own data.
#[test]
fn a_volume_given_as_a_loop_number_gets_its_number_back_after_a_reboot() {
    if expected_backend() != "image-file" {
        return;
    }
    let fake = FakeNvml::new(1);
    let losetup = |args: &[&str]| -> String {
        let out = std::process::Command::new("losetup")
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "losetup {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    // Two decoys first, so the volume lands above numbers a reboot will free.
    let decoys: Vec<String> = (0..2)
        .map(|i| {
            let f = fake.dir.path().join(format!("decoy{i}.img"));
            std::fs::File::create(&f).unwrap().set_len(1 << 20).unwrap();
            losetup(&["-f", "--show", f.to_str().unwrap()])
        })
        .collect();
    let v = name("legacy");
    let dv = format!("{v}-1");
    ok(&fake, &["vol", "create", &v, "--size", "20MB"]);
    assert_eq!(in_volume(&dv, "echo mine > /v/who").0, 0);
    let link = format!("/run/gpudeck/loop/{dv}");
    let number = std::fs::read_link(&link).unwrap().display().to_string();
    // As the earlier build made it: the loop number itself, and a container that references it.
    docker_ok(&["volume", "rm", &dv]);
    let device = format!("device={number}");
    docker_ok(&[
        "volume",
        "create",
        "-d",
        "local",
        "-o",
        "type=ext4",
        "-o",
        &device,
        "--label",
        &format!("gpudeck.volume={v}"),
        "--label",
        "gpudeck.version=1",
        &dv,
    ]);
    let user = Container(format!("{v}-user"));
    docker_ok(&[
        "create",
        "--name",
        &user.0,
        "-v",
        &format!("{dv}:/v"),
        TEST_IMAGE,
        "cat",
        "/v/who",
    ]);
    // The reboot: the service stops, everything is detached, /run cleared.
    fake.stop_service();
    std::fs::remove_file(&link).unwrap();
    losetup(&["-d", &number]);
    for d in &decoys {
        losetup(&["-d", d]);
    }
    ok(&fake, &["vol", "ls"]);
    assert_eq!(
        std::fs::read_link(&link).unwrap().display().to_string(),
        number
    );
    assert_eq!(docker_ok(&["start", "-a", &user.0]), "mine");
    drop(user);
    ok(&fake, &["vol", "rm", &v]);
}
