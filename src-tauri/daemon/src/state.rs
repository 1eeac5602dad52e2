//! The service's state: the one store, the sampler, the Docker monitor, the settings file, and the
//! locks that keep two operations off the same replicaSet or volume.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

use gpudeck_core::alloc::GpuCandidate;
use gpudeck_core::docker::{self, ContainerDirectory, DockerAdapter, DockerStatus};
use gpudeck_core::gpu::{GpuSampler, NvmlSource, SamplerHandle};
use gpudeck_core::image::jobs::Jobs;
use gpudeck_core::image::{Images, Registries};
use gpudeck_core::paths::{nvml_lib_from_env, DataDir};
use gpudeck_core::policy::{self, Caller, Effective};
use gpudeck_core::replicaset::{Admission, Admit, Env, ReplicaSets, RsSpec};
use gpudeck_core::settings::{Settings, STORE_KEY};
use gpudeck_core::store::Store;
use gpudeck_core::volume::Volumes;
use gpudeck_core::{CoreError, Result};
use tokio::sync::watch;

const DOCKER_RETRY: Duration = Duration::from_secs(3);

/// Named async locks: an operation holds its replicaSet's (or volume's) for its whole length.
#[derive(Default)]
pub struct Locks {
    map: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl Locks {
    pub async fn lock(&self, key: &str) -> tokio::sync::OwnedMutexGuard<()> {
        let m = {
            let mut g = self.map.lock().unwrap_or_else(|e| e.into_inner());
            g.retain(|_, m| Arc::strong_count(m) > 1 || m.try_lock().is_err());
            g.entry(key.to_string()).or_default().clone()
        };
        m.lock_owned().await
    }

    /// The lock of `key` if no one holds it now.
    pub fn try_lock(&self, key: &str) -> Option<tokio::sync::OwnedMutexGuard<()>> {
        let m = {
            let mut g = self.map.lock().unwrap_or_else(|e| e.into_inner());
            g.entry(key.to_string()).or_default().clone()
        };
        m.try_lock_owned().ok()
    }
}

struct SettingsCache {
    settings: Settings,
    mtime: Option<SystemTime>,
}

pub struct Daemon {
    pub data: DataDir,
    settings: Mutex<SettingsCache>,
    pub sampler: SamplerHandle,
    pub docker_status: watch::Receiver<DockerStatus>,
    endpoint_tx: watch::Sender<Option<String>>,
    pub changes: watch::Receiver<u64>,
    pub store: Mutex<Store>,
    pub locks: Locks,
    /// Held for writing while recovery settles what a crash left; operations wait for it.
    pub ready: Arc<tokio::sync::RwLock<()>>,
    docker: tokio::sync::Mutex<Option<DockerAdapter>>,
    /// Pulls and pushes under way (and recently ended).
    pub jobs: Arc<Jobs>,
    /// The engine's data root, learnt when it is connected (members may never bind from it).
    docker_root: Mutex<Option<PathBuf>>,
    /// Connections held, bounded per peer and in all (the socket's and the REST port's).
    pub gate: Arc<crate::conn::Gate>,
}

impl Daemon {
    /// Opens the data folder (0700; files 0600 through the umask the binary sets) and the store,
    /// and starts the sampler and the Docker monitor. Call `recover` next.
    pub fn start(data: DataDir) -> Result<Arc<Daemon>> {
        data.ensure()?;
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(data.path(), std::fs::Permissions::from_mode(0o700))
            .map_err(|e| CoreError::io(data.path(), e))?;
        // Settings it cannot honour stop the service with the field named, rather than run on
        // defaults the admin did not choose.
        let settings = Settings::load_file(&data.settings_file())?;
        let store = Store::open(&data.database())?;
        let directory = Arc::new(RwLock::new(ContainerDirectory::default()));
        let sampler = GpuSampler::spawn(
            nvml_lib_from_env(),
            Duration::from_millis(settings.sample_interval_ms.into()),
            directory.clone(),
        );
        let (status_tx, status_rx) = watch::channel(DockerStatus::Connecting {
            endpoint: settings
                .docker_endpoint
                .clone()
                .unwrap_or_else(docker::default_endpoint),
        });
        let (endpoint_tx, endpoint_rx) = watch::channel(settings.docker_endpoint.clone());
        let (changes_tx, changes_rx) = watch::channel(0u64);
        tokio::spawn(docker::monitor(
            endpoint_rx,
            status_tx,
            directory,
            changes_tx,
            DOCKER_RETRY,
        ));
        let mtime = mtime(&data.settings_file());
        Ok(Arc::new(Daemon {
            data,
            settings: Mutex::new(SettingsCache { settings, mtime }),
            sampler,
            docker_status: status_rx,
            endpoint_tx,
            changes: changes_rx,
            store: Mutex::new(store),
            locks: Locks::default(),
            ready: Arc::new(tokio::sync::RwLock::new(())),
            docker: tokio::sync::Mutex::new(None),
            jobs: Arc::new(Jobs::default()),
            docker_root: Mutex::new(None),
            gate: crate::conn::Gate::new(crate::conn::Limits::from_env()),
        }))
    }

    /// The settings, read again when an admin changed the file by hand.
    pub fn settings(&self) -> Settings {
        let mut g = self.settings.lock().unwrap_or_else(|e| e.into_inner());
        let now = mtime(&self.data.settings_file());
        if now != g.mtime {
            g.mtime = now;
            match Settings::load_file(&self.data.settings_file()) {
                Ok(s) => g.settings = s,
                Err(e) => tracing::warn!("keeping the settings in use: {e}"),
            }
        }
        g.settings.clone()
    }

    /// Validates, saves (`{"settings": …}`, as the app's store wrote it) and applies at once.
    pub fn set_settings(&self, new: Settings) -> Result<Settings> {
        new.validate()?;
        let file = self.data.settings_file();
        let doc = serde_json::json!({ STORE_KEY: new });
        let tmp = file.with_extension("json.tmp");
        std::fs::write(&tmp, serde_json::to_vec_pretty(&doc).unwrap_or_default())
            .and_then(|()| std::fs::rename(&tmp, &file))
            .map_err(|e| CoreError::io(&file, e))?;
        self.sampler
            .set_interval(Duration::from_millis(new.sample_interval_ms.into()));
        self.endpoint_tx.send_if_modified(|ep| {
            let changed = *ep != new.docker_endpoint;
            ep.clone_from(&new.docker_endpoint);
            changed
        });
        let mut g = self.settings.lock().unwrap_or_else(|e| e.into_inner());
        g.settings = new.clone();
        g.mtime = mtime(&file);
        Ok(new)
    }

    /// A connected engine client, kept between requests while the endpoint stays the same.
    pub async fn docker(&self) -> Result<DockerAdapter> {
        let endpoint = self
            .settings()
            .docker_endpoint
            .unwrap_or_else(docker::default_endpoint);
        let mut g = self.docker.lock().await;
        if let Some(d) = g.as_ref().filter(|d| d.endpoint() == endpoint) {
            return Ok(d.clone());
        }
        let d = DockerAdapter::new(Some(&endpoint))?.connect().await?;
        if let Some(root) = d.info().await.ok().and_then(|i| i.docker_root_dir) {
            *self.docker_root.lock().unwrap_or_else(|e| e.into_inner()) = Some(root.into());
        }
        *g = Some(d.clone());
        Ok(d)
    }

    /// Waits until recovery is done (at most 30 s) before an operation that changes things.
    pub async fn ready(&self) -> Result<tokio::sync::RwLockReadGuard<'_, ()>> {
        tokio::time::timeout(Duration::from_secs(30), self.ready.read())
            .await
            .map_err(|_| CoreError::DockerUnreachable {
                endpoint: self
                    .settings()
                    .docker_endpoint
                    .unwrap_or_else(docker::default_endpoint),
                reason: "GPU Deck's service is still waiting for it to settle what a crash left unfinished".into(),
            })
    }

    /// Forgets the engine client after it failed (the next request connects again).
    pub async fn docker_failed(&self) {
        *self.docker.lock().await = None;
    }

    /// The GPUs now, for an allocation: the sampler's reading when it is under 2 s old, else one
    /// read fresh (at start, or when sampling is slow).
    pub fn gpus_now(&self) -> Vec<GpuCandidate> {
        let latest = self.sampler.latest();
        let fresh = gpudeck_core::gpu::now_ms().saturating_sub(latest.at_ms) < 2000;
        if fresh && matches!(latest.nvml, gpudeck_core::gpu::NvmlState::Ok) {
            return latest
                .gpus
                .iter()
                .filter_map(|g| {
                    Some(GpuCandidate {
                        index: g.index,
                        uuid: g.uuid.clone()?,
                        memory_used_bytes: g.memory_used_bytes,
                    })
                })
                .collect();
        }
        NvmlSource::open(nvml_lib_from_env().as_deref())
            .and_then(|s| s.sample())
            .map(|raw| {
                raw.gpus
                    .into_iter()
                    .filter_map(|g| {
                        Some(GpuCandidate {
                            index: g.index,
                            uuid: g.uuid?,
                            memory_used_bytes: g.memory_used_bytes,
                        })
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    pub fn replicasets<'a>(
        &'a self,
        docker: &'a DockerAdapter,
        settings: &'a Settings,
        gpus: Vec<GpuCandidate>,
    ) -> ReplicaSets<'a> {
        ReplicaSets::new(Env {
            docker,
            store: &self.store,
            settings,
            data_dir: &self.data,
            gpus,
            admit: Some(self),
        })
    }

    pub fn volumes<'a>(&'a self, docker: &'a DockerAdapter) -> Volumes<'a> {
        Volumes {
            docker,
            store: &self.store,
            data_dir: &self.data,
            root_owner: None,
        }
    }

    pub fn images<'a>(&'a self, docker: &'a DockerAdapter) -> Images<'a> {
        Images {
            docker,
            store: &self.store,
        }
    }

    pub fn registries(&self) -> Registries<'_> {
        Registries {
            store: &self.store,
            data: &self.data,
        }
    }

    pub fn db<T>(&self, f: impl FnOnce(&mut Store) -> Result<T>) -> Result<T> {
        let mut g = self.store.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut g)
    }

    /// The caller's limits after the fallbacks (admins have none).
    pub fn policy_of(&self, caller: &Caller) -> Result<Effective> {
        let (own, default) = self.db(|s| {
            Ok((
                s.policy_row(&caller.user)?,
                s.policy_row(policy::DEFAULT_ROW)?,
            ))
        })?;
        let mut e = policy::effective(&caller.user, &caller.home, own.as_ref(), default.as_ref());
        if caller.is_admin() {
            e.max_gpus = None;
            e.root_in_container = true;
        }
        Ok(e)
    }

    /// The trees `data_roots` names, as last learnt (Docker's default root until the engine
    /// said its own).
    fn known_data_roots(&self) -> Vec<PathBuf> {
        let root = self
            .docker_root
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .unwrap_or_else(|| PathBuf::from("/var/lib/docker"));
        [self.data.path().to_path_buf(), root]
            .into_iter()
            .map(|p| p.canonicalize().unwrap_or(p))
            .collect()
    }

    /// Settles, while the service runs, what an operation left unfinished when its own undo
    /// failed too (a fault: out of file descriptors, the engine gone for a moment): the journal
    /// rows of replicaSets whose lock no one holds, so no operation of theirs is under way (every
    /// journaled operation holds its replicaSet's lock from before its row begins until it is
    /// finished). Runs every `GPUDECK_SETTLE_EVERY_MS` (30 s) after the start's recovery.
    pub async fn settle_abandoned(&self) -> Result<usize> {
        let _ready = self.ready().await?;
        let open = self.db(|s| s.journal_open_ours_too())?;
        let mut held = Vec::new();
        let mut names = std::collections::HashSet::new();
        for o in open.iter().filter(|o| !o.kind.starts_with("vol-")) {
            if names.contains(&o.subject) {
                continue;
            }
            if let Some(g) = self.locks.try_lock(&format!("rs:{}", o.subject)) {
                held.push(g);
                names.insert(o.subject.clone());
            }
        }
        if names.is_empty() {
            return Ok(0);
        }
        let docker = self.docker().await?;
        let settings = self.settings();
        let rs = self.replicasets(&docker, &settings, self.gpus_now());
        let n = rs.recover_where(&|n| names.contains(n)).await?;
        tracing::warn!("settled {n} operation(s) a failure had left unfinished");
        Ok(n)
    }

    /// Trees no member may bind from: Docker's data root and GPU Deck's own.
    pub async fn data_roots(&self, docker: &DockerAdapter) -> Vec<PathBuf> {
        let mut v = vec![self.data.path().to_path_buf()];
        if let Some(root) = docker.info().await.ok().and_then(|i| i.docker_root_dir) {
            v.push(PathBuf::from(root));
        }
        v.into_iter()
            .map(|p| p.canonicalize().unwrap_or(p))
            .collect()
    }

    /// Settles what a crash left half done (replicaSets first: a volume move patches them) and
    /// re-attaches volume files a reboot detached. Only the service does this, once, at start,
    /// while no operation runs.
    pub async fn recover(self: &Arc<Self>, all: tokio::sync::OwnedRwLockWriteGuard<()>) {
        // Waits for the engine as long as it takes: operations wait (`ready`) meanwhile.
        let mut status = self.docker_status.clone();
        let _ = status
            .wait_for(|s| matches!(s, DockerStatus::Connected { .. }))
            .await;
        let result = async {
            let docker = self.docker().await?;
            let settings = self.settings();
            let rs = self.replicasets(&docker, &settings, self.gpus_now());
            let n = rs.recover().await?;
            let vols = self.volumes(&docker);
            let m = vols.recover(Some(&rs)).await?;
            vols.restore().await?;
            // Bind stages whose container is gone (removed outside GPU Deck, or a crash between
            // a stage and its container).
            let swept = gpudeck_core::replicaset::pin::sweep(&docker, &self.data).await?;
            if swept > 0 {
                tracing::info!("released the bind stages of {swept} container(s) that are gone");
            }
            Ok::<_, CoreError>(n + m)
        }
        .await;
        match result {
            Ok(0) => {}
            Ok(n) => tracing::info!("settled {n} operation(s) a previous run left unfinished"),
            Err(e) => tracing::error!("recovery failed: {e}"),
        }
        drop(all);
        // From now on, what a failure leaves unfinished settles without a restart.
        let every = std::env::var("GPUDECK_SETTLE_EVERY_MS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(30_000u64);
        let me = self.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(every)).await;
                if let Err(e) = me.settle_abandoned().await {
                    tracing::warn!("settling what a failure left unfinished: {e}");
                }
            }
        });
    }
}

fn mtime(p: &std::path::Path) -> Option<SystemTime> {
    std::fs::metadata(p).and_then(|m| m.modified()).ok()
}

/// The rules in force for a spec's owner, at every (re)start: the owner's identity and groups as
/// the system says now, their policy row as the admin set it now.
impl Admit for Daemon {
    fn admit(&self, spec: &mut RsSpec) -> Result<Admission> {
        // Made before owners existed: only admins may act on it, as before.
        let Some(owner) = spec.owner.clone() else {
            return Ok(Admission::default());
        };
        let caller = crate::identity::caller_named(&owner).ok_or_else(|| {
            CoreError::Forbidden(format!(
                "Its owner {owner} is no longer a user on this workstation, so it cannot be started again; an admin may delete it. Nothing was changed."
            ))
        })?;
        if caller.role == policy::Role::None {
            return Err(CoreError::Forbidden(format!(
                "Its owner {owner} is no longer in the group \"{}\", so it cannot be started again (an admin adds them back with `sudo usermod -aG {} {owner}`). Nothing was changed.",
                policy::GROUP_MEMBERS,
                policy::GROUP_MEMBERS
            )));
        }
        let pol = self.policy_of(&caller)?;
        let roots = if caller.is_admin() {
            vec![]
        } else {
            self.known_data_roots()
        };
        let vols = |v: &str| self.db(|s| s.vol_ref(v)).ok().flatten();
        policy::apply_to_spec(&caller, &pol, spec, &roots, &vols)?;
        Ok(Admission {
            max_gpus: pol.max_gpus,
            // A member's host binds are mounted from what was checked (`replicaset::pin`).
            pin_binds: !caller.is_admin(),
        })
    }
}
