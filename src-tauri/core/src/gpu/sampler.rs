//! The one owner of NVML: a thread that samples every GPU each interval, attributes processes to
//! containers, records history and publishes the snapshot. Readers subscribe; nobody polls NVML.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::watch;

use super::nvml::NvmlSource;
use super::{GpuHistory, GpuSnapshot, NvmlState};
use crate::attribution::container_id_of_pid;
use crate::docker::ContainerDirectory;

/// How long to wait before trying to load NVML again after it failed (a driver installed or
/// loaded while the app runs is picked up without a restart).
const NVML_RETRY: Duration = Duration::from_secs(15);

pub struct GpuSampler;

/// What the rest of the app holds: the latest snapshot, its history, and the interval knob.
/// Dropping every handle stops the thread.
#[derive(Clone)]
pub struct SamplerHandle {
    snapshots: watch::Receiver<Arc<GpuSnapshot>>,
    history: Arc<Mutex<GpuHistory>>,
    interval: Arc<watch::Sender<Duration>>,
}

impl SamplerHandle {
    pub fn latest(&self) -> Arc<GpuSnapshot> {
        self.snapshots.borrow().clone()
    }

    pub fn subscribe(&self) -> watch::Receiver<Arc<GpuSnapshot>> {
        self.snapshots.clone()
    }

    pub fn history(&self) -> std::collections::HashMap<u32, Vec<super::HistoryPoint>> {
        self.history
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .series()
    }

    pub fn set_interval(&self, every: Duration) {
        self.interval.send_replace(every);
    }
}

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl GpuSampler {
    /// Starts the sampler thread. `lib` is the NVML library to load (`None`: the driver's).
    pub fn spawn(
        lib: Option<PathBuf>,
        every: Duration,
        directory: Arc<RwLock<ContainerDirectory>>,
    ) -> SamplerHandle {
        let first = Arc::new(GpuSnapshot {
            at_ms: now_ms(),
            nvml: NvmlState::Unavailable {
                reason: "starting".into(),
            },
            driver_version: None,
            cuda_driver_version: None,
            gpus: vec![],
        });
        let (tx, rx) = watch::channel(first);
        let (itx, irx) = watch::channel(every);
        let history = Arc::new(Mutex::new(GpuHistory::default()));
        let hist = history.clone();
        let spawned = std::thread::Builder::new()
            .name("gpu-sampler".into())
            .spawn(move || run(lib, tx, irx, hist, directory));
        if let Err(e) = spawned {
            tracing::error!("could not start the GPU sampler thread: {e}");
        }
        SamplerHandle {
            snapshots: rx,
            history,
            interval: Arc::new(itx),
        }
    }
}

fn run(
    lib: Option<PathBuf>,
    tx: watch::Sender<Arc<GpuSnapshot>>,
    interval: watch::Receiver<Duration>,
    history: Arc<Mutex<GpuHistory>>,
    directory: Arc<RwLock<ContainerDirectory>>,
) {
    let proc_root = Path::new("/proc");
    let mut source: Option<NvmlSource> = None;
    let mut last_try: Option<Instant> = None;
    let mut failure = String::new();
    loop {
        if tx.is_closed() {
            return;
        }
        let started = Instant::now();
        if source.is_none() && last_try.is_none_or(|t| t.elapsed() >= NVML_RETRY) {
            last_try = Some(Instant::now());
            match NvmlSource::open(lib.as_deref()) {
                Ok(s) => source = Some(s),
                Err(e) => failure = reason_of(e),
            }
        }
        let snap = match source.as_ref().map(|s| {
            read_snapshot(
                s,
                &directory.read().unwrap_or_else(|e| e.into_inner()),
                proc_root,
            )
        }) {
            Some(Ok(snap)) => snap,
            Some(Err(e)) => {
                // The driver went away (unloaded, reset): drop it and reload later.
                failure = reason_of(e);
                source = None;
                unavailable(&failure)
            }
            None => unavailable(&failure),
        };
        history
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .record(&snap);
        tx.send_replace(Arc::new(snap));
        let every = *interval.borrow();
        std::thread::sleep(every.saturating_sub(started.elapsed()));
    }
}

/// The bare reason (the UI and CLI add what to do).
fn reason_of(e: crate::CoreError) -> String {
    match e {
        crate::CoreError::NvmlUnavailable(reason) => reason,
        other => other.to_string(),
    }
}

/// One pass over every GPU, with processes attributed to containers and holders filled in.
pub fn read_snapshot(
    source: &NvmlSource,
    dir: &ContainerDirectory,
    proc_root: &Path,
) -> crate::Result<GpuSnapshot> {
    let raw = source.sample()?;
    let mut gpus = raw.gpus;
    for g in &mut gpus {
        g.held_by = dir.holders_of(g.index, g.uuid.as_deref());
        for p in g.processes.iter_mut().flatten() {
            p.container = container_id_of_pid(proc_root, p.pid).map(|id| dir.container_ref(&id));
        }
    }
    Ok(GpuSnapshot {
        at_ms: now_ms(),
        nvml: NvmlState::Ok,
        driver_version: raw.driver_version,
        cuda_driver_version: raw.cuda_driver_version,
        gpus,
    })
}

/// The snapshot shown when there is no NVIDIA driver (or it failed): no GPUs, and why.
pub fn unavailable(reason: &str) -> GpuSnapshot {
    GpuSnapshot {
        at_ms: now_ms(),
        nvml: NvmlState::Unavailable {
            reason: reason.to_string(),
        },
        driver_version: None,
        cuda_driver_version: None,
        gpus: vec![],
    }
}
