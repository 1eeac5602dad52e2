//! GPUs, live: the NVML adapter, the sampler and `gpudeck gpus`, against the fake NVML C library
//! (loaded through nvml-wrapper exactly as the real driver is) and the real Docker engine.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed step should panic

mod common;

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use common::*;
use gpudeck_core::docker::ContainerDirectory;
use gpudeck_core::gpu::{GpuSampler, NvmlSource, NvmlState};

#[test]
fn reads_every_field_through_the_nvml_abi() {
    let fake = FakeNvml::new(4);
    let _env = fake.install_env();
    let src = NvmlSource::open(Some(&fake.lib)).unwrap();
    let raw = src.sample().unwrap();
    assert_eq!(raw.driver_version.as_deref(), Some("550.54.15"));
    assert_eq!(raw.cuda_driver_version.as_deref(), Some("12.4"));
    assert_eq!(raw.gpus.len(), 4);
    let g = &raw.gpus[2];
    assert_eq!(g.index, 2);
    assert_eq!(g.name.as_deref(), Some("NVIDIA A100-SXM4-80GB"));
    assert_eq!(g.uuid.as_deref(), Some(fake.gpus[2].uuid.as_str()));
    assert_eq!(g.compute_capability.as_deref(), Some("8.0"));
    assert_eq!(g.memory_total_bytes, Some(80 << 30));
    assert_eq!(g.memory_used_bytes, Some(3 << 30));
    assert_eq!(g.utilization_gpu_pct, Some(12));
    assert_eq!(g.utilization_memory_pct, Some(5));
    assert_eq!(g.temperature_c, Some(42));
    assert_eq!(g.power_draw_mw, Some(102_000));
    assert_eq!(g.power_limit_mw, Some(400_000));
    assert_eq!(g.fan_pct, None, "a passively cooled board has no fan");
    assert_eq!(
        (g.clock_graphics_mhz, g.clock_sm_mhz, g.clock_memory_mhz),
        (Some(1410), Some(1410), Some(1593))
    );
    assert_eq!(g.processes.as_deref(), Some(&[][..]));
}

#[test]
fn each_unsupported_field_is_na_on_its_own() {
    let mut fake = FakeNvml::new(2);
    let g = &mut fake.gpus[1];
    (g.util, g.temp, g.power_mw, g.mem_total) = (-1, -1, -1, -1);
    fake.write();
    let _env = fake.install_env();
    let raw = NvmlSource::open(Some(&fake.lib)).unwrap().sample().unwrap();
    let g = &raw.gpus[1];
    assert_eq!(
        (
            g.utilization_gpu_pct,
            g.temperature_c,
            g.power_draw_mw,
            g.memory_total_bytes
        ),
        (None, None, None, None)
    );
    assert_eq!(g.name.as_deref(), Some("NVIDIA A100-SXM4-80GB"));
    assert_eq!(g.power_limit_mw, Some(400_000));
    assert_eq!(
        raw.gpus[0].temperature_c,
        Some(40),
        "the other GPU is untouched"
    );
}

#[test]
fn a_missing_symbol_is_just_an_unsupported_field() {
    let fake = FakeNvml::with_lib(2, true);
    let _env = fake.install_env();
    let raw = NvmlSource::open(Some(&fake.lib)).unwrap().sample().unwrap();
    let g = &raw.gpus[0];
    assert_eq!(
        (g.power_draw_mw, g.power_limit_mw, g.fan_pct),
        (None, None, None)
    );
    assert_eq!(
        g.processes, None,
        "no process list without nvmlDeviceGetComputeRunningProcesses_v3"
    );
    assert_eq!(g.utilization_gpu_pct, Some(10));
    assert_eq!(g.temperature_c, Some(40));
}

#[test]
fn no_driver_is_a_clear_state_not_a_crash() {
    let missing = std::path::Path::new("/nonexistent/libnvidia-ml.so.1");
    let err = NvmlSource::open(Some(missing))
        .err()
        .expect("must fail")
        .to_string();
    assert!(err.contains("/nonexistent/libnvidia-ml.so.1"), "{err}");
    assert!(err.contains("GPUDECK_NVML_LIB"), "says what to do: {err}");

    let dir = Arc::new(RwLock::new(ContainerDirectory::default()));
    let h = GpuSampler::spawn(Some(missing.into()), Duration::from_millis(50), dir);
    let end = Instant::now() + Duration::from_secs(5);
    loop {
        let s = h.latest();
        if let NvmlState::Unavailable { reason } = &s.nvml {
            if reason != "starting" {
                assert!(reason.contains("not found or not loadable"), "{reason}");
                assert!(s.gpus.is_empty());
                break;
            }
        }
        assert!(
            Instant::now() < end,
            "sampler never reported the missing driver"
        );
        std::thread::sleep(Duration::from_millis(20));
    }

    // Through the service, which cannot load the driver either.
    let fake = FakeNvml::new(1);
    fake.start_service_with(&[("GPUDECK_NVML_LIB", missing.to_str().unwrap())]);
    let out = fake.cli(&["gpus", "--json"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    assert!(
        err.starts_with("gpudeck: The NVIDIA driver library could not be loaded"),
        "{err}"
    );
}

#[test]
fn the_sampler_publishes_a_changed_reading_within_an_interval() {
    let mut fake = FakeNvml::new(8);
    let _env = fake.install_env();
    let dir = Arc::new(RwLock::new(ContainerDirectory::default()));
    let h = GpuSampler::spawn(Some(fake.lib.clone()), Duration::from_millis(100), dir);
    let mut rx = h.subscribe();
    let wait_for = |rx: &mut tokio::sync::watch::Receiver<Arc<gpudeck_core::gpu::GpuSnapshot>>,
                    util: u32| {
        let end = Instant::now() + Duration::from_secs(3);
        loop {
            let s = rx.borrow_and_update().clone();
            if s.gpus.len() == 8 && s.gpus[5].utilization_gpu_pct == Some(util) {
                return Instant::now();
            }
            assert!(Instant::now() < end, "never saw utilization {util}");
            std::thread::sleep(Duration::from_millis(10));
        }
    };
    wait_for(&mut rx, 15);
    fake.gpus[5].util = 97;
    fake.write();
    let changed = Instant::now();
    let seen = wait_for(&mut rx, 97);
    assert!(
        seen - changed < Duration::from_secs(1),
        "took {:?}",
        seen - changed
    );
    let hist = h.history();
    assert_eq!(hist.len(), 8);
    assert!(hist[&5].len() >= 2);
    assert_eq!(hist[&5].last().unwrap().utilization_gpu_pct, Some(97));
}

/// A real container given GPU 1 by a Docker device request (through the stand-in hook) is shown
/// as holding it; a process of another container, found on GPU 2 by "NVML", is attributed to that
/// container through /proc/<pid>/cgroup, with no --pid=host anywhere.
#[test]
fn gpus_cli_attributes_holders_and_processes_to_containers() {
    let mut fake = FakeNvml::new(4);
    let holder_name = unique("gpudeck-holder");
    let worker_name = unique("gpudeck-worker");
    let device = format!("device={}", fake.gpus[1].uuid);
    let holder = Container::run(&holder_name, &["--gpus", &device], &["sleep", "300"]);
    // The device request reaches the container's own process (docker exec gets Config.Env only).
    let env = docker_ok(&[
        "exec",
        &holder.0,
        "sh",
        "-c",
        "tr '\\0' '\\n' </proc/1/environ",
    ]);
    assert!(
        env.contains(&format!("NVIDIA_VISIBLE_DEVICES={}", fake.gpus[1].uuid)),
        "{env}"
    );
    let worker = Container::run(&worker_name, &[], &["sleep", "300"]);
    fake.procs = vec![(2, worker.pid(), 3 << 30), (2, 1, 1 << 30)];
    fake.write();

    let v = json(&fake.cli(&["gpus", "--json"]));
    assert_eq!(v["nvml"]["state"], "ok");
    let gpus = v["gpus"].as_array().unwrap();
    assert_eq!(gpus.len(), 4);
    let held: Vec<&str> = gpus[1]["heldBy"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(held, vec![holder_name.as_str()]);
    assert!(gpus[0]["heldBy"].as_array().unwrap().is_empty());
    let procs = gpus[2]["processes"].as_array().unwrap();
    assert_eq!(procs.len(), 2);
    assert_eq!(procs[0]["container"]["name"], worker_name.as_str());
    assert_eq!(procs[0]["usedMemoryBytes"], 3u64 << 30);
    assert!(
        procs[1]["container"].is_null(),
        "pid 1 of the host belongs to no container"
    );

    let table = fake.cli(&["gpus"]);
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(text.contains(&holder_name), "{text}");
    assert!(
        text.lines()
            .any(|l| l.starts_with("3    NVIDIA A100-SXM4-80GB")),
        "{text}"
    );
}
