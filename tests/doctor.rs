//! `gpudeck doctor` and the Docker connection, against the real engine and the fake NVML.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed step should panic

mod common;

use std::time::Duration;

use common::*;
use gpudeck_core::docker::{self, ContainerDirectory, DockerStatus};
use tokio::sync::watch;

#[test]
fn doctor_checks_every_part_of_the_host() {
    let fake = FakeNvml::new(4);
    let v = json(&fake.cli(&["doctor", "--json"]));
    let checks = v.as_array().unwrap();
    let by_id = |id: &str| {
        checks
            .iter()
            .find(|c| c["id"] == id)
            .unwrap_or_else(|| panic!("no {id} check"))
    };
    assert_eq!(checks.len(), 6);
    // No ufw here: published ports on every interface are fine, and it says so.
    assert_eq!(by_id("firewall")["status"], "ok", "{v}");
    assert_eq!(by_id("docker")["status"], "ok", "{v}");
    assert_eq!(by_id("nvml")["status"], "ok");
    assert!(by_id("nvml")["summary"]
        .as_str()
        .unwrap()
        .contains("4 GPU(s)"));
    assert_eq!(
        by_id("nvidia_container")["status"],
        "ok",
        "the rig's hook is on PATH: {v}"
    );
    // It names the driver the engine really uses, and the way files are carried there.
    let driver = docker_ok(&["info", "-f", "{{.Driver}}"]);
    let summary = by_id("storage_driver")["summary"]
        .as_str()
        .unwrap()
        .to_string();
    let way = if driver == "overlay2" {
        "a copy of the old container's upper directory"
    } else {
        "through the Docker API: what the old container added and changed is written into the new one"
    };
    assert!(
        summary.starts_with(&format!("storage driver {}", driver.trim())) && summary.contains(way),
        "{summary}"
    );
    let vl = by_id("volume_limits")["summary"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(vl.contains("size limits available"), "{vl}");
    // The service's own data folder (--data-dir), not the home folder of whoever runs it.
    let ours = fake.data_dir().join("volumes");
    assert!(
        vl.starts_with(&format!("{} is on", ours.display())),
        "doctor checks another folder than the service's: {vl}"
    );
    for c in checks {
        if c["status"] != "ok" {
            assert!(
                c["fix"].as_str().is_some_and(|f| !f.is_empty()),
                "a problem without a fix: {c}"
            );
        }
    }
}

#[test]
fn doctor_fails_with_a_fix_when_docker_is_unreachable() {
    let fake = FakeNvml::new(1);
    let data = fake.dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(
        data.join("settings.json"),
        r#"{"settings":{"dockerEndpoint":"unix:///nonexistent/docker.sock"}}"#,
    )
    .unwrap();
    let out = fake.cli(&["doctor", "--json"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "a failed check fails the command"
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let d = v
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "docker")
        .unwrap()
        .clone();
    assert_eq!(d["status"], "fail");
    assert!(
        d["summary"]
            .as_str()
            .unwrap()
            .contains("/nonexistent/docker.sock"),
        "{d}"
    );
    assert!(d["fix"]
        .as_str()
        .unwrap()
        .contains("systemctl start docker"));
}

#[test]
fn an_invalid_saved_setting_is_refused_with_the_field_named() {
    let fake = FakeNvml::new(1);
    let data = fake.dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(
        data.join("settings.json"),
        r#"{"settings":{"sampleIntervalMs":5}}"#,
    )
    .unwrap();
    // The service does not start on settings it cannot honour, and says which one.
    let out = fake.service_command().output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("sampleIntervalMs") && err.contains("250"),
        "{err}"
    );
    assert!(!fake.socket().exists(), "no socket without a service");
}

/// The monitor reports an unreachable engine with its reason, then connects as soon as the
/// endpoint is corrected, and fills the container directory from the engine.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn monitor_reconnects_when_the_endpoint_is_fixed() {
    let (ep_tx, ep_rx) = watch::channel(Some("unix:///nonexistent/docker.sock".to_string()));
    let (st_tx, mut st_rx) = watch::channel(DockerStatus::Connecting {
        endpoint: String::new(),
    });
    let dir = std::sync::Arc::new(std::sync::RwLock::new(ContainerDirectory::default()));
    let (ch_tx, ch_rx) = watch::channel(0u64);
    let task = tokio::spawn(docker::monitor(
        ep_rx,
        st_tx,
        dir.clone(),
        ch_tx,
        Duration::from_secs(30),
    ));

    let st = tokio::time::timeout(
        Duration::from_secs(10),
        st_rx.wait_for(|s| matches!(s, DockerStatus::Unreachable { .. })),
    )
    .await
    .expect("no unreachable status")
    .unwrap()
    .clone();
    let DockerStatus::Unreachable { endpoint, reason } = st else {
        unreachable!()
    };
    assert_eq!(endpoint, "unix:///nonexistent/docker.sock");
    assert!(!reason.is_empty());

    // Fixing the endpoint reconnects at once, not after the 30 s retry.
    let c = Container::run(
        &unique("gpudeck-dir"),
        &["--gpus", "device=GPU-x"],
        &["sleep", "300"],
    );
    ep_tx.send_replace(None);
    let st = tokio::time::timeout(
        Duration::from_secs(10),
        st_rx.wait_for(|s| matches!(s, DockerStatus::Connected { .. })),
    )
    .await
    .expect("did not reconnect in time")
    .unwrap()
    .clone();
    let DockerStatus::Connected { info } = st else {
        unreachable!()
    };
    assert!(info.server_version.is_some());
    let end = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let held = dir.read().unwrap().holders_of(0, Some("GPU-x"));
        if held.iter().any(|r| r.name == c.0) {
            break;
        }
        assert!(
            std::time::Instant::now() < end,
            "directory never listed {}",
            c.0
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let seen = *ch_rx.borrow();
    assert!(seen >= 1, "the monitor counts its refreshes");
    drop(c);
    // A removed container leaves the directory on the engine's event.
    let end = std::time::Instant::now() + Duration::from_secs(5);
    while !dir.read().unwrap().holders_of(0, Some("GPU-x")).is_empty() {
        assert!(
            std::time::Instant::now() < end,
            "directory kept a removed container"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(*ch_rx.borrow() > seen, "the removal was announced");
    task.abort();
}
