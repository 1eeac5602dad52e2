//! The replicaSet operations. The Docker engine is the source of truth for what runs; SQLite
//! keeps every version's spec, the GPU/port claims and the journal of multi-step operations.
//!
//! A new version (patch, restart, rollback) is made in journaled steps, and the old container is
//! removed only once the new one runs with the data carried over. On overlay2 the new container
//! gets a copy of the old one's upper directory, and the old version's files are kept as a folder
//! after the reply (see `copy`):
//!   begun → claimed → stopped_old → created → copied → started → recorded → saved → done
//! Elsewhere the old container is committed to a snapshot image and the new one is created from
//! it, Docker API only (see `files`):
//!   begun → claimed → stopped_old → committed → created → started → recorded → done
//! or, when nothing in the running old container acts on its stop signal (see `quiesce`), it is
//! committed frozen, and killed while the commit runs:
//!   begun → claimed → committed → stopped_old → created → started → recorded → done
//! The service replies once the new version is recorded and finishes the rest (keeping the old
//! version's files, removing its container) right after, still holding the replicaSet's lock.
//! Everything a step needs (the image, the files to start from, the layer limit) is checked before
//! anything is stopped. `recover` (run at every start of the app and the CLI) finishes an operation
//! whose new version was recorded, and undoes any other: the new container goes, the old one's
//! claims come back and it runs again if it ran. The old container is never changed, so nothing
//! is lost. `run` is journaled too: a crash before it is recorded leaves nothing behind.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use serde::Serialize;
use serde_json::json;
use ts_rs::TS;

use super::archive;
use super::copy;
use super::files::{self, image_facts, ImageFacts};
use super::pin::{self, Pins};
use super::quiesce;
use super::spec::{describe_change, validate_name, validate_spec, RsSpec, LABEL_RS};
use crate::alloc::{host_listening_ports, GpuCandidate};
use crate::docker::{ContainerState, CreateArgs, DockerAdapter, ExecOutput};
use crate::gpu::requests::{self, GpuWay};
use crate::paths::DataDir;
use crate::settings::Settings;
use crate::store::{Store, UserLimit, VersionRecord};
use crate::{CoreError, Result};

/// What an operation runs against.
pub struct Env<'a> {
    pub docker: &'a DockerAdapter,
    pub store: &'a Mutex<Store>,
    pub settings: &'a Settings,
    pub data_dir: &'a DataDir,
    /// The GPUs as last sampled (the CLI samples once; the app uses its sampler).
    pub gpus: Vec<GpuCandidate>,
    /// The rules in force for a spec's owner, applied at every (re)start; `None` applies none
    /// (settling what a crash left, which finishes what was admitted before).
    pub admit: Option<&'a dyn Admit>,
}

/// The rules in force now for the owner of a spec (the service's policy): applied before every
/// container GPU Deck creates or starts again (run, restart, patch, rollback, continue after a
/// stop), so a revoked right, a bind that now leads elsewhere or a lowered GPU limit counts at
/// once.
pub trait Admit: Send + Sync {
    /// Makes `spec` what its owner may run now (user, groups and capabilities; host binds
    /// resolved and checked; volume binds of their own GPU Deck volumes), or refuses, changing
    /// nothing.
    fn admit(&self, spec: &mut RsSpec) -> Result<Admission>;
}

/// What `Admit` says beside the spec it rewrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Admission {
    /// The owner's GPU limit (`None`: none).
    pub max_gpus: Option<u32>,
    /// The owner is a member: their host binds are mounted from what was checked (`pin`).
    pub pin_binds: bool,
}

/// The owner's rules for one (re)start: whose GPUs a claim is, their limit, and whether the
/// binds are pinned.
struct Admitted {
    limit: UserLimit,
    pin: bool,
}

#[derive(
    Debug, Clone, Copy, Serialize, serde::Deserialize, TS, schemars::JsonSchema, PartialEq, Eq,
)]
#[serde(rename_all = "lowercase")]
pub enum RsStatus {
    Running,
    Paused,
    /// Stopped by the user: GPUs and ports released.
    Stopped,
    /// Exited on its own (its claims are kept until stop or delete).
    Exited,
    Created,
    /// The container was removed outside GPU Deck.
    Missing,
}

#[derive(Debug, Clone, Serialize, serde::Deserialize, TS, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RsInfo {
    pub name: String,
    pub version: u32,
    pub container: String,
    pub status: RsStatus,
    pub spec: RsSpec,
    pub gpus: Vec<String>,
    pub ports: Vec<(u16, u16)>,
    #[ts(type = "number")]
    pub created_at: i64,
    pub versions: u32,
}

use crate::store::now_s;

/// Where a new version's files come from.
#[derive(Debug, Clone, Copy)]
enum Source {
    /// The current version's (patch, restart).
    Current,
    /// Version k's snapshot (rollback).
    Version(u32),
    /// Version k's clean image: a deliberate configuration-only rollback.
    Clean(u32),
}

/// What the new container is created from, as checked up front.
enum Start {
    /// Carry the old container's files once it is stopped (or frozen): through the archive API
    /// into a new container of `from` (the image it was created from) where they allow
    /// (`archive`), else committed and started from that; `flatten` when one more layer would
    /// pass the limit (the whole file system into one layer).
    CommitOld {
        flatten: bool,
        from: ImageFacts,
    },
    /// Copy the old container's upper directory (overlay2) into a new container of `from`.
    CopyOld {
        from: ImageFacts,
        upper: PathBuf,
    },
    /// Copy a version's folder into a new container of `from`.
    Folder {
        from: ImageFacts,
        dir: PathBuf,
    },
    Image(ImageFacts),
}

/// What is left of a new version once it is recorded: keeping the old version's files and
/// removing its container (`ReplicaSets::settle`).
#[derive(Debug, Clone)]
pub struct Pending {
    journal: i64,
    name: String,
    old: u32,
}

/// A rollback refused because the version's files sit in a folder it cannot use (`why`).
fn unusable_folder(name: &str, at: u32, why: String) -> CoreError {
    CoreError::RsState {
        name: name.into(),
        state: format!("at version {at}"),
        hint: format!("{why}. Nothing was changed. Roll back with --config-only and copy what you need from that folder."),
    }
}

/// A replicaSet's status from its container's engine state (`None`: no such container).
fn status_from(engine: Option<&str>, stopped: bool) -> RsStatus {
    match (engine, stopped) {
        (None, _) => RsStatus::Missing,
        (Some(_), true) => RsStatus::Stopped,
        (Some(st), false) => match st {
            "running" | "restarting" => RsStatus::Running,
            "paused" => RsStatus::Paused,
            "created" => RsStatus::Created,
            _ => RsStatus::Exited,
        },
    }
}

fn make_info(name: &str, cur: u32, status: RsStatus, rec: VersionRecord, versions: u32) -> RsInfo {
    let held = status != RsStatus::Stopped;
    RsInfo {
        name: name.into(),
        version: cur,
        container: container_name(name, cur),
        status,
        gpus: if held { rec.gpus.clone() } else { vec![] },
        ports: if held { rec.ports.clone() } else { vec![] },
        spec: rec.spec,
        created_at: rec.created_at,
        versions,
    }
}

pub fn container_name(name: &str, version: u32) -> String {
    format!("{name}-{version}")
}

use crate::crash_point;

pub struct ReplicaSets<'a> {
    env: Env<'a>,
    /// Leave what follows a recorded new version to `settle` (the service does it after the reply).
    defer: bool,
    pending: Mutex<Option<Pending>>,
}

impl<'a> ReplicaSets<'a> {
    pub fn new(env: Env<'a>) -> Self {
        ReplicaSets {
            env,
            defer: false,
            pending: Mutex::new(None),
        }
    }

    /// A new version returns once recorded; `take_pending` then says what `settle` must finish.
    pub fn deferring(mut self) -> Self {
        self.defer = true;
        self
    }

    pub fn take_pending(&self) -> Option<Pending> {
        self.pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
    }

    /// Finishes a recorded new version: the old version's files kept, its container removed,
    /// the retention setting applied.
    pub async fn settle(&self, p: Pending) -> Result<()> {
        self.finish(p.journal, &p.name, p.old).await?;
        self.db(|s| s.journal_finish(p.journal, "done"))?;
        self.apply_retention(&p.name).await
    }

    fn db<T>(&self, f: impl FnOnce(&mut Store) -> Result<T>) -> Result<T> {
        let mut g = self.env.store.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut g)
    }

    fn step(&self, id: i64, step: &str) -> Result<()> {
        self.db(|s| s.journal_step(id, step))?;
        crash_point(step);
        crate::fail_point(step)
    }

    fn current(&self, name: &str) -> Result<(u32, bool, VersionRecord)> {
        validate_name("replicaSet", name)?;
        let (cur, stopped) = self
            .db(|s| s.rs_current(name))?
            .ok_or_else(|| CoreError::RsNotFound(name.into()))?;
        let rec = self
            .db(|s| s.rs_versions(name))?
            .into_iter()
            .find(|v| v.version == cur)
            .ok_or_else(|| CoreError::RsNotFound(name.into()))?;
        Ok((cur, stopped, rec))
    }

    async fn status_of(
        &self,
        name: &str,
        version: u32,
        stopped: bool,
    ) -> Result<(RsStatus, Option<ContainerState>)> {
        let st = self
            .env
            .docker
            .state(&container_name(name, version))
            .await?;
        let status = status_from(st.as_ref().map(|c| c.status.as_str()), stopped);
        Ok((status, st))
    }

    pub async fn info(&self, name: &str) -> Result<RsInfo> {
        let (cur, stopped, rec) = self.current(name)?;
        let (status, _) = self.status_of(name, cur, stopped).await?;
        let versions = self.db(|s| s.rs_versions(name))?.len() as u32;
        Ok(make_info(name, cur, status, rec, versions))
    }

    /// Every replicaSet, with one call to the engine for all their containers' states (not one
    /// a replicaSet: `rs ls` of a hundred stays fast).
    pub async fn list(&self) -> Result<Vec<RsInfo>> {
        let states = self.env.docker.states_by_label(LABEL_RS).await?;
        let mut out = Vec::new();
        for n in self.db(|s| s.rs_names())? {
            let versions = self.db(|s| s.rs_versions(&n))?;
            let Some((cur, stopped)) = self.db(|s| s.rs_current(&n))? else {
                continue;
            };
            let count = versions.len() as u32;
            let Some(rec) = versions.into_iter().find(|v| v.version == cur) else {
                continue;
            };
            let st = states.get(&container_name(&n, cur)).map(String::as_str);
            out.push(make_info(&n, cur, status_from(st, stopped), rec, count));
        }
        Ok(out)
    }

    pub fn history(&self, name: &str) -> Result<Vec<VersionRecord>> {
        self.current(name)?;
        self.db(|s| s.rs_versions(name))
    }

    /// Creates version 1 and starts it.
    pub async fn run(&self, name: &str, mut spec: RsSpec) -> Result<RsInfo> {
        validate_name("replicaSet", name)?;
        let adm = self.admitted(&mut spec)?;
        validate_spec(&spec, self.env.settings.allow_system_binds)?;
        if self.db(|s| s.rs_current(name))?.is_some()
            || !self.env.docker.containers_of(name).await?.is_empty()
        {
            return Err(CoreError::RsExists(name.into()));
        }
        // The image is recorded by id: a tag pulled again later never changes what this
        // replicaSet's versions are built on.
        let image = image_facts(self.env.docker, &spec.image)
            .await?
            .ok_or_else(|| CoreError::ImageMissing(spec.image.clone()))?;
        let way = self.gpu_way(&spec).await?;
        let payload =
            json!({ "name": name, "old": 0, "new": 1, "was_running": false, "was_stopped": true });
        let id = self.db(|s| s.journal_begin("run", name, &payload))?;
        crash_point("run_begun");
        let made = async {
            let (gpus, ports) = self.claim(name, &spec, &[], &adm.limit).await?;
            self.step(id, "run_claimed")?;
            let rec = VersionRecord {
                name: name.into(),
                version: 1,
                spec,
                gpus,
                ports,
                op: "run".into(),
                changes: vec![],
                created_at: now_s(),
                image_id: Some(image.id.clone()),
                ..Default::default()
            };
            let cid = self.create(&rec, &image, &way, adm.pin).await?;
            self.db(|s| s.journal_set(id, "new_id", &cid))?;
            self.step(id, "run_created")?;
            self.start_container(&cid, true).await?;
            self.db(|s| s.rs_add_version(&rec, None))?;
            Ok::<_, CoreError>(())
        }
        .await;
        match made {
            Ok(()) => {
                self.db(|s| s.journal_finish(id, "done"))?;
                self.info(name).await
            }
            Err(e) => {
                self.undo_run(name).await?;
                self.db(|s| s.journal_finish(id, "undone"))?;
                Err(e)
            }
        }
    }

    /// Removes the container an unfinished operation made: by the id the journal recorded when
    /// it has one; else (a crash between the create and that record) the container of that name
    /// only if its labels say it is this replicaSet's version `new`, never another's of that name.
    async fn remove_new(&self, name: &str, new: u32, p: &serde_json::Value) -> Result<()> {
        if let Some(id) = p["new_id"].as_str() {
            self.env.docker.remove(id).await?;
        } else if let Some(c) = self.env.docker.state(&container_name(name, new)).await? {
            let ours = c.labels.get(super::LABEL_RS).map(String::as_str) == Some(name)
                && c.labels.get(super::LABEL_VERSION) == Some(&new.to_string());
            if ours {
                self.env.docker.remove(&c.id).await?;
            }
        }
        Pins::of(self.env.data_dir).release(&container_name(name, new));
        Ok(())
    }

    /// A run that never got recorded leaves nothing: no container, claims or volumes.
    async fn undo_run(&self, name: &str) -> Result<()> {
        if let Some(c) = self.env.docker.state(&container_name(name, 1)).await? {
            if c.labels.get(super::LABEL_RS).map(String::as_str) == Some(name) {
                self.env.docker.remove(&c.id).await?;
            }
        }
        Pins::of(self.env.data_dir).release(&container_name(name, 1));
        self.db(|s| s.release(name))?;
        files::remove_state_volumes(self.env.docker, name).await
    }

    /// How the next container of `spec` gets its GPUs, checked before anything is claimed or
    /// stopped (`None`: it asks for none).
    async fn gpu_way(&self, spec: &RsSpec) -> Result<Option<GpuWay>> {
        if spec.gpus == 0 {
            return Ok(None);
        }
        let engine = self.env.docker.info().await?;
        requests::way(self.env.settings.gpu_requests, &engine).map(Some)
    }

    /// Creates `rec`'s container from `from` (the base image or a snapshot), with named volumes
    /// for the image's `VOLUME` paths and its GPUs asked for `way`'s way.
    async fn create(
        &self,
        rec: &VersionRecord,
        from: &ImageFacts,
        way: &Option<GpuWay>,
        pin: bool,
    ) -> Result<String> {
        let device_requests = match way {
            Some(w) => requests::device_requests(w, &rec.gpus, &self.env.gpus)?,
            None => None,
        };
        let cname = container_name(&rec.name, rec.version);
        let bound: Vec<String> = rec.spec.binds.iter().map(|b| b.dest.clone()).collect();
        let mut mounts =
            files::state_mounts(self.env.docker, &rec.name, &from.volumes, &bound).await?;
        let planned = Pins::of(self.env.data_dir).plan(&cname, &rec.spec.binds, pin)?;
        mounts.extend(planned.mounts);
        self.env
            .docker
            .create(&CreateArgs {
                container_name: &cname,
                replicaset: &rec.name,
                version: rec.version,
                spec: &rec.spec,
                image: &from.id,
                binds: planned.binds,
                mounts,
                pins: planned.label,
                gpus: &rec.gpus,
                device_requests,
                ports: &rec.ports,
                publish_address: self.env.settings.publish_address.as_deref(),
            })
            .await
    }

    /// Claims GPUs and host ports for `name`'s next container (keeping `keep` host ports when free).
    /// The owner's rules applied to `spec` (see `Admit`); whose GPUs a claim for it is, and
    /// their limit.
    fn admitted(&self, spec: &mut RsSpec) -> Result<Admitted> {
        let a = match self.env.admit {
            Some(a) => a.admit(spec)?,
            None => Admission::default(),
        };
        if a.pin_binds {
            // Before anything is claimed or stopped: each bind can be mounted as checked.
            pin::check(&spec.binds)?;
        }
        crate::hold_point("binds_checked");
        Ok(Admitted {
            limit: UserLimit {
                user: spec.owner.clone(),
                max: a.max_gpus,
            },
            pin: a.pin_binds,
        })
    }

    /// Starts a container of this service's (`pin::start`: pinned binds mounted afresh, or as
    /// they were for an undo).
    async fn start_container(&self, id: &str, fresh: bool) -> Result<()> {
        pin::start(self.env.docker, self.env.data_dir, id, fresh).await
    }

    /// Removes container `cname` and its bind stages.
    async fn remove_container(&self, cname: &str) -> Result<()> {
        self.env.docker.remove(cname).await?;
        Pins::of(self.env.data_dir).release(cname);
        Ok(())
    }

    async fn claim(
        &self,
        name: &str,
        spec: &RsSpec,
        keep: &[u16],
        limit: &UserLimit,
    ) -> Result<(Vec<String>, Vec<(u16, u16)>)> {
        let dir = self.env.docker.directory().await?;
        let held = dir.held_outside(name, &self.env.gpus);
        let gpus =
            self.db(|s| s.claim_gpus_within(name, &self.env.gpus, &held, spec.gpus, limit))?;
        match self.claim_ports_only(name, spec, keep).await {
            Ok(ports) => Ok((gpus, ports)),
            Err(e) => {
                self.db(|s| s.release(name))?;
                Err(e)
            }
        }
    }

    /// Stops the container and releases its GPUs and ports. Releasing is idempotent (stopping
    /// twice frees nothing twice), and a stopped replicaSet whose claims were left behind (a
    /// failed continue) gets them released.
    pub async fn stop(&self, name: &str) -> Result<RsInfo> {
        let (cur, stopped, _) = self.current(name)?;
        if !stopped {
            if let Some(c) = self.env.docker.state(&container_name(name, cur)).await? {
                if c.status == "paused" {
                    self.env.docker.unpause(&c.id).await?;
                }
                self.env
                    .docker
                    .stop(&c.id, self.env.settings.stop_timeout_s)
                    .await?;
            }
        }
        self.db(|s| {
            s.release(name)?;
            s.rs_set_stopped(name, true)
        })?;
        self.info(name).await
    }

    /// Pauses: the processes freeze, GPUs and ports stay held.
    pub async fn pause(&self, name: &str) -> Result<RsInfo> {
        let (cur, stopped, _) = self.current(name)?;
        let (status, c) = self.status_of(name, cur, stopped).await?;
        match (status, c) {
            (RsStatus::Running, Some(c)) => self.env.docker.pause(&c.id).await?,
            (RsStatus::Paused, _) => {}
            (other, _) => {
                return Err(self.state_error(
                    name,
                    other,
                    "only a running replicaSet can be paused",
                ))
            }
        }
        self.info(name).await
    }

    /// Continues a paused replicaSet, or starts a stopped one again on the same GPUs and ports
    /// (if another has taken them it says so; `restart` picks fresh ones).
    pub async fn resume(&self, name: &str) -> Result<RsInfo> {
        let (cur, stopped, rec) = self.current(name)?;
        let (status, c) = self.status_of(name, cur, stopped).await?;
        let Some(c) = c else {
            return Err(self.state_error(
                name,
                RsStatus::Missing,
                "its container was removed outside GPU Deck: use restart to make a new one",
            ));
        };
        match status {
            RsStatus::Paused => self.env.docker.unpause(&c.id).await?,
            RsStatus::Running => {}
            RsStatus::Stopped | RsStatus::Exited | RsStatus::Created => {
                // The container starts again as it was made: only if the rules in force now
                // give the same (the same user and rights, each bind leading where it did).
                let mut now = rec.spec.clone();
                let adm = self.admitted(&mut now)?;
                if let Some(what) = admitted_differs(&rec.spec, &now) {
                    return Err(self.state_error(
                        name,
                        status,
                        &format!("{what} since it was made: use restart, which makes a new version under the rules in force now"),
                    ));
                }
                // Made by a GPU Deck that handed the engine a member's paths to resolve again.
                if adm.pin
                    && now.binds.iter().any(|b| b.is_host_path())
                    && !c.labels.contains_key(pin::LABEL_PINS)
                {
                    return Err(self.state_error(
                        name,
                        status,
                        "it was made before GPU Deck mounted members' folders from what it checked: use restart, which makes a new version that does",
                    ));
                }
                let limit = adm.limit;
                let dir = self.env.docker.directory().await?;
                let held = dir.held_outside(name, &self.env.gpus);
                if let Err(taken) =
                    self.db(|s| s.claim_exact_gpus(name, &rec.gpus, &held, &limit))?
                {
                    return Err(self.state_error(
                        name,
                        status,
                        &format!(
                            "its GPUs {} are taken now: use restart to run it on free GPUs",
                            taken.join(", ")
                        ),
                    ));
                }
                let keep: Vec<u16> = rec.ports.iter().map(|(_, h)| *h).collect();
                let spec = rec.spec.clone();
                let ports = self.claim_ports_only(name, &spec, &keep).await?;
                if ports != rec.ports {
                    self.db(|s| s.release(name))?;
                    return Err(self.state_error(
                        name,
                        status,
                        "some of its host ports are taken now: use restart to get free ones",
                    ));
                }
                if let Err(e) = self.start_container(&c.id, true).await {
                    // Nothing runs: what it claimed goes back.
                    self.db(|s| s.release(name))?;
                    return Err(e);
                }
                self.db(|s| s.rs_set_stopped(name, false))?;
            }
            RsStatus::Missing => unreachable!(),
        }
        self.info(name).await
    }

    async fn claim_ports_only(
        &self,
        name: &str,
        spec: &RsSpec,
        keep: &[u16],
    ) -> Result<Vec<(u16, u16)>> {
        // Busy: anything listening on the host, and ports other containers publish.
        let mut busy = host_listening_ports();
        for (p, owner) in self.env.docker.published_ports().await? {
            if !owner.starts_with(&format!("{name}-")) {
                busy.insert(p);
            }
        }
        let host = self.db(|s| {
            s.claim_ports(
                name,
                self.env.settings.port_range,
                &busy,
                keep,
                spec.ports.len(),
            )
        })?;
        Ok(spec.ports.iter().copied().zip(host).collect())
    }

    fn state_error(&self, name: &str, status: RsStatus, hint: &str) -> CoreError {
        CoreError::RsState {
            name: name.into(),
            state: format!("{status:?}").to_lowercase(),
            hint: hint.into(),
        }
    }

    /// A new version with fresh GPUs and ports, files carried over.
    pub async fn restart(&self, name: &str) -> Result<RsInfo> {
        let (_, _, rec) = self.current(name)?;
        self.new_version(name, rec.spec.clone(), "restart", Source::Current)
            .await
    }

    /// A new version with another GPU count and/or one bind swapped, files carried over.
    pub async fn patch(
        &self,
        name: &str,
        gpus: Option<u32>,
        swap_bind: Option<(super::Bind, super::Bind)>,
    ) -> Result<RsInfo> {
        let (_, _, rec) = self.current(name)?;
        let mut spec = rec.spec.clone();
        if let Some(n) = gpus {
            spec.gpus = n;
        }
        if let Some((old, new)) = swap_bind {
            let slot = spec
                .binds
                .iter_mut()
                .find(|b| b.src == old.src && b.dest == old.dest)
                .ok_or_else(|| CoreError::InvalidInput {
                    what: "bind".into(),
                    reason: format!("{name} has no bind {}:{}", old.src, old.dest),
                })?;
            *slot = new;
        }
        validate_spec(&spec, self.env.settings.allow_system_binds)?;
        self.new_version(name, spec, "patch", Source::Current).await
    }

    /// A new version with version `k`'s spec and k's files as they were when k was replaced.
    /// When k's files are gone (pruned, or removed outside GPU Deck) it is refused, unless
    /// `config_only`: then k's configuration starts from k's clean image, deliberately.
    pub async fn rollback(&self, name: &str, k: u32, config_only: bool) -> Result<RsInfo> {
        let (cur, _, _) = self.current(name)?;
        let target = self
            .db(|s| s.rs_versions(name))?
            .into_iter()
            .find(|v| v.version == k)
            .ok_or_else(|| CoreError::InvalidInput {
                what: "version".into(),
                reason: format!("{name} has no version {k}"),
            })?;
        if k == cur {
            return Err(CoreError::InvalidInput {
                what: "version".into(),
                reason: format!("{name} is at version {k} already"),
            });
        }
        let (op, source) = if config_only {
            (
                format!("rollback {k} (configuration only)"),
                Source::Clean(k),
            )
        } else {
            (format!("rollback {k}"), Source::Version(k))
        };
        self.new_version(name, target.spec.clone(), &op, source)
            .await
    }

    /// What the new container starts from, checked before anything is stopped.
    async fn start_point(
        &self,
        name: &str,
        source: Source,
        versions: &[VersionRecord],
        old: &VersionRecord,
        old_state: Option<&ContainerState>,
    ) -> Result<Start> {
        let base = |v: &VersionRecord| -> String {
            v.image_id.clone().unwrap_or_else(|| v.spec.image.clone())
        };
        let facts = |img: String| async move {
            image_facts(self.env.docker, &img)
                .await?
                .ok_or(CoreError::ImageMissing(img))
        };
        match source {
            // The old container: its upper directory copied (overlay2), or committed once stopped.
            Source::Current => match old_state.map(|c| (c, copy::usable_upper(c))) {
                Some((c, Some(upper))) => {
                    copy::check_room(name, &upper, &upper).await?;
                    Ok(Start::CopyOld {
                        from: facts(c.image.clone()).await?,
                        upper,
                    })
                }
                Some((c, None)) => {
                    let (f, room) = tokio::join!(
                        facts(c.image.clone()),
                        files::check_room(self.env.docker, name, &c.id)
                    );
                    let f = f?;
                    room?;
                    Ok(Start::CommitOld {
                        flatten: files::must_flatten(f.layers),
                        from: f,
                    })
                }
                // Removed outside GPU Deck: there are no files left to carry.
                None => Ok(Start::Image(facts(base(old)).await?)),
            },
            Source::Version(k) => {
                let v = versions.iter().find(|v| v.version == k);
                let snap = v.and_then(|v| v.snapshot_id.clone());
                if let Some(parent) = snap.as_deref().and_then(copy::parent_of) {
                    let dir = copy::version_dir(self.env.data_dir.path(), name, k);
                    let gone = CoreError::FilesGone {
                        name: name.into(),
                        version: k,
                    };
                    if !dir.is_dir() {
                        return Err(gone);
                    }
                    if !archive::kept_here(&dir) && old_state.is_some_and(|c| c.upper_dir.is_none())
                    {
                        return Err(unusable_folder(
                            name,
                            old.version,
                            format!("version {k}'s files were kept as a copy of an overlay2 upper folder ({}), and this Docker engine does not keep containers on overlay2, so a rollback cannot write them back", dir.display()),
                        ));
                    }
                    let from = image_facts(self.env.docker, parent).await?.ok_or(gone)?;
                    if let Some(up) = old_state.and_then(|c| c.upper_dir.as_deref()) {
                        copy::check_room(name, &dir, std::path::Path::new(up)).await?;
                    }
                    return Ok(Start::Folder { from, dir });
                }
                let f = match snap {
                    Some(id) => image_facts(self.env.docker, &id).await?,
                    None => None,
                };
                match f {
                    Some(f) => {
                        files::check_layers(name, f.layers)?;
                        Ok(Start::Image(f))
                    }
                    None => {
                        // Kept by an earlier GPU Deck as a copied folder, not an image.
                        let legacy = self
                            .env
                            .data_dir
                            .path()
                            .join("snapshots")
                            .join(name)
                            .join(k.to_string());
                        if legacy.is_dir() {
                            return Err(unusable_folder(
                                name,
                                old.version,
                                format!("version {k}'s files were kept by an earlier GPU Deck as the folder {}, which a rollback cannot start from", legacy.display()),
                            ));
                        }
                        Err(CoreError::FilesGone {
                            name: name.into(),
                            version: k,
                        })
                    }
                }
            }
            Source::Clean(k) => {
                let v = versions.iter().find(|v| v.version == k).unwrap_or(old);
                Ok(Start::Image(facts(base(v)).await?))
            }
        }
    }

    /// The journaled replace (see the module doc).
    async fn new_version(
        &self,
        name: &str,
        mut spec: RsSpec,
        op: &str,
        source: Source,
    ) -> Result<RsInfo> {
        let adm = self.admitted(&mut spec)?;
        validate_spec(&spec, self.env.settings.allow_system_binds)?;
        let (cur, stopped, old) = self.current(name)?;
        let versions = self.db(|s| s.rs_versions(name))?;
        let next = versions.iter().map(|v| v.version).max().unwrap_or(cur) + 1;
        let old_state = self.env.docker.state(&container_name(name, cur)).await?;
        // Everything the new version needs is checked here, before the workload is stopped.
        let way = self.gpu_way(&spec).await?;
        let start = self
            .start_point(name, source, &versions, &old, old_state.as_ref())
            .await?;
        let start_flatten = matches!(start, Start::CommitOld { flatten: true, .. });
        let was_running = old_state
            .as_ref()
            .is_some_and(|c| c.status == "running" || c.status == "paused")
            && !stopped;
        let was_paused = old_state.as_ref().is_some_and(|c| c.status == "paused") && !stopped;
        let payload = json!({ "name": name, "old": cur, "new": next, "was_running": was_running, "was_paused": was_paused, "was_stopped": stopped });
        let id = self.db(|s| s.journal_begin(op, name, &payload))?;
        crash_point("begun");

        let result = async {
            let keep: Vec<u16> = old.ports.iter().map(|(_, h)| *h).collect();
            // The layer way, the old version running: when nothing in it acts on the stop signal
            // it is committed frozen and then killed, losing nothing (see `quiesce`); otherwise
            // it is stopped gracefully first and committed after. Freezing is undone on failure
            // (`undo`), so it overlaps the claim.
            let freeze = async {
                match &old_state {
                    Some(c) if was_running && !start_flatten && copy::usable_upper(c).is_none() => {
                        self.freeze_if_quiet(c).await
                    }
                    Some(c) => (false, c.status == "paused"),
                    None => (false, false),
                }
            };
            let (claimed, (quiet, paused)) =
                tokio::join!(self.claim(name, &spec, &keep, &adm.limit), freeze);
            let (gpus, ports) = claimed?;
            self.step(id, "claimed")?;
            if !quiet {
                if let Some(c) = &old_state {
                    if paused {
                        self.env.docker.unpause(&c.id).await?;
                    }
                    self.env
                        .docker
                        .stop(&c.id, self.env.settings.stop_timeout_s)
                        .await?;
                }
                self.step(id, "stopped_old")?;
            }
            // The archive way, decided on the old container's final files (stopped, or frozen).
            let carry = match (&start, &old_state) {
                (Start::CommitOld { flatten: false, from }, Some(c)) if archive::enabled() => {
                    let mut mounts: Vec<String> =
                        spec.binds.iter().map(|b| b.dest.clone()).collect();
                    mounts.extend(from.volumes.iter().cloned());
                    match archive::plan_for(self.env.docker, &c.id, &mounts).await? {
                        Ok(items) => Some(items),
                        Err(why) => {
                            tracing::info!("{name}-{cur}'s files go the layer way: {why}");
                            None
                        }
                    }
                }
                _ => None,
            };
            // The old version's files become its snapshot (kept for a rollback to it): committed
            // now, or (copied way) kept as a folder once the new version is recorded.
            let mut replaced: Option<(String, Option<u64>)> = None;
            let copy_from = match &start {
                Start::CopyOld { upper, .. } => Some(upper.clone()),
                Start::Folder { dir, .. } => Some(dir.clone()),
                _ => None,
            };
            if let Some(c) = &old_state {
                if copy::usable_upper(c).is_some() || carry.is_some() {
                    replaced = Some((copy::snapshot_id(&c.image), None));
                } else {
                    // Its size is read after the reply (`finish`).
                    replaced = Some(if start_flatten {
                        let (snap, bytes) =
                            files::flatten_snapshot(self.env.docker, &c.id, name, cur).await?;
                        (snap, Some(bytes))
                    } else if quiet {
                        // Frozen, nothing in it runs any code of its own again, so its files are
                        // final: its kill (the engine tears down its network and mounts) overlaps
                        // the commit, which reads the files through a mount of its own.
                        let (snap, killed) = tokio::join!(
                            files::commit_files(self.env.docker, &c.id, name, cur),
                            self.env.docker.kill(&c.id)
                        );
                        let snap = snap?;
                        self.step(id, "committed")?;
                        killed?;
                        self.step(id, "stopped_old")?;
                        (snap, None)
                    } else {
                        let snap = files::commit_files(self.env.docker, &c.id, name, cur).await?;
                        self.step(id, "committed")?;
                        (snap, None)
                    });
                }
            }
            let from = match start {
                Start::CommitOld { from, .. } if carry.is_some() => from,
                Start::CommitOld { .. } => {
                    let snap = replaced
                        .as_ref()
                        .map(|(s, _)| s.clone())
                        .unwrap_or_default();
                    image_facts(self.env.docker, &snap)
                        .await?
                        .ok_or(CoreError::ImageMissing(snap))?
                }
                Start::CopyOld { from, .. } | Start::Folder { from, .. } | Start::Image(from) => {
                    from
                }
            };
            let rec = VersionRecord {
                name: name.into(),
                version: next,
                changes: describe_change(&old.spec, &spec),
                spec,
                gpus,
                ports,
                // The cost of a flattening shows as this version's files: the whole file system.
                op: if start_flatten {
                    format!("{op} (flattened)")
                } else {
                    op.into()
                },
                created_at: now_s(),
                image_id: old.image_id.clone(),
                ..Default::default()
            };
            let create = self.create(&rec, &from, &way, adm.pin);
            let (new_id, killed) = match (&carry, &old_state) {
                // Frozen: killed while the new container is made (its files are final).
                (Some(_), Some(c)) if quiet => {
                    let (made, killed) = tokio::join!(create, self.env.docker.kill(&c.id));
                    (made?, Some(killed))
                }
                _ => (create.await?, None),
            };
            self.db(|s| s.journal_set(id, "new_id", &new_id))?;
            if let Some(killed) = killed {
                killed?;
                self.step(id, "stopped_old")?;
            }
            self.step(id, "created")?;
            let mut new_id = new_id;
            if let (Some(items), Some(c)) = (&carry, &old_state) {
                match archive::carry(self.env.docker, &c.id, &new_id, items).await {
                    Ok(()) => self.step(id, "copied")?,
                    Err(e) => {
                        // The layer way after all (the engine could not stream a path: a bind
                        // whose host folder is gone, say): the old container, stopped now, is
                        // committed and the new version made again from the commit.
                        tracing::warn!("{name}-{cur}'s files could not be streamed ({e}); committing them instead");
                        self.env.docker.remove(&new_id).await?;
                        let snap = files::commit_files(self.env.docker, &c.id, name, cur).await?;
                        self.step(id, "committed")?;
                        replaced = Some((snap.clone(), None));
                        let from = image_facts(self.env.docker, &snap)
                            .await?
                            .ok_or(CoreError::ImageMissing(snap))?;
                        new_id = self.create(&rec, &from, &way, adm.pin).await?;
                        self.db(|s| s.journal_set(id, "new_id", &new_id))?;
                    }
                }
            } else if let Some(src) = copy_from.as_ref().filter(|d| archive::kept_here(d)) {
                archive::put_folder(self.env.docker, src, &new_id).await?;
                self.step(id, "copied")?;
            } else if let Some(src) = &copy_from {
                let upper = self
                    .env
                    .docker
                    .state(&new_id)
                    .await?
                    .and_then(|c| c.upper_dir)
                    .ok_or_else(|| CoreError::Docker(format!(
                        "the engine gave {name}-{next} no overlay2 upper directory to copy the files into; set GPUDECK_CARRY=layers for this engine"
                    )))?;
                copy::copy_tree(src, std::path::Path::new(&upper)).await?;
                self.step(id, "copied")?;
            }
            self.start_container(&new_id, true).await?;
            self.step(id, "started")?;
            self.db(|s| {
                s.rs_add_version(
                    &rec,
                    replaced.as_ref().map(|(snap, b)| (cur, snap.as_str(), *b)),
                )
            })?;
            self.step(id, "recorded")?;
            Ok::<_, CoreError>(())
        }
        .await;
        match result {
            Ok(()) => {
                let p = Pending {
                    journal: id,
                    name: name.into(),
                    old: cur,
                };
                if self.defer {
                    *self.pending.lock().unwrap_or_else(|e| e.into_inner()) = Some(p);
                } else {
                    self.settle(p).await?;
                }
                self.info(name).await
            }
            Err(e) => {
                crate::fail_point("undo")?;
                self.undo(name, &payload).await?;
                self.db(|s| s.journal_finish(id, "undone"))?;
                Err(e)
            }
        }
    }

    /// Freezes the old container (unless the user paused it already) and says whether nothing in
    /// it acts on its stop signal; also whether it is paused now. Any doubt: not quiet.
    async fn freeze_if_quiet(&self, c: &ContainerState) -> (bool, bool) {
        let Some(pid) = c.pid else {
            return (false, c.status == "paused");
        };
        if c.status == "running" && self.env.docker.pause(&c.id).await.is_err() {
            // No freezer (some rootless setups): the graceful stop.
            return (false, false);
        }
        let (cid, sig) = (c.id.clone(), c.stop_signal.clone());
        let quiet = tokio::task::spawn_blocking(move || {
            quiesce::nothing_acts_on_stop(&cid, pid, sig.as_deref())
        })
        .await
        .unwrap_or(false);
        (quiet, true)
    }

    /// The new version runs: the old version's files are kept (copied way: moved to its folder,
    /// shared with the version before), then the old container goes. Safe to repeat.
    async fn finish(&self, id: i64, name: &str, old: u32) -> Result<()> {
        let versions = self.db(|s| s.rs_versions(name))?;
        let snap = versions
            .iter()
            .find(|v| v.version == old)
            .and_then(|v| v.snapshot_id.clone());
        if let Some(snap) = snap.filter(|s| copy::parent_of(s).is_some()) {
            let c = self.env.docker.state(&container_name(name, old)).await?;
            let prev = self.folder_before(name, &versions, old, &snap);
            let data = self.env.data_dir.path();
            let saved = match c {
                // No upper directory to move (the archive way): its changed paths are read
                // again into its folder.
                Some(c) if copy::upper_of(&c).is_none() => {
                    archive::save(self.env.docker, &c.id, data, name, old, prev).await
                }
                c => {
                    let upper = c.and_then(|c| c.upper_dir).map(PathBuf::from);
                    copy::save(data, name, old, upper, prev).await
                }
            };
            match saved {
                Ok(bytes) => self.db(|s| s.rs_set_snapshot_bytes(name, old, bytes))?,
                // Its container was removed outside GPU Deck before they were kept.
                Err(CoreError::FilesGone { .. }) => {
                    tracing::warn!("the files of {name}-{old} were gone before they could be kept");
                    self.db(|s| s.rs_mark_pruned(name, old))?;
                }
                Err(e) => return Err(e),
            }
            self.step(id, "saved")?;
            return self.remove_container(&container_name(name, old)).await;
        }
        // The old container goes first: a snapshot's size needs only its image.
        self.remove_container(&container_name(name, old)).await?;
        if let Some(v) = versions
            .iter()
            .find(|v| v.version == old && v.snapshot_bytes.is_none())
        {
            // A snapshot image committed in a hurry: its size, for the timeline.
            if let Some(snap) = v.snapshot_id.as_deref() {
                match files::top_layer_bytes(self.env.docker, snap).await {
                    Ok(bytes) => self.db(|s| s.rs_set_snapshot_bytes(name, old, bytes))?,
                    Err(e) => tracing::warn!("the size of {name}-{old}'s files: {e}"),
                }
            }
        }
        Ok(())
    }

    /// The folder of the newest kept version before `k` whose files sit on the same image.
    fn folder_before(
        &self,
        name: &str,
        versions: &[VersionRecord],
        k: u32,
        snap: &str,
    ) -> Option<PathBuf> {
        versions
            .iter()
            .filter(|v| v.version < k && v.snapshot_id.as_deref() == Some(snap))
            .map(|v| copy::version_dir(self.env.data_dir.path(), name, v.version))
            .rfind(|d| d.is_dir())
    }

    /// Back to the old version as it was: the new container and the snapshot made for it go,
    /// the old one's claims come back, and it runs again if it ran.
    async fn undo(&self, name: &str, p: &serde_json::Value) -> Result<()> {
        let old = p["old"].as_u64().unwrap_or(0) as u32;
        let new = p["new"].as_u64().unwrap_or(0) as u32;
        self.remove_new(name, new, p).await?;
        files::remove_snapshot(self.env.docker, name, old).await?;
        let rec = self
            .db(|s| s.rs_versions(name))?
            .into_iter()
            .find(|v| v.version == old);
        let Some(rec) = rec else { return Ok(()) };
        if p["was_stopped"].as_bool() == Some(true) {
            self.db(|s| s.release(name))?;
            return Ok(());
        }
        let ports: Vec<u16> = rec.ports.iter().map(|(_, h)| *h).collect();
        self.db(|s| s.restore_claims(name, &rec.gpus, &ports))?;
        if p["was_running"].as_bool() == Some(true) {
            if let Some(c) = self.env.docker.state(&container_name(name, old)).await? {
                // Frozen for its commit, or stopped (or killed) for the new version; paused
                // again if the user had paused it.
                let was_paused = p["was_paused"].as_bool() == Some(true);
                if c.status == "paused" && !was_paused {
                    self.env.docker.unpause(&c.id).await?;
                } else if c.status != "running" && c.status != "paused" {
                    self.start_container(&c.id, false).await?;
                    if was_paused {
                        self.env.docker.pause(&c.id).await?;
                    }
                }
            }
        }
        Ok(())
    }

    /// Finishes or undoes every operation a crash left open. Returns how many it settled.
    pub async fn recover(&self) -> Result<usize> {
        let open = self.db(|s| s.journal_open())?;
        self.recover_rows(open).await
    }

    /// `recover`, of the replicaSets `take` names only: while the service runs, those whose
    /// operation ended without settling its journal row (its undo failed too), whose locks the
    /// caller holds, so that no operation of theirs is under way.
    pub async fn recover_where(&self, take: &(dyn Fn(&str) -> bool + Sync)) -> Result<usize> {
        let open: Vec<_> = self
            .db(|s| s.journal_open_ours_too())?
            .into_iter()
            .filter(|o| take(&o.subject))
            .collect();
        self.recover_rows(open).await
    }

    async fn recover_rows(&self, open: Vec<crate::store::OpenOperation>) -> Result<usize> {
        // Volume operations settle themselves (`Volumes::recover`).
        let open: Vec<_> = open
            .into_iter()
            .filter(|o| !o.kind.starts_with("vol-"))
            .collect();
        for op in &open {
            let name = op.subject.as_str();
            let new = op.payload["new"].as_u64().unwrap_or(0) as u32;
            let recorded = self
                .db(|s| s.rs_current(name))?
                .is_some_and(|(c, _)| c == new);
            if recorded {
                if op.kind != "run" {
                    let old = op.payload["old"].as_u64().unwrap_or(0) as u32;
                    self.finish(op.id, name, old).await?;
                }
                self.db(|s| s.journal_finish(op.id, "done after restart"))?;
            } else {
                if op.kind == "run" {
                    self.remove_new(name, 1, &op.payload).await?;
                    self.undo_run(name).await?;
                } else {
                    self.undo(name, &op.payload).await?;
                }
                self.db(|s| s.journal_finish(op.id, "undone after restart"))?;
            }
        }
        Ok(open.len())
    }

    /// Keeps the files of only the newest `keep` replaced versions (the retention setting, or
    /// `rs prune`); older ones become configuration-only rollbacks. A version's layer is freed
    /// once nothing newer builds on it. Returns the versions pruned.
    pub async fn prune(&self, name: &str, keep: u32) -> Result<Vec<u32>> {
        self.current(name)?;
        let mut kept: Vec<VersionRecord> = self
            .db(|s| s.rs_versions(name))?
            .into_iter()
            .filter(|v| v.snapshot_id.is_some())
            .collect();
        kept.sort_by_key(|v| std::cmp::Reverse(v.version));
        let data = self.env.data_dir.path();
        // Images that kept folders sit on stay.
        let parents: HashSet<String> = kept
            .iter()
            .take(keep as usize)
            .filter_map(|v| v.snapshot_id.as_deref().and_then(copy::parent_of))
            .map(String::from)
            .collect();
        let mut pruned = Vec::new();
        for v in kept.into_iter().skip(keep as usize) {
            let snap = v.snapshot_id.clone().unwrap_or_default();
            let gone = if copy::parent_of(&snap).is_some() {
                copy::remove(data, name, v.version)?;
                true
            } else if parents.contains(&snap) {
                false
            } else {
                // The snapshot the current container was created from stays (a container uses it).
                files::remove_snapshot(self.env.docker, name, v.version).await?
            };
            if gone {
                self.db(|s| s.rs_mark_pruned(name, v.version))?;
                pruned.push(v.version);
            }
        }
        if !pruned.is_empty() {
            // A folder's files that were shared with a pruned one are its own now.
            let versions = self.db(|s| s.rs_versions(name))?;
            for v in &versions {
                let Some(snap) = v
                    .snapshot_id
                    .as_deref()
                    .filter(|s| copy::parent_of(s).is_some())
                else {
                    continue;
                };
                let dir = copy::version_dir(data, name, v.version);
                if dir.is_dir() {
                    let prev = self.folder_before(name, &versions, v.version, snap);
                    let bytes = copy::unique_bytes(&dir, prev.as_deref())?;
                    self.db(|s| s.rs_set_snapshot_bytes(name, v.version, bytes))?;
                }
            }
        }
        Ok(pruned)
    }

    /// Bytes the version files of every replicaSet take (each version's layer counted once).
    pub fn files_bytes(&self) -> Result<u64> {
        self.db(|s| s.rs_snapshot_bytes_total())
    }

    async fn apply_retention(&self, name: &str) -> Result<()> {
        if let Some(keep) = self.env.settings.keep_versions {
            self.prune(name, keep).await?;
        }
        Ok(())
    }

    /// Removes every container of the replicaSet (also those left from crashes or removed outside
    /// GPU Deck), its version snapshots and volumes, claims and records.
    pub async fn delete(&self, name: &str) -> Result<()> {
        validate_name("replicaSet", name)?;
        let known = self.db(|s| s.rs_current(name))?.is_some();
        let containers = self.env.docker.containers_of(name).await?;
        if !known && containers.is_empty() {
            return Err(CoreError::RsNotFound(name.into()));
        }
        for id in containers {
            self.env.docker.remove(&id).await?;
        }
        Pins::of(self.env.data_dir).release_rs(name);
        // Newest first: each image goes as its tag goes (nothing builds on it any more).
        let mut versions: Vec<u32> = self
            .db(|s| s.rs_versions(name))?
            .iter()
            .map(|v| v.version)
            .collect();
        versions.sort_unstable_by_key(|v| std::cmp::Reverse(*v));
        for v in versions {
            files::remove_snapshot(self.env.docker, name, v).await?;
        }
        files::remove_state_volumes(self.env.docker, name).await?;
        copy::remove_all(self.env.data_dir.path(), name)?;
        // Version files copied by GPU Deck before they became snapshot images.
        let legacy = self.env.data_dir.path().join("snapshots").join(name);
        if legacy.exists() {
            tokio::fs::remove_dir_all(&legacy)
                .await
                .map_err(|e| CoreError::io(&legacy, e))?;
        }
        self.db(|s| s.rs_delete(name))
    }

    pub async fn exec(&self, name: &str, cmd: &[String], timeout: Duration) -> Result<ExecOutput> {
        let id = self.exec_target(name, cmd).await?;
        self.env.docker.exec(&id, cmd, timeout).await
    }

    /// `exec`, streamed as it prints (`DockerAdapter::exec_stream`): nothing is kept.
    pub async fn exec_stream(
        &self,
        name: &str,
        cmd: &[String],
        timeout: Duration,
    ) -> Result<tokio::sync::mpsc::Receiver<crate::docker::ExecFrame>> {
        let id = self.exec_target(name, cmd).await?;
        self.env.docker.exec_stream(&id, cmd, timeout).await
    }

    /// The running container a command goes into.
    async fn exec_target(&self, name: &str, cmd: &[String]) -> Result<String> {
        if cmd.is_empty() {
            return Err(CoreError::InvalidInput {
                what: "command".into(),
                reason: "empty".into(),
            });
        }
        let (cur, stopped, _) = self.current(name)?;
        match self.status_of(name, cur, stopped).await? {
            (RsStatus::Running, Some(c)) => Ok(c.id),
            (other, _) => Err(self.state_error(name, other, "exec needs it running")),
        }
    }

    /// Commits the current version to `image[:tag]`.
    pub async fn commit(&self, name: &str, image: &str, message: &str) -> Result<String> {
        let (cur, _, _) = self.current(name)?;
        let (repo, tag) = split_image(image)?;
        let c = self
            .env
            .docker
            .state(&container_name(name, cur))
            .await?
            .ok_or_else(|| {
                self.state_error(name, RsStatus::Missing, "there is no container to commit")
            })?;
        let id = self.env.docker.commit(&c.id, &repo, &tag, message).await?;
        let image = format!("{repo}:{tag}");
        self.db(|s| s.rs_add_commit(name, cur, &image, &id))?;
        Ok(id)
    }

    /// The container id of the current version, for logs.
    pub async fn container_id(&self, name: &str) -> Result<String> {
        let (cur, _, _) = self.current(name)?;
        self.env
            .docker
            .state(&container_name(name, cur))
            .await?
            .map(|c| c.id)
            .ok_or_else(|| {
                self.state_error(
                    name,
                    RsStatus::Missing,
                    "its container was removed outside GPU Deck",
                )
            })
    }

    /// Every GPU held by a replicaSet right now, as uuid → name.
    pub fn gpu_holders(&self) -> Result<HashSet<(String, String)>> {
        Ok(self.db(|s| s.gpu_claims())?.into_iter().collect())
    }
}

/// `repo[:tag]` (default tag `latest`), checked.
/// What the rules in force now change in a spec a container was made from, as a sentence's
/// start; `None` when they change nothing it runs with.
fn admitted_differs(made: &RsSpec, now: &RsSpec) -> Option<String> {
    // A right granted since is not taken up by a continue (it runs as it was made); one taken
    // away is never kept.
    match (&made.run_as, &now.run_as) {
        (None, Some(r)) => {
            return Some(format!(
                "its owner may no longer run containers as root (it would run as {})",
                r.user()
            ))
        }
        (Some(a), Some(b)) if a != b => {
            return Some("the user or groups its owner's containers run as changed".to_string())
        }
        _ => {}
    }
    if (made.memory_bytes, made.cpus_milli) != (now.memory_bytes, now.cpus_milli) {
        return Some("the memory or CPU limit of its owner's containers changed".to_string());
    }
    for (a, b) in made.binds.iter().zip(&now.binds) {
        if a.src != b.src {
            return Some(format!(
                "its bind {} now leads to {} (it was made with {})",
                a.dest, b.src, a.src
            ));
        }
    }
    None
}

pub fn split_image(image: &str) -> Result<(String, String)> {
    let bad = || {
        CoreError::InvalidInput { what: "image".into(), reason: format!("\"{image}\" is not REPOSITORY[:TAG] (lowercase repository, tag of letters, digits, _ . -)") }
    };
    let (repo, tag) = match image.rsplit_once(':') {
        Some((r, t)) if !t.contains('/') => (r, t),
        _ => (image, "latest"),
    };
    // A ':' in the repository only as a registry's port: `host:5000/path`.
    let port_ok = match repo.split_once('/') {
        Some((host, path)) => match host.split_once(':') {
            Some((h, port)) => {
                !h.is_empty()
                    && !port.is_empty()
                    && port.chars().all(|c| c.is_ascii_digit())
                    && !path.contains(':')
            }
            None => !path.contains(':'),
        },
        None => !repo.contains(':'),
    };
    let repo_ok = !repo.is_empty()
        && port_ok
        && !repo.starts_with(['-', '.', '_', '/'])
        && repo
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-/:".contains(c));
    let tag_ok = !tag.is_empty()
        && tag.len() <= 128
        && tag
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
    if repo_ok && tag_ok {
        Ok((repo.into(), tag.into()))
    } else {
        Err(bad())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_refs() {
        assert_eq!(split_image("foo").unwrap(), ("foo".into(), "latest".into()));
        assert_eq!(
            split_image("lab/foo:v2").unwrap(),
            ("lab/foo".into(), "v2".into())
        );
        assert_eq!(
            split_image("127.0.0.1:5000/foo").unwrap(),
            ("127.0.0.1:5000/foo".into(), "latest".into())
        );
        assert_eq!(
            split_image("localhost:5000/team/img:v1").unwrap(),
            ("localhost:5000/team/img".into(), "v1".into())
        );
        for bad in [
            "",
            "Foo:1",
            "foo:",
            "foo:bad tag",
            "foo:a/b",
            ":latest",
            "a/b:c:d",
            "-foo",
            "host:x/a",
        ] {
            assert!(split_image(bad).is_err(), "{bad} must be refused");
        }
    }
}
