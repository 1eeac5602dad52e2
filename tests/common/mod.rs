//! The test rig's Rust side: the fake NVML built from tests/fake-nvml, its readings file, the
//! test image, and the real Docker engine (started by tests/rig/setup.sh).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub mod registry;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

pub const TEST_IMAGE: &str = "gpudeck-test/busybox:latest";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Compiles the fake `libnvidia-ml.so` (once per test binary and variant) and returns its path.
pub fn fake_nvml_lib(old_driver: bool) -> PathBuf {
    static FULL: OnceLock<PathBuf> = OnceLock::new();
    static OLD: OnceLock<PathBuf> = OnceLock::new();
    let cell = if old_driver { &OLD } else { &FULL };
    cell.get_or_init(|| {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("fake-nvml-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let out = dir.join(if old_driver {
            "libnvidia-ml-old.so.1"
        } else {
            "libnvidia-ml.so.1"
        });
        let mut cc = Command::new("cc");
        cc.args(["-shared", "-fPIC", "-O2", "-o"]).arg(&out);
        if old_driver {
            cc.arg("-DFAKE_NVML_OLD_DRIVER");
        }
        let st = cc
            .arg(repo().join("tests/fake-nvml/fake_nvml.c"))
            .arg("-lpthread")
            .status()
            .unwrap();
        assert!(st.success(), "building the fake NVML failed");
        out
    })
    .clone()
}

/// One fake GPU's readings (see tests/fake-nvml/fake_nvml.c); -1 = not supported.
#[derive(Clone)]
pub struct FakeGpu {
    pub name: String,
    pub uuid: String,
    pub mem_total: i64,
    pub mem_used: i64,
    pub util: i64,
    pub util_mem: i64,
    pub temp: i64,
    pub power_mw: i64,
    pub limit_mw: i64,
    pub fan: i64,
    pub clocks: [i64; 3],
    pub cc: (i64, i64),
}

impl FakeGpu {
    /// GPU `i` of a fake machine; `tag` keeps machines of tests that run at once apart (they
    /// share one Docker engine, which sees every container's GPU requests).
    pub fn a100(tag: u32, i: usize) -> FakeGpu {
        FakeGpu {
            name: "NVIDIA A100-SXM4-80GB".into(),
            uuid: format!("GPU-{tag:08x}-0000-4000-8000-{i:012}"),
            mem_total: 80 << 30,
            mem_used: (i as i64 + 1) << 30,
            util: 10 + i as i64,
            util_mem: 5,
            temp: 40 + i as i64,
            power_mw: 100_000 + 1000 * i as i64,
            limit_mw: 400_000,
            fan: -1,
            clocks: [1410, 1410, 1593],
            cc: (8, 0),
        }
    }
}

/// The readings file the fake library serves; rewrite it to change what the "driver" reports.
/// Each has its own gpudeckd (started at the first CLI command) on its own socket and data folder.
pub struct FakeNvml {
    pub dir: tempfile::TempDir,
    pub lib: PathBuf,
    pub gpus: Vec<FakeGpu>,
    pub procs: Vec<(usize, u32, u64)>,
    service: std::sync::Mutex<Option<std::process::Child>>,
    /// Added to the service's environment at every (re)start (`always_env`).
    always: std::sync::Mutex<Vec<(String, String)>>,
}

impl Drop for FakeNvml {
    fn drop(&mut self) {
        self.stop_service();
    }
}

impl FakeNvml {
    pub fn new(n: usize) -> FakeNvml {
        Self::with_lib(n, false)
    }

    pub fn with_lib(n: usize, old_driver: bool) -> FakeNvml {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let k = NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let tag = std::process::id().wrapping_mul(64).wrapping_add(k);
        let f = FakeNvml {
            dir: tempfile::tempdir().unwrap(),
            lib: fake_nvml_lib(old_driver),
            gpus: (0..n).map(|i| FakeGpu::a100(tag, i)).collect(),
            procs: vec![],
            service: std::sync::Mutex::new(None),
            always: std::sync::Mutex::new(vec![]),
        };
        f.write();
        // Its own host port range too, so that tests running at once never race for a port.
        let data = f.dir.path().join("data");
        std::fs::create_dir_all(&data).unwrap();
        let start = 41000 + (k % 400) * 50;
        std::fs::write(
            data.join("settings.json"),
            format!(
                r#"{{"settings":{{"portRange":{{"start":{start},"end":{}}}}}}}"#,
                start + 49
            ),
        )
        .unwrap();
        f
    }

    pub fn file(&self) -> PathBuf {
        self.dir.path().join("gpus.txt")
    }

    pub fn write(&self) {
        let mut s = String::from("driver 550.54.15\ncuda 12040\n");
        for (i, g) in self.gpus.iter().enumerate() {
            s += &format!(
                "gpu {i} {} {} {} {} {} {} {} {} {} {} {} {} {} {} {}\n",
                g.uuid,
                g.mem_total,
                g.mem_used,
                g.util,
                g.util_mem,
                g.temp,
                g.power_mw,
                g.limit_mw,
                g.fan,
                g.clocks[0],
                g.clocks[1],
                g.clocks[2],
                g.cc.0,
                g.cc.1,
                g.name
            );
        }
        for (gpu, pid, used) in &self.procs {
            s += &format!("proc {gpu} {pid} {used}\n");
        }
        // Write-then-rename, so the library never reads half a file.
        let tmp = self.dir.path().join("gpus.tmp");
        std::fs::write(&tmp, s).unwrap();
        std::fs::rename(&tmp, self.file()).unwrap();
    }

    /// Points this process's NVML loading at the fake (the library reads FAKE_NVML_FILE on each
    /// call). Hold the guard for the whole test: tests in one binary run in parallel.
    pub fn install_env(&self) -> std::sync::MutexGuard<'static, ()> {
        static ENV: std::sync::Mutex<()> = std::sync::Mutex::new(());
        let g = ENV.lock().unwrap_or_else(|e| e.into_inner());
        std::env::set_var("FAKE_NVML_FILE", self.file());
        g
    }

    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("gpudeck.sock")
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// gpudeckd for this fake (as root, as the tests run), not started yet.
    pub fn service_command(&self) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_gpudeckd"));
        c.arg("--socket")
            .arg(self.socket())
            .arg("--data-dir")
            .arg(self.data_dir())
            .env("FAKE_NVML_FILE", self.file())
            .env("GPUDECK_NVML_LIB", &self.lib)
            .env("PATH", rig_path())
            .env("RUST_LOG", "warn")
            .env_remove("GPUDECK_CRASH_AT");
        for (k, v) in self.always.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            c.env(k, v);
        }
        c
    }

    /// Gives the service `key`=`value` at every start from now on, crash restarts included
    /// (`GPUDECK_CARRY=layers`), and restarts it.
    pub fn always_env(&self, key: &str, value: &str) {
        self.always
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((key.into(), value.into()));
        self.start_service_with(&[]);
    }

    /// (Re)starts this fake's service with `env` added (e.g. GPUDECK_CRASH_AT) and waits until it
    /// answers.
    pub fn start_service_with(&self, env: &[(&str, &str)]) {
        self.start_service_args(env, &[]);
    }

    /// (Re)starts the service with `env` added and `args` after its usual ones.
    pub fn start_service_args(&self, env: &[(&str, &str)], args: &[&str]) {
        self.stop_service();
        let mut cmd = self.service_command();
        cmd.args(args);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("gpudeckd");
        *self.service.lock().unwrap_or_else(|e| e.into_inner()) = Some(child);
        let t0 = std::time::Instant::now();
        while std::os::unix::net::UnixStream::connect(self.socket()).is_err() {
            assert!(
                t0.elapsed() < std::time::Duration::from_secs(30),
                "gpudeckd did not start"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    /// The running service's pid.
    pub fn service_pid(&self) -> Option<u32> {
        self.service
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .map(|c| c.id())
    }

    /// Starts the service unless it runs.
    pub fn ensure_service(&self) {
        let running = {
            let mut g = self.service.lock().unwrap_or_else(|e| e.into_inner());
            g.as_mut()
                .is_some_and(|c| c.try_wait().ok().flatten().is_none())
        };
        if !running {
            self.start_service_with(&[]);
        }
    }

    /// Waits for the service to end on its own (a crash point); its exit code.
    pub fn wait_service(&self) -> Option<i32> {
        let child = self
            .service
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        child.and_then(|mut c| c.wait().ok()).and_then(|s| s.code())
    }

    /// kill -9 of the service.
    pub fn stop_service(&self) {
        if let Some(mut c) = self
            .service
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// The `gpudeck` CLI against this fake's service (started if need be; not run yet).
    pub fn cli_command(&self, args: &[&str]) -> Command {
        self.ensure_service();
        let mut c = Command::new(env!("CARGO_BIN_EXE_gpudeck"));
        c.args(args)
            .env("GPUDECK_SOCKET", self.socket())
            .env("PATH", rig_path());
        c
    }

    /// Runs the CLI `args` against a service started with GPUDECK_CRASH_AT=`step`, which must end
    /// there as kill -9 would (exit 137); then starts the service again (it recovers at start).
    /// The CLI's output (it failed: the service went away mid-request).
    pub fn crash_at(&self, step: &str, args: &[&str]) -> Output {
        self.start_service_with(&[("GPUDECK_CRASH_AT", step)]);
        let out = self.cli_command(args).output().unwrap();
        assert_eq!(
            self.wait_service(),
            Some(137),
            "{step}: the service did not stop there"
        );
        assert!(!out.status.success(), "{step}: the CLI should fail");
        self.start_service_with(&[]);
        out
    }

    /// Like `crash_at`, for a step the service takes after it has replied: the CLI succeeds,
    /// then the service ends there; it is started again.
    pub fn crash_after_reply_at(&self, step: &str, args: &[&str]) -> Output {
        self.start_service_with(&[("GPUDECK_CRASH_AT", step)]);
        let out = self.cli_command(args).output().unwrap();
        assert!(
            out.status.success(),
            "{step}: the CLI should succeed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            self.wait_service(),
            Some(137),
            "{step}: the service did not stop there"
        );
        self.start_service_with(&[]);
        out
    }

    /// The CLI as if the service's code ran in it (`--local`, root): the service must not run.
    pub fn local_cli_command(&self, args: &[&str]) -> Command {
        self.stop_service();
        let mut c = Command::new(env!("CARGO_BIN_EXE_gpudeck"));
        c.arg("--local")
            .args(args)
            .env("FAKE_NVML_FILE", self.file())
            .env("GPUDECK_NVML_LIB", &self.lib)
            .env("GPUDECK_DATA_DIR", self.data_dir())
            .env("PATH", rig_path());
        c
    }

    /// Runs the `gpudeck` CLI against this fake.
    pub fn cli(&self, args: &[&str]) -> Output {
        self.cli_command(args).output().unwrap()
    }
}

/// PATH with the rig's stand-in NVIDIA hook first, as dockerd sees it.
pub fn rig_path() -> String {
    format!(
        "{}:{}",
        repo().join("tests/rig/bin").display(),
        std::env::var("PATH").unwrap_or_default()
    )
}

/// The `docker` CLI; the engine must be up (tests/rig/setup.sh starts it).
pub fn docker(args: &[&str]) -> Output {
    let out = Command::new("docker")
        .args(args)
        .output()
        .expect("docker CLI (apt-get install docker.io)");
    out
}

pub fn docker_ok(args: &[&str]) -> String {
    let out = docker(args);
    assert!(
        out.status.success(),
        "docker {args:?} failed: {}\n(is the engine up? run tests/rig/setup.sh)",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Whether new versions carry files the copy way here (overlay2), not as snapshot images.
pub fn copy_way() -> bool {
    docker_ok(&["info", "-f", "{{.Driver}}"]) == "overlay2"
}

/// Whether the engine keeps images in containerd (Docker 29's default for fresh installs).
pub fn containerd_store() -> bool {
    docker_ok(&["info", "-f", "{{json .DriverStatus}}"]).contains("io.containerd.snapshotter")
}

/// Whether new versions carry files as snapshot images here (`GPUDECK_CARRY=layers`): else as
/// folders, the copy way (overlay2) or the archive way (every other engine), for a container
/// that deleted none of its image's files.
pub fn layer_way() -> bool {
    std::env::var("GPUDECK_CARRY").is_ok_and(|v| v == "layers")
}

/// The journaled steps of a patch that keeps the old version's files as a folder (the copy way,
/// the archive way), from "begun"; "done" not included.
pub const FOLDER_STEPS: &[&str] = &[
    "begun",
    "claimed",
    "stopped_old",
    "created",
    "copied",
    "started",
    "recorded",
    "saved",
];

/// The journaled steps of a patch on this engine, in order ("done" not included), for a
/// container that deleted none of its image's files.
pub fn patch_steps() -> &'static [&'static str] {
    if !layer_way() {
        FOLDER_STEPS
    } else {
        &[
            "begun",
            "claimed",
            "stopped_old",
            "committed",
            "created",
            "started",
            "recorded",
        ]
    }
}

/// A container removed when dropped.
pub struct Container(pub String);

impl Container {
    pub fn run(name: &str, extra: &[&str], cmd: &[&str]) -> Container {
        let _ = docker(&["rm", "-f", name]);
        let mut args = vec!["run", "-d", "--name", name];
        args.extend_from_slice(extra);
        args.push(TEST_IMAGE);
        args.extend_from_slice(cmd);
        docker_ok(&args);
        Container(name.to_string())
    }

    pub fn pid(&self) -> u32 {
        docker_ok(&["inspect", "-f", "{{.State.Pid}}", &self.0])
            .parse()
            .unwrap()
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = docker(&["rm", "-f", &self.0]);
    }
}

pub fn unique(prefix: &str) -> String {
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos()
    )
}

pub fn json(out: &Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "gpudeck failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)))
}

pub fn exists(p: &Path) -> bool {
    p.exists()
}
