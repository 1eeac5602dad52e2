use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use gpudeck_core::alloc::GpuCandidate;
use gpudeck_core::docker::{self, ContainerDirectory, DockerAdapter, DockerStatus};
use gpudeck_core::gpu::{GpuSampler, SamplerHandle};
use gpudeck_core::paths::{nvml_lib_from_env, DataDir};
use gpudeck_core::replicaset::{Env, ReplicaSets};
use gpudeck_core::settings::{Settings, STORE_KEY};
use gpudeck_core::store::Store;
use gpudeck_core::{CoreError, Result};
use tauri::{AppHandle, Emitter, Runtime};
use tauri_plugin_store::StoreExt;
use tokio::sync::watch;

/// How long to wait before reconnecting to an unreachable Docker engine.
const DOCKER_RETRY: Duration = Duration::from_secs(3);

pub struct AppState {
    pub data_dir: DataDir,
    pub settings: Mutex<Settings>,
    pub sampler: SamplerHandle,
    pub docker: watch::Receiver<DockerStatus>,
    docker_endpoint: watch::Sender<Option<String>>,
    /// The tasks streaming to the UI (GPU snapshots, followed logs), by subscription id.
    pub streams: Subscriptions,
    pub terminals: crate::commands::terminal::Terminals,
    /// The SQLite store; `Err` keeps the app usable (GPU page) and says why the rest is not.
    pub store: std::result::Result<Mutex<Store>, CoreError>,
}

impl AppState {
    pub fn start<R: Runtime>(
        app: &AppHandle<R>,
    ) -> std::result::Result<AppState, Box<dyn std::error::Error>> {
        let data_dir = DataDir::resolve()?;
        data_dir.ensure()?;
        let settings = load_settings(app, &data_dir);
        let store = Store::open(&data_dir.database()).map(Mutex::new);
        if let Err(e) = &store {
            tracing::error!("{e}");
        }

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
        let (changes_tx, mut changes_rx) = watch::channel(0u64);
        tauri::async_runtime::spawn(docker::monitor(
            endpoint_rx,
            status_tx,
            directory,
            changes_tx,
            DOCKER_RETRY,
        ));
        // Container changes (from the app, the CLI or anyone) reach the UI as `containers-changed`.
        let handle = app.clone();
        tauri::async_runtime::spawn(async move {
            while changes_rx.changed().await.is_ok() {
                let n = *changes_rx.borrow_and_update();
                let _ = handle.emit("containers-changed", n);
            }
        });
        // Every status change reaches the UI as a `docker-status` event.
        let mut changes = status_rx.clone();
        let handle = app.clone();
        tauri::async_runtime::spawn(async move {
            while changes.changed().await.is_ok() {
                let status = changes.borrow_and_update().clone();
                let _ = handle.emit("docker-status", status);
            }
        });

        Ok(AppState {
            data_dir,
            settings: Mutex::new(settings),
            sampler,
            docker: status_rx,
            docker_endpoint: endpoint_tx,
            streams: Subscriptions::default(),
            terminals: Default::default(),
            store,
        })
    }

    /// A connected Docker client for one operation (the monitor keeps its own).
    pub async fn docker_adapter(&self) -> Result<DockerAdapter> {
        DockerAdapter::new(self.settings().docker_endpoint.as_deref())?
            .connect()
            .await
    }

    pub fn store(&self) -> Result<&Mutex<Store>> {
        self.store.as_ref().map_err(|e| CoreError::Io {
            path: self.data_dir.database().display().to_string(),
            reason: e.to_string(),
        })
    }

    /// The replicaSet service over `docker`, with the GPUs as last sampled.
    pub fn replicasets<'a>(
        &'a self,
        docker: &'a DockerAdapter,
        settings: &'a Settings,
    ) -> Result<ReplicaSets<'a>> {
        let gpus = self
            .sampler
            .latest()
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
        Ok(ReplicaSets::new(Env {
            docker,
            store: self.store()?,
            settings,
            data_dir: &self.data_dir,
            gpus,
        }))
    }

    /// A Docker client and the id of the replicaSet's current container.
    pub async fn rs_container(&self, name: &str) -> Result<(DockerAdapter, String)> {
        let docker = self.docker_adapter().await?;
        let settings = self.settings();
        let id = self
            .replicasets(&docker, &settings)?
            .container_id(name)
            .await?;
        Ok((docker, id))
    }

    pub fn volumes<'a>(
        &'a self,
        docker: &'a DockerAdapter,
    ) -> Result<gpudeck_core::volume::Volumes<'a>> {
        Ok(gpudeck_core::volume::Volumes {
            docker,
            store: self.store()?,
            data_dir: &self.data_dir,
        })
    }

    /// Once the engine answers, finishes or undoes what a crash left half done.
    pub async fn recover_when_connected(&self) {
        let mut status = self.docker.clone();
        if status
            .wait_for(|s| matches!(s, DockerStatus::Connected { .. }))
            .await
            .is_err()
        {
            return;
        }
        let result = async {
            let docker = self.docker_adapter().await?;
            let settings = self.settings();
            let rs = self.replicasets(&docker, &settings)?;
            let n = rs.recover().await?;
            let vols = self.volumes(&docker)?;
            let m = vols.recover(Some(&rs)).await?;
            // Loop devices do not survive a reboot: attach the volumes' files again.
            vols.restore().await?;
            Ok::<_, CoreError>(n + m)
        }
        .await;
        match result {
            Ok(0) => {}
            Ok(n) => tracing::info!("settled {n} operation(s) a previous run left unfinished"),
            Err(e) => tracing::error!("recovery failed: {e}"),
        }
    }

    pub fn settings(&self) -> Settings {
        self.settings
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Validates, saves through tauri-plugin-store, and applies at once (no restart).
    pub fn update_settings<R: Runtime>(
        &self,
        app: &AppHandle<R>,
        new: Settings,
    ) -> Result<Settings> {
        new.validate()?;
        let store = app
            .store(self.data_dir.settings_file())
            .map_err(|e| CoreError::Io {
                path: self.data_dir.settings_file().display().to_string(),
                reason: e.to_string(),
            })?;
        let value = serde_json::to_value(&new)
            .map_err(|e| CoreError::invalid_setting("settings", e.to_string()))?;
        store.set(STORE_KEY, value);
        store.save().map_err(|e| CoreError::Io {
            path: self.data_dir.settings_file().display().to_string(),
            reason: e.to_string(),
        })?;
        self.sampler
            .set_interval(Duration::from_millis(new.sample_interval_ms.into()));
        self.docker_endpoint.send_if_modified(|ep| {
            let changed = *ep != new.docker_endpoint;
            ep.clone_from(&new.docker_endpoint);
            changed
        });
        *self.settings.lock().unwrap_or_else(|e| e.into_inner()) = new.clone();
        Ok(new)
    }
}

/// The saved settings, or the defaults when none are saved. A saved value that no longer
/// validates is logged and replaced by the default rather than keeping the app from opening.
fn load_settings<R: Runtime>(app: &AppHandle<R>, data_dir: &DataDir) -> Settings {
    let saved = app
        .store(data_dir.settings_file())
        .ok()
        .and_then(|s| s.get(STORE_KEY));
    match saved.map(Settings::from_value) {
        Some(Ok(s)) => s,
        Some(Err(e)) => {
            tracing::warn!("ignoring saved settings: {e}");
            Settings::default()
        }
        None => Settings::default(),
    }
}

/// Streaming tasks by id; removing one stops it.
#[derive(Default)]
pub struct Subscriptions {
    tasks: Mutex<(
        u32,
        std::collections::HashMap<u32, tauri::async_runtime::JoinHandle<()>>,
    )>,
}

impl Subscriptions {
    pub fn add(&self, task: tauri::async_runtime::JoinHandle<()>) -> u32 {
        let mut g = self.tasks.lock().unwrap_or_else(|e| e.into_inner());
        g.0 = g.0.wrapping_add(1);
        let id = g.0;
        g.1.retain(|_, t| !t.inner().is_finished());
        g.1.insert(id, task);
        id
    }

    pub fn remove(&self, id: u32) {
        if let Some(t) = self
            .tasks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .1
            .remove(&id)
        {
            t.abort();
        }
    }
}
