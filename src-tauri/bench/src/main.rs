//! `gpudeck-bench`: measured figures for the README (not a test; machines are noisy).
//!
//! 1. The GPU sampler's CPU cost with 8 fake GPUs at 1 Hz, as % of one core, side by side with
//!    the same NVML reads done by a bare loop (the floor: what the driver calls cost by themselves).
//! 2. The app's idle RSS and CPU% over a window with the GPU page open under Xvfb (app + WebKit
//!    processes).
//! 3. Cold start: process spawn to the GPU page showing data (the UI reports it; see `ui_ready`).
//!
//! 4. ReplicaSets (with `--replicasets`, needs the Docker engine and the rig's test image):
//!    `gpudeck rs run` vs `docker run`; a patch carrying ~200 MB of changes vs `docker commit` +
//!    `docker run` of the same container; and the same patch over a 50 MB and a 500 MB image,
//!    beside the same change carried by `docker commit` + `docker run` over those two images (how
//!    much the engine's own work grows with the image).
//!
//! 5. Volumes (with `--volumes`, root): resize copy throughput for ~500 MB of mixed files (many
//!    small, some large, a sparse one) vs `cp -a` of the same tree between two ext4 images.
//!
//! 6. The service (with `--service`, root, the engine and the test image): `gpudeck rs ls` with
//!    100 replicaSets through gpudeckd vs the same code inside the CLI (`--local`), and the
//!    service's CPU with 10 clients streaming GPU samples.
//!
//! 7. Images (with `--images`, root, the engine, Debian's docker-registry): pull and push of a
//!    ~200 MB image of several layers through GPU Deck vs `docker pull`/`docker push`, against a
//!    fresh local registry each time; a second push (every layer exists); and the time from the
//!    request to the first progress event a client gets.
//!
//! 8. gpu-docker-api's REST API (with `--gda`, root, the engine): `GET /api/v1/replicaSet/NAME`
//!    with 16 concurrent keep-alive clients for 10 s: requests a second and p99 latency, beside
//!    the same lookup through the CLI (`gpudeck rs info NAME --json`).
//!
//! 9. The catalog (with `--catalog`, root, the engine): a launch from the catalog vs `gpudeck rs
//!    run` of the same argv; listing 5,000 entries with a filter of four expressions (the filter
//!    in-process, and the whole `gpudeck catalog ls` through the service).
//!
//! The CLI commands run against a gpudeckd the benchmark starts (beside the CLI).
//!
//! Usage: gpudeck-bench [--app target/release/gpudeck-app] [--seconds N]
//!                      [--replicasets|--volumes|--service|--images|--gda|--catalog --cli target/release/gpudeck]
//!        (needs cc, Xvfb; run from the repo root)
#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark: a failed step should stop it

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use gpudeck_core::docker::ContainerDirectory;
use gpudeck_core::gpu::{GpuSampler, NvmlSource};

/// CPU time of every thread of a process, in seconds, to the nanosecond (schedstat), so that a
/// cost far below one clock tick a second still shows.
fn cpu_seconds(pid: u32) -> f64 {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<f64>().ok())
        .sum::<f64>()
        / 1e9
}

/// A process's memory as `(rss, pss)` in KiB; PSS splits shared pages between the processes that
/// share them, so summing it over the app's processes does not count WebKit's libraries thrice.
fn mem_kib(pid: u32) -> (u64, u64) {
    let text = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).unwrap_or_default();
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    };
    (field("Rss:"), field("Pss:"))
}

fn descendants(root: u32) -> Vec<u32> {
    let mut all = vec![root];
    let mut i = 0;
    while i < all.len() {
        let p = all[i];
        for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<u32>().ok())
            else {
                continue;
            };
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let ppid = stat
                .rsplit_once(')')
                .and_then(|(_, r)| r.split_whitespace().nth(1)?.parse::<u32>().ok());
            if ppid == Some(p) && !all.contains(&pid) {
                all.push(pid);
            }
        }
        i += 1;
    }
    all
}

fn build_fake(dir: &Path) -> PathBuf {
    let lib = dir.join("libnvidia-ml.so.1");
    let ok = Command::new("cc")
        .args(["-shared", "-fPIC", "-O2", "-o"])
        .arg(&lib)
        .arg("tests/fake-nvml/fake_nvml.c")
        .arg("-lpthread")
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(
        ok,
        "could not build the fake NVML (run from the repo root; needs cc)"
    );
    let mut s = String::from("driver 550.54.15\ncuda 12040\n");
    for i in 0..8 {
        s += &format!("gpu {i} GPU-bench000-0000-4000-8000-{i:012} 85899345920 {} 50 10 50 200000 400000 -1 1410 1410 1593 8 0 NVIDIA A100-SXM4-80GB\n", (i + 1) << 30);
    }
    std::fs::write(dir.join("gpus.txt"), s).unwrap();
    std::env::set_var("FAKE_NVML_FILE", dir.join("gpus.txt"));
    lib
}

fn sampler_cost(lib: &Path, secs: u64) {
    let pid = std::process::id();
    // Floor: the same reads in a bare loop at 1 Hz, on this thread.
    let src = NvmlSource::open(Some(lib)).unwrap();
    let c0 = cpu_seconds(pid);
    let t0 = Instant::now();
    for _ in 0..secs {
        let tick = Instant::now();
        let _ = src.sample().unwrap();
        std::thread::sleep(Duration::from_secs(1).saturating_sub(tick.elapsed()));
    }
    let bare = (cpu_seconds(pid) - c0) / t0.elapsed().as_secs_f64() * 100.0;
    drop(src);

    let dir = Arc::new(RwLock::new(ContainerDirectory::default()));
    let h = GpuSampler::spawn(Some(lib.into()), Duration::from_secs(1), dir);
    std::thread::sleep(Duration::from_secs(2));
    let c0 = cpu_seconds(pid);
    let t0 = Instant::now();
    std::thread::sleep(Duration::from_secs(secs));
    let ours = (cpu_seconds(pid) - c0) / t0.elapsed().as_secs_f64() * 100.0;
    assert_eq!(h.latest().gpus.len(), 8);
    println!("sampler, 8 GPUs at 1 Hz: {ours:.3} % of one core (bare NVML loop: {bare:.3} %; ratio {:.2}x; target < 0.5 %)", if bare > 0.0 { ours / bare } else { f64::NAN });
}

fn app_figures(app: &Path, lib: &Path, work: &Path, secs: u64) {
    let display = ":77";
    let mut xvfb = Command::new("Xvfb")
        .args([display, "-screen", "0", "1280x860x24", "-nolisten", "tcp"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("Xvfb (apt-get install xvfb)");
    std::thread::sleep(Duration::from_millis(800));
    let started = Instant::now();
    let mut child = Command::new(app)
        .env("DISPLAY", display)
        .env("GPUDECK_NVML_LIB", lib)
        .env("XDG_DATA_HOME", work.join("xdg"))
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the app binary");
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.contains("ui-ready after") {
                let _ = tx.send(());
            }
        }
    });
    match rx.recv_timeout(Duration::from_secs(60)) {
        Ok(()) => println!(
            "cold start to the GPU page showing data: {:.2} s (target < 1.5 s)",
            started.elapsed().as_secs_f64()
        ),
        Err(_) => println!("cold start: the UI did not report ready within 60 s"),
    }
    std::thread::sleep(Duration::from_secs(5));
    let pids = descendants(child.id());
    let c0: f64 = pids.iter().map(|p| cpu_seconds(*p)).sum();
    let t0 = Instant::now();
    let mut peak = 0u64;
    while t0.elapsed() < Duration::from_secs(secs) {
        let pids = descendants(child.id());
        peak = peak.max(pids.iter().map(|p| mem_kib(*p).1).sum());
        std::thread::sleep(Duration::from_secs(1));
    }
    let pids = descendants(child.id());
    let c1: f64 = pids.iter().map(|p| cpu_seconds(*p)).sum();
    let mb = |k: u64| k as f64 / 1024.0;
    let per: Vec<String> = pids
        .iter()
        .map(|p| {
            let name = std::fs::read_to_string(format!("/proc/{p}/comm")).unwrap_or_default();
            let (rss, pss) = mem_kib(*p);
            format!("{} rss {:.0} / pss {:.0} MB", name.trim(), mb(rss), mb(pss))
        })
        .collect();
    let (rss, pss) = pids
        .iter()
        .map(|p| mem_kib(*p))
        .fold((0, 0), |a, m| (a.0 + m.0, a.1 + m.1));
    println!(
        "idle with the GPU page open (8 GPUs), {secs} s: PSS {:.0} MB (peak {:.0} MB; target < 150 MB), RSS summed {:.0} MB, CPU {:.2} % of one core [{}]",
        mb(pss),
        mb(peak),
        mb(rss),
        (c1 - c0) / t0.elapsed().as_secs_f64() * 100.0,
        per.join("; ")
    );
    let _ = Command::new("kill").arg(child.id().to_string()).status();
    let _ = child.wait();
    let _ = xvfb.kill();
    let _ = xvfb.wait();
}

fn sh(cmd: &mut Command) -> String {
    let out = cmd.output().expect("command");
    assert!(
        out.status.success(),
        "{:?}: {}",
        cmd,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn timed(cmd: &mut Command) -> f64 {
    let t = Instant::now();
    sh(cmd);
    t.elapsed().as_secs_f64()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n.is_multiple_of(2) {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    } else {
        v[n / 2]
    }
}

const IMAGE: &str = "gpudeck-test/busybox:latest";
const IDLE: [&str; 2] = ["sleep", "1000000"];

/// An image of about `mb` MB: the test image plus a file of random bytes.
fn padded_image(mb: u32) -> String {
    let tag = format!("gpudeck-bench/pad{mb}:latest");
    if Command::new("docker")
        .args(["image", "inspect", &tag])
        .output()
        .is_ok_and(|o| o.status.success())
    {
        return tag;
    }
    let c = format!("gpudeck-bench-pad{mb}");
    let _ = Command::new("docker").args(["rm", "-f", &c]).output();
    sh(Command::new("docker")
        .args([
            "run",
            "--name",
            &c,
            IMAGE,
            "dd",
            "if=/dev/urandom",
            "of=/pad",
            "bs=1M",
        ])
        .arg(format!("count={mb}")));
    sh(Command::new("docker").args(["commit", &c, &tag]));
    sh(Command::new("docker").args(["rm", "-f", &c]));
    tag
}

/// gpudeckd (beside the CLI) on its own socket and data folder, with the fake NVML; killed on drop.
struct Service {
    child: std::process::Child,
    socket: PathBuf,
}

impl Service {
    fn start(cli: &Path, work: &Path, data: &str) -> Service {
        let socket = work.join(format!("{data}.sock"));
        let child = Command::new(cli.with_file_name("gpudeckd"))
            .arg("--socket")
            .arg(&socket)
            .arg("--data-dir")
            .arg(work.join(data))
            .env("GPUDECK_NVML_LIB", work.join("libnvidia-ml.so.1"))
            // GPUDECK_BENCH_LOG=gpudeck_core=debug shows each journal step's time.
            .env(
                "RUST_LOG",
                std::env::var("GPUDECK_BENCH_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .spawn()
            .expect("gpudeckd beside the CLI");
        for _ in 0..300 {
            if std::os::unix::net::UnixStream::connect(&socket).is_ok() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Service { child, socket }
    }

    /// The CLI as a client of this service.
    fn cli(&self, cli: &Path, args: &[&str]) -> Command {
        let mut c = Command::new(cli);
        c.args(args).env("GPUDECK_SOCKET", &self.socket);
        c
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `gpudeck rs ls` with 100 replicaSets through the service vs the service's code run inside the
/// CLI (`--local`); then the service's CPU with 10 clients streaming GPU samples at 1 Hz vs none.
fn service(cli: &Path, work: &Path) {
    let svc = Service::start(cli, work, "svc-data");
    for i in 0..100 {
        let n = format!("benchls{i}");
        sh(svc
            .cli(cli, &["rs", "run", &n, "--image", IMAGE, "--"])
            .args(IDLE));
    }
    let mut through = vec![];
    for _ in 0..30 {
        through.push(timed(&mut svc.cli(cli, &["rs", "ls", "--json"])));
    }
    let pid = svc.child.id();
    let idle_window = 20.0;
    let c0 = cpu_seconds(pid);
    std::thread::sleep(Duration::from_secs_f64(idle_window));
    let idle = (cpu_seconds(pid) - c0) / idle_window * 100.0;
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let clients: Vec<_> = (0..10)
        .map(|_| {
            let (socket, stop) = (svc.socket.clone(), stop.clone());
            std::thread::spawn(move || {
                use std::io::{Read, Write};
                let mut s = std::os::unix::net::UnixStream::connect(socket).unwrap();
                s.write_all(b"GET /v1/gpus/stream HTTP/1.1\r\nHost: gpudeck\r\n\r\n")
                    .unwrap();
                s.set_read_timeout(Some(Duration::from_millis(500)))
                    .unwrap();
                let mut buf = [0u8; 65536];
                let mut got = 0usize;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    if let Ok(n) = s.read(&mut buf) {
                        got += n;
                    }
                }
                got
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs(2));
    let c1 = cpu_seconds(pid);
    std::thread::sleep(Duration::from_secs_f64(idle_window));
    let streaming = (cpu_seconds(pid) - c1) / idle_window * 100.0;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let bytes: usize = clients.into_iter().map(|c| c.join().unwrap()).sum();
    drop(svc);
    let mut local = vec![];
    for _ in 0..30 {
        let mut c = Command::new(cli);
        c.args(["--local", "rs", "ls", "--json"])
            .env("GPUDECK_DATA_DIR", work.join("svc-data"))
            .env("GPUDECK_NVML_LIB", work.join("libnvidia-ml.so.1"));
        local.push(timed(&mut c));
    }
    let svc = Service::start(cli, work, "svc-data");
    for i in 0..100 {
        let _ = svc.cli(cli, &["rs", "rm", &format!("benchls{i}")]).output();
    }
    let p = |v: &Vec<f64>| {
        let mut v = v.clone();
        v.sort_by(|a, b| a.total_cmp(b));
        (v[v.len() / 2] * 1000.0, v[v.len() * 9 / 10] * 1000.0)
    };
    let ((tp50, tp90), (lp50, lp90)) = (p(&through), p(&local));
    println!(
        "gpudeck rs ls --json with 100 replicaSets, the whole CLI process: through the service p50 {tp50:.1} ms (p90 {tp90:.1}) vs the service's code in the CLI (--local) p50 {lp50:.1} ms (p90 {lp90:.1}) = {:.2}x (target p50 <= 15 ms)",
        lp50 / tp50
    );
    println!(
        "gpudeckd CPU with 10 clients streaming GPU samples at 1 Hz (8 fake GPUs): {streaming:.2}% of a core vs {idle:.2}% with none: +{:.2} points (target < 1; {} KB streamed in {idle_window:.0} s)",
        streaming - idle,
        bytes / 1024
    );
}

fn replicasets(cli: &Path, work: &Path) {
    let svc = Service::start(cli, work, "rs-data");
    let gd = |args: &[&str]| svc.cli(cli, args);
    let docker = |args: &[&str]| {
        let mut c = Command::new("docker");
        c.args(args);
        c
    };
    // 1. run vs docker run, 5 each, alternating.
    let (mut ours, mut theirs) = (vec![], vec![]);
    for i in 0..5 {
        let n = format!("benchrun{i}");
        ours.push(timed(
            gd(&["rs", "run", &n, "--image", IMAGE, "--"]).args(IDLE),
        ));
        theirs.push(timed(
            docker(&[
                "run",
                "-d",
                "--init",
                "--name",
                &format!("bench-plain-{i}"),
                IMAGE,
            ])
            .args(IDLE),
        ));
        sh(&mut gd(&["rs", "rm", &n]));
        sh(&mut docker(&["rm", "-f", &format!("bench-plain-{i}")]));
    }
    let (o, t) = (median(ours), median(theirs));
    println!(
        "rs run vs docker run: {o:.2} s vs {t:.2} s = {:.2}x (target <= 1.10x)",
        o / t
    );

    // 2. a patch carrying 200 MB of changes vs docker commit + docker run (the issue's baseline,
    //    which leaves the old container running), and vs the same end state by hand: docker stop
    //    + commit + run + rm. Three rounds, alternating, medians.
    let write = [
        "sh",
        "-c",
        "dd if=/dev/urandom of=/changed bs=1M count=200 2>/dev/null",
    ];
    let (mut ours, mut plain, mut same) = (vec![], vec![], vec![]);
    for round in 0..3 {
        let rs = format!("benchpatch{round}");
        sh(gd(&["rs", "run", &rs, "--image", IMAGE, "--"]).args(IDLE));
        sh(gd(&["rs", "exec", &rs, "--"]).args(write));
        ours.push(timed(&mut gd(&["rs", "patch", &rs, "--gpus", "0"])));
        sh(&mut gd(&["rs", "rm", &rs]));
        for stop_and_rm in [false, true] {
            sh(docker(&["run", "-d", "--init", "--name", "bench-commit", IMAGE]).args(IDLE));
            sh(docker(&["exec", "bench-commit"]).args(write));
            let t0 = Instant::now();
            if stop_and_rm {
                sh(&mut docker(&["stop", "bench-commit"]));
            }
            sh(&mut docker(&[
                "commit",
                "bench-commit",
                "gpudeck-bench/committed:latest",
            ]));
            sh(docker(&[
                "run",
                "-d",
                "--init",
                "--name",
                "bench-commit-2",
                "gpudeck-bench/committed:latest",
            ])
            .args(IDLE));
            if stop_and_rm {
                sh(&mut docker(&["rm", "-f", "bench-commit"]));
            }
            let t = t0.elapsed().as_secs_f64();
            if stop_and_rm {
                same.push(t)
            } else {
                plain.push(t)
            }
            sh(&mut docker(&["rm", "-f", "bench-commit", "bench-commit-2"]));
            sh(&mut docker(&["rmi", "gpudeck-bench/committed:latest"]));
        }
    }
    let (o, p, q) = (median(ours), median(plain), median(same));
    // The way this host carries files (see core's replicaset::copy): its own target.
    let driver = sh(&mut docker(&["info", "-f", "{{.Driver}}"]));
    let carry = std::env::var("GPUDECK_CARRY").unwrap_or_default();
    let (way, target) = match carry.as_str() {
        "layers" => ("the layer way", "1.0"),
        "archive" => ("the archive way", "1.0"),
        _ if driver.trim() == "overlay2" => ("the copy way, overlay2", "0.6"),
        _ => ("the archive way", "1.0"),
    };
    println!("patch with 200 MB changed vs docker commit + docker run ({way}): {o:.2} s vs {p:.2} s = {:.2}x (target <= {target}x)", o / p);
    println!("patch with 200 MB changed vs docker stop + commit + run + rm (the same end state): {o:.2} s vs {q:.2} s = {:.2}x", o / q);

    // 3. the same patch over a 50 MB and a 500 MB image; beside it, the engine's own growth: the
    //    same change carried by docker commit + docker run over the same two images.
    let change = "dd if=/dev/urandom of=/changed bs=1M count=20 2>/dev/null";
    let sizes = [50u32, 500];
    let imgs: Vec<String> = sizes.iter().map(|mb| padded_image(*mb)).collect();
    let names: Vec<String> = sizes.iter().map(|mb| format!("benchimg{mb}")).collect();
    for (n, img) in names.iter().zip(&imgs) {
        sh(gd(&["rs", "run", n, "--image", img, "--"]).args(IDLE));
        // One restart first, untimed: what a first new version does once is not measured.
        sh(&mut gd(&["rs", "restart", n]));
    }
    // Six rounds; in each, both sizes, which size goes first and which side goes first
    // alternating. Before each timed step the disk is flushed (`sync`) and left a second:
    // ours keeps the version it replaced after replying, and what the change and the last
    // round wrote would otherwise be written back during whichever step comes next.
    let (mut o, mut p): (Vec<Vec<f64>>, Vec<Vec<f64>>) = (vec![vec![]; 2], vec![vec![]; 2]);
    let settle = || {
        sh(&mut Command::new("sync"));
        std::thread::sleep(Duration::from_secs(1));
    };
    for round in 0..6 {
        let order = if round % 2 == 0 { [0, 1] } else { [1, 0] };
        for i in order {
            let (n, img) = (&names[i], &imgs[i]);
            for ours_now in [(round / 2) % 2 == 0, (round / 2) % 2 == 1] {
                if ours_now {
                    // Each restart carries a change of its own, as the pair's commit does.
                    sh(&mut gd(&["rs", "exec", n, "--", "sh", "-c", change]));
                    settle();
                    o[i].push(timed(&mut gd(&["rs", "restart", n])));
                    continue;
                }
                sh(docker(&["run", "-d", "--init", "--name", "bench-pad", img]).args(IDLE));
                sh(&mut docker(&["exec", "bench-pad", "sh", "-c", change]));
                settle();
                let t0 = Instant::now();
                sh(&mut docker(&[
                    "commit",
                    "bench-pad",
                    "gpudeck-bench/padded:latest",
                ]));
                sh(docker(&["run", "-d", "--init", "--name", "bench-pad-2"])
                    .arg("gpudeck-bench/padded:latest")
                    .args(IDLE));
                p[i].push(t0.elapsed().as_secs_f64());
                sh(&mut docker(&["rm", "-f", "bench-pad", "bench-pad-2"]));
                sh(&mut docker(&["rmi", "gpudeck-bench/padded:latest"]));
            }
        }
    }
    for n in &names {
        sh(&mut gd(&["rs", "rm", n]));
    }
    let times: Vec<f64> = o.into_iter().map(median).collect();
    let plain: Vec<f64> = p.into_iter().map(median).collect();
    println!(
        "patch (20 MB changed) over a 50 MB vs a 500 MB image: {:.2} s vs {:.2} s = {:.2}x (target within 10 %)",
        times[0],
        times[1],
        times[1] / times[0]
    );
    println!(
        "the same change by docker commit + docker run over a 50 MB vs a 500 MB image (the engine's own growth): {:.2} s vs {:.2} s = {:.2}x",
        plain[0],
        plain[1],
        plain[1] / plain[0]
    );
}

/// Both sides start from a cold page cache when the kernel lets us drop it (root).
fn drop_caches() {
    let _ = Command::new("sync").status();
    let _ = std::fs::write("/proc/sys/vm/drop_caches", "3");
}

fn volumes(cli: &Path, work: &Path) {
    let svc = Service::start(cli, work, "vol-data");
    let gd = |args: &[&str]| svc.cli(cli, args);
    let fill = "cd /v && mkdir small && i=0; while [ $i -lt 4000 ]; do head -c 4096 /dev/urandom > small/f$i; i=$((i+1)); done; \
                for n in 1 2 3 4; do dd if=/dev/urandom of=big$n bs=1M count=110 2>/dev/null; done; \
                dd if=/dev/urandom of=sparse bs=1M count=10 seek=1000 2>/dev/null; sync";
    sh(&mut gd(&["vol", "create", "benchvol", "--size", "1GB"]));
    sh(Command::new("docker").args([
        "run",
        "--rm",
        "-v",
        "benchvol-1:/v",
        IMAGE,
        "sh",
        "-c",
        fill,
    ]));
    // cp -a of the same tree between two ext4 images of the same size, mounted on the host.
    let (src, dst) = (work.join("mnt-src"), work.join("mnt-dst"));
    std::fs::create_dir_all(&src).unwrap();
    std::fs::create_dir_all(&dst).unwrap();
    let img = work.join("vol-data/volumes/benchvol-1.img");
    let dimg = work.join("plain.img");
    sh(Command::new("truncate")
        .args(["-s", "1000000000"])
        .arg(&dimg));
    sh(Command::new("mkfs.ext4")
        .args(["-q", "-F", "-m", "0"])
        .arg(&dimg));
    sh(Command::new("mount")
        .args(["-o", "ro,loop"])
        .arg(&img)
        .arg(&src));
    sh(Command::new("mount")
        .args(["-o", "loop"])
        .arg(&dimg)
        .arg(&dst));
    drop_caches();
    let t0 = Instant::now();
    sh(Command::new("cp")
        .args(["-a", "--sparse=always"])
        .arg(format!("{}/.", src.display()))
        .arg(&dst));
    sh(&mut Command::new("sync"));
    let plain = t0.elapsed().as_secs_f64();
    let used = sh(Command::new("df").args(["-B1", "--output=used"]).arg(&src));
    sh(Command::new("umount").arg(&src));
    sh(Command::new("umount").arg(&dst));
    let _ = std::fs::remove_file(&dimg);
    drop_caches();
    let ours = timed(&mut gd(&["vol", "resize", "benchvol", "--size", "1.2GB"]));
    drop_caches();
    let shrink = timed(&mut gd(&["vol", "resize", "benchvol", "--size", "900MB"]));
    drop_caches();
    let tight = timed(&mut gd(&["vol", "resize", "benchvol", "--size", "600MB"]));
    sh(&mut gd(&["vol", "rm", "benchvol"]));
    let mb = used
        .lines()
        .nth(1)
        .and_then(|l| l.trim().parse::<f64>().ok())
        .unwrap_or(0.0)
        / 1e6;
    println!(
        "volume resize of {mb:.0} MB (4000 small files, 4 large, 1 sparse) vs cp -a of the same tree: {:.0} MB/s vs {:.0} MB/s = {:.2}x (target >= 0.9x; both from a cold page cache; ours is the whole CLI call: used-space check, copy, Docker volume, retiring the old version)",
        mb / ours,
        mb / plain,
        plain / ours
    );
    println!(
        "volume shrink (1.2 GB to 900 MB) of the same {mb:.0} MB vs the same cp -a: {:.0} MB/s vs {:.0} MB/s = {:.2}x (target >= 0.9x)",
        mb / shrink,
        mb / plain,
        plain / shrink
    );
    println!(
        "volume tight shrink (900 MB to 600 MB, below resize2fs's minimum: file copy) of the same {mb:.0} MB vs the same cp -a: {:.0} MB/s vs {:.0} MB/s = {:.2}x (target >= 0.9x)",
        mb / tight,
        mb / plain,
        plain / tight
    );
}

/// A `docker-registry` on a free loopback port with empty storage, killed when dropped.
struct LocalRegistry {
    child: std::process::Child,
    host: String,
    dir: PathBuf,
}

impl LocalRegistry {
    fn start(work: &Path, n: u32) -> LocalRegistry {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let dir = work.join(format!("registry-{n}"));
        std::fs::create_dir_all(&dir).unwrap();
        let cfg = dir.join("config.yml");
        std::fs::write(
            &cfg,
            format!(
                "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:{port}\n",
                dir.join("data").display()
            ),
        )
        .unwrap();
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&cfg)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("docker-registry (apt-get install docker-registry)");
        for _ in 0..200 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                break;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        LocalRegistry {
            child,
            host: format!("127.0.0.1:{port}"),
            dir,
        }
    }
}

impl Drop for LocalRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Pull and push of a ~200 MB image of 5 layers through GPU Deck vs the docker CLI, each against
/// a fresh registry (so every layer really moves), alternating which goes first.
fn images(cli: &Path, work: &Path) {
    let svc = Service::start(cli, work, "img-data");
    let base = "gpudeck-bench/layers:latest";
    if !Command::new("docker")
        .args(["image", "inspect", base])
        .output()
        .unwrap()
        .status
        .success()
    {
        let mut from = IMAGE.to_string();
        for i in 0..4 {
            let c = format!("gpudeck-bench-layer{i}");
            let _ = Command::new("docker").args(["rm", "-f", &c]).output();
            sh(Command::new("docker").args([
                "run",
                "--name",
                &c,
                &from,
                "sh",
                "-c",
                &format!("head -c 50000000 /dev/urandom > /layer{i}"),
            ]));
            sh(Command::new("docker").args(["commit", &c, base]));
            sh(Command::new("docker").args(["rm", "-f", &c]));
            from = base.to_string();
        }
    }
    let mut n = 0;
    let mut round = |ours: bool| -> (f64, f64, f64) {
        n += 1;
        let reg = LocalRegistry::start(work, n);
        let image = format!("{}/bench/layers:v1", reg.host);
        sh(Command::new("docker").args(["tag", base, &image]));
        let push = if ours {
            timed(&mut svc.cli(cli, &["image", "push", &image, "--json"]))
        } else {
            timed(Command::new("docker").args(["push", "-q", &image]))
        };
        let again = if ours {
            timed(&mut svc.cli(cli, &["image", "push", &image, "--json"]))
        } else {
            timed(Command::new("docker").args(["push", "-q", &image]))
        };
        sh(Command::new("docker").args(["rmi", &image]));
        // The base image keeps the layers on disk; a pull must fetch them: remove it too.
        let saved = sh(Command::new("docker").args(["image", "inspect", "-f", "{{.Id}}", base]));
        let tar = work.join("base.tar");
        if !tar.exists() {
            sh(Command::new("docker").args(["save", "-o", tar.to_str().unwrap(), base]));
        }
        sh(Command::new("docker").args(["rmi", base]));
        let pull = if ours {
            timed(&mut svc.cli(cli, &["image", "pull", &image, "--json"]))
        } else {
            timed(Command::new("docker").args(["pull", "-q", &image]))
        };
        sh(Command::new("docker").args(["rmi", &image]));
        sh(Command::new("docker").args(["load", "-q", "-i", tar.to_str().unwrap()]));
        let _ = saved;
        (push, again, pull)
    };
    let (mut op, mut oa, mut ol, mut dp, mut da, mut dl) =
        (vec![], vec![], vec![], vec![], vec![], vec![]);
    for i in 0..3 {
        for ours in if i % 2 == 0 {
            [true, false]
        } else {
            [false, true]
        } {
            let (p, a, l) = round(ours);
            if ours {
                op.push(p);
                oa.push(a);
                ol.push(l);
            } else {
                dp.push(p);
                da.push(a);
                dl.push(l);
            }
        }
    }
    let (op, oa, ol, dp, da, dl) = (
        median(op),
        median(oa),
        median(ol),
        median(dp),
        median(da),
        median(dl),
    );
    println!(
        "image push of ~200 MB in 5 layers to a local registry: GPU Deck {op:.2} s vs docker push {dp:.2} s = {:.2}x of docker's speed (target >= 0.95x)",
        dp / op
    );
    println!(
        "image pull of the same: GPU Deck {ol:.2} s vs docker pull {dl:.2} s = {:.2}x of docker's speed (target >= 0.95x)",
        dl / ol
    );
    println!(
        "second push (every layer exists): GPU Deck {oa:.2} s vs docker push {da:.2} s (target < 1 s)"
    );
    // First progress: from the request to the first event a client reads (the app's tray shows
    // the same events).
    let reg = LocalRegistry::start(work, 99);
    let image = format!("{}/bench/layers:v1", reg.host);
    sh(Command::new("docker").args(["tag", base, &image]));
    let mut firsts = vec![];
    for _ in 0..5 {
        let t = Instant::now();
        let mut child = svc
            .cli(cli, &["image", "push", &image, "--json"])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        firsts.push(t.elapsed().as_secs_f64() * 1000.0);
        let _ = child.wait();
    }
    sh(Command::new("docker").args(["rmi", &image]));
    println!(
        "first progress event after the request (CLI start included): p50 {:.0} ms (target < 500 ms on screen)",
        median(firsts)
    );
}

/// One keep-alive HTTP/1.1 GET, its body read to the end by Content-Length.
fn http_get(stream: &mut std::net::TcpStream, request: &[u8]) -> bool {
    use std::io::{Read, Write};
    if stream.write_all(request).is_err() {
        return false;
    }
    let mut buf = Vec::with_capacity(4096);
    let mut chunk = [0u8; 4096];
    loop {
        let n = match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return false,
            Ok(n) => n,
        };
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_lowercase();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            while buf.len() < end + 4 + len {
                match stream.read(&mut chunk) {
                    Ok(0) | Err(_) => return false,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                }
            }
            return head.starts_with("http/1.1 200");
        }
    }
}

fn gda(cli: &Path, work: &Path) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let socket = work.join("gda.sock");
    let mut child = Command::new(cli.with_file_name("gpudeckd"))
        .arg("--socket")
        .arg(&socket)
        .arg("--data-dir")
        .arg(work.join("gda-data"))
        .args(["--gda-listen", &addr])
        .env("GPUDECK_NVML_LIB", work.join("libnvidia-ml.so.1"))
        .env("RUST_LOG", "warn")
        .spawn()
        .expect("gpudeckd beside the CLI");
    for _ in 0..300 {
        if std::net::TcpStream::connect(&addr).is_ok() {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let gd = |args: &[&str]| {
        let mut c = Command::new(cli);
        c.args(args).env("GPUDECK_SOCKET", &socket);
        c
    };
    sh(gd(&["rs", "run", "benchgda", "--image", IMAGE, "--"]).args(IDLE));
    let out = sh(&mut gd(&["token", "create", "--user", "root", "--json"]));
    let token = out
        .split("\"token\": \"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap()
        .to_string();
    let request = format!(
        "GET /api/v1/replicaSet/benchgda HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\r\n"
    );
    let window = Duration::from_secs(10);
    let t0 = Instant::now();
    let threads: Vec<_> = (0..16)
        .map(|_| {
            let (addr, request) = (addr.clone(), request.clone());
            std::thread::spawn(move || {
                let mut lat = Vec::new();
                let mut failed = 0u64;
                let mut s = std::net::TcpStream::connect(&addr).unwrap();
                s.set_nodelay(true).ok();
                while t0.elapsed() < window {
                    let t = Instant::now();
                    if http_get(&mut s, request.as_bytes()) {
                        lat.push(t.elapsed().as_secs_f64() * 1000.0);
                    } else {
                        failed += 1;
                        s = std::net::TcpStream::connect(&addr).unwrap();
                    }
                }
                (lat, failed)
            })
        })
        .collect();
    let mut all = Vec::new();
    let mut failed = 0;
    for t in threads {
        let (l, f) = t.join().unwrap();
        all.extend(l);
        failed += f;
    }
    let secs = t0.elapsed().as_secs_f64();
    let n = all.len();
    all.sort_by(|a, b| a.total_cmp(b));
    let p = |q: f64| all[((n as f64 * q) as usize).min(n - 1)];
    let mut cli_runs = vec![];
    for _ in 0..30 {
        cli_runs.push(timed(&mut gd(&["rs", "info", "benchgda", "--json"])) * 1000.0);
    }
    let cli_p50 = median(cli_runs);
    println!(
        "GET /api/v1/replicaSet/NAME, 16 concurrent clients, {secs:.0} s: {:.0} req/s, p50 {:.2} ms, p99 {:.2} ms, {failed} failed (target >= 2000 req/s, p99 < 20 ms)",
        n as f64 / secs,
        p(0.5),
        p(0.99)
    );
    println!(
        "the same lookup through the CLI (gpudeck rs info NAME --json, a process each): p50 {cli_p50:.1} ms = {:.0} lookups/s one after another",
        1000.0 / cli_p50
    );
    sh(&mut gd(&["rs", "rm", "benchgda"]));
    let _ = child.kill();
    let _ = child.wait();
}

fn catalog(cli: &Path, work: &Path) {
    use gpudeck_core::catalog::entry::{self, Entry};
    let svc = Service::start(cli, work, "cat-data");
    let gd = |args: &[&str]| svc.cli(cli, args);
    // 5,000 entries of varied fields.
    let frameworks = ["pytorch", "tensorflow", "jax", "mxnet", "sklearn"];
    let cudas = ["11.8", "12.1", "12.4", "12.8", "13.0"];
    let text = |i: usize| {
        format!(
            r#"{{"name":"e{i}","version":"1.{i}","image":"lab/img{i}:v1","framework":"{}","cudaVersion":"{}","tasks":["{}"],"price":{},"cpuOnly":{},"gpus":{{"min":0,"max":{},"default":0}},"command":["true"]}}"#,
            frameworks[i % 5],
            cudas[(i / 5) % 5],
            if i.is_multiple_of(3) {
                "Train"
            } else {
                "Predict"
            },
            i % 7,
            i.is_multiple_of(11),
            if i.is_multiple_of(11) { 0 } else { 8 }
        )
    };
    let body = format!(
        r#"{{"format":"gpudeck-catalog","schema":1,"entries":[{}]}}"#,
        (0..5000).map(text).collect::<Vec<_>>().join(",")
    );
    let file = work.join("catalog.json");
    std::fs::write(&file, &body).unwrap();
    sh(&mut gd(&[
        "catalog",
        "import",
        file.to_str().unwrap(),
        "--json",
    ]));
    let filter = r#"{"expressions":[{"type":"exact","field":"framework","value":"PyTorch","case_insensitive":true},{"type":"compare","field":"cuda_version","operator":">=","value":"12.4"},{"type":"exact","field":"tasks","value":"Predict"},{"type":"compare","field":"price","operator":"<","value":5}],"order_by":[{"field":"name"}]}"#;
    // The filter itself, in-process, on the same 5,000 records.
    let file_entries: Vec<Entry> = entry::read_file(&body).unwrap().entries;
    let records: Vec<gpudeck_core::catalog::store::EntryRecord> = file_entries
        .into_iter()
        .map(|e| gpudeck_core::catalog::store::EntryRecord {
            entry: e,
            revision: 1,
            created_at: 0,
            updated_at: 0,
            created_by: "root".into(),
            updated_by: "root".into(),
            deleted_at: None,
        })
        .collect();
    let spec = gpudeck_core::catalog::filter::FilterSpec::parse(filter).unwrap();
    let mut inproc = vec![];
    let mut n = 0;
    for _ in 0..20 {
        let all = records.clone();
        let t = Instant::now();
        n = gpudeck_core::catalog::select(all, &spec).unwrap().len();
        inproc.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    let mut through = vec![];
    for _ in 0..10 {
        through.push(timed(&mut gd(&["catalog", "ls", "--filter", filter, "--json"])) * 1000.0);
    }
    println!(
        "catalog: 5,000 entries, a filter of four expressions ({n} match): {:.1} ms in-process (p50), {:.0} ms for the whole `gpudeck catalog ls --json` through the service (p50; reading, filtering, compatibility of each, JSON) (target < 20 ms)",
        median(inproc),
        median(through)
    );
    // Launch from the catalog vs rs run of the same argv.
    let one = r#"{"format":"gpudeck-catalog","schema":1,"entries":[{"name":"idle","image":"gpudeck-test/busybox:latest","cpuOnly":true,"gpus":{"min":0,"max":0,"default":0},"command":["sleep","{{configs.secs}}"],"params":[{"name":"secs","kind":"config","type":"int","default":"1000000","index":0}]}]}"#;
    let f1 = work.join("idle.json");
    std::fs::write(&f1, one).unwrap();
    sh(&mut gd(&[
        "catalog",
        "import",
        f1.to_str().unwrap(),
        "--json",
    ]));
    let (mut ours, mut plain) = (vec![], vec![]);
    for i in 0..6u32 {
        let a = format!("benchcat{i}");
        let b = format!("benchrun{i}");
        let run_ours = || {
            timed(&mut gd(&[
                "catalog", "launch", "idle", "--as", &a, "--json",
            ]))
        };
        let run_plain =
            || timed(gd(&["rs", "run", &b, "--image", IMAGE, "--json", "--"]).args(IDLE));
        if i.is_multiple_of(2) {
            ours.push(run_ours());
            plain.push(run_plain());
        } else {
            plain.push(run_plain());
            ours.push(run_ours());
        }
        sh(&mut gd(&["rs", "rm", &a]));
        sh(&mut gd(&["rs", "rm", &b]));
    }
    let (o, p) = (median(ours), median(plain));
    println!(
        "catalog launch vs gpudeck rs run of the same argv: {o:.2} s vs {p:.2} s = {:.2}x (target <= 1.05x)",
        o / p
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let secs: u64 = arg("--seconds").and_then(|s| s.parse().ok()).unwrap_or(60);
    let app = arg("--app").map(PathBuf::from);
    let work = std::env::temp_dir().join(format!("gpudeck-bench-{}", std::process::id()));
    std::fs::create_dir_all(&work).unwrap();
    let lib = build_fake(&work);
    if args.iter().any(|a| a == "--volumes") {
        let cli = arg("--cli")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("target/release/gpudeck"));
        volumes(&cli, &work);
    } else if args.iter().any(|a| a == "--service") {
        let cli = arg("--cli")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("target/release/gpudeck"));
        service(&cli, &work);
    } else if args.iter().any(|a| a == "--catalog") {
        let cli = arg("--cli")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("target/release/gpudeck"));
        catalog(&cli, &work);
    } else if args.iter().any(|a| a == "--gda") {
        let cli = arg("--cli")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("target/release/gpudeck"));
        gda(&cli, &work);
    } else if args.iter().any(|a| a == "--images") {
        let cli = arg("--cli")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("target/release/gpudeck"));
        images(&cli, &work);
    } else if args.iter().any(|a| a == "--replicasets") {
        let cli = arg("--cli")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("target/release/gpudeck"));
        replicasets(&cli, &work);
    } else {
        sampler_cost(&lib, secs.min(30));
    }
    if let Some(app) = app {
        app_figures(&app, &lib, &work, secs);
    }
    let _ = std::fs::remove_dir_all(&work);
}
