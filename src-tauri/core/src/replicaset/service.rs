//! The replicaSet operations. The Docker engine is the source of truth for what runs; SQLite
//! keeps every version's spec, the GPU/port claims and the journal of multi-step operations.
//!
//! A new version (patch, restart, rollback) is made in journaled steps, and the old container is
//! removed only once the new one runs with the data carried over:
//!   begun → claimed → created → stopped_old → snapshotted → copied → started → recorded → done
//! `recover` (run at every start of the app and the CLI) finishes an operation whose new container
//! was recorded, and undoes any other: the new container goes, the old one's claims come back and
//! it runs again if it ran. The old container's files are never touched, so nothing is lost.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use serde::Serialize;
use serde_json::json;
use ts_rs::TS;

use super::spec::{describe_change, validate_name, validate_spec, RsSpec};
use crate::alloc::{host_listening_ports, GpuCandidate};
use crate::docker::{ContainerState, CreateArgs, DockerAdapter, ExecOutput};
use crate::paths::DataDir;
use crate::settings::Settings;
use crate::store::{Store, VersionRecord};
use crate::{CoreError, Result};

/// What an operation runs against.
pub struct Env<'a> {
    pub docker: &'a DockerAdapter,
    pub store: &'a Mutex<Store>,
    pub settings: &'a Settings,
    pub data_dir: &'a DataDir,
    /// The GPUs as last sampled (the CLI samples once; the app uses its sampler).
    pub gpus: Vec<GpuCandidate>,
}

#[derive(Debug, Clone, Copy, Serialize, TS, PartialEq, Eq)]
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

#[derive(Debug, Clone, Serialize, TS)]
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

fn now_s() -> i64 {
    crate::gpu::now_ms() as i64 / 1000
}

pub fn container_name(name: &str, version: u32) -> String {
    format!("{name}-{version}")
}

use crate::crash_point;

pub struct ReplicaSets<'a> {
    env: Env<'a>,
}

impl<'a> ReplicaSets<'a> {
    pub fn new(env: Env<'a>) -> Self {
        ReplicaSets { env }
    }

    fn db<T>(&self, f: impl FnOnce(&mut Store) -> Result<T>) -> Result<T> {
        let mut g = self.env.store.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut g)
    }

    fn step(&self, id: i64, step: &str) -> Result<()> {
        self.db(|s| s.journal_step(id, step))?;
        crash_point(step);
        Ok(())
    }

    fn snapshot_dir(&self, name: &str, version: u32) -> PathBuf {
        self.env
            .data_dir
            .path()
            .join("snapshots")
            .join(name)
            .join(version.to_string())
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
        let status = match (&st, stopped) {
            (None, _) => RsStatus::Missing,
            (Some(_), true) => RsStatus::Stopped,
            (Some(c), false) => match c.status.as_str() {
                "running" | "restarting" => RsStatus::Running,
                "paused" => RsStatus::Paused,
                "created" => RsStatus::Created,
                _ => RsStatus::Exited,
            },
        };
        Ok((status, st))
    }

    pub async fn info(&self, name: &str) -> Result<RsInfo> {
        let (cur, stopped, rec) = self.current(name)?;
        let (status, _) = self.status_of(name, cur, stopped).await?;
        let versions = self.db(|s| s.rs_versions(name))?.len() as u32;
        Ok(RsInfo {
            name: name.into(),
            version: cur,
            container: container_name(name, cur),
            status,
            gpus: if status == RsStatus::Stopped {
                vec![]
            } else {
                rec.gpus.clone()
            },
            ports: if status == RsStatus::Stopped {
                vec![]
            } else {
                rec.ports.clone()
            },
            spec: rec.spec,
            created_at: rec.created_at,
            versions,
        })
    }

    pub async fn list(&self) -> Result<Vec<RsInfo>> {
        let mut out = Vec::new();
        for n in self.db(|s| s.rs_names())? {
            out.push(self.info(&n).await?);
        }
        Ok(out)
    }

    pub fn history(&self, name: &str) -> Result<Vec<VersionRecord>> {
        self.current(name)?;
        self.db(|s| s.rs_versions(name))
    }

    /// Creates version 1 and starts it.
    pub async fn run(&self, name: &str, spec: RsSpec) -> Result<RsInfo> {
        validate_name("replicaSet", name)?;
        validate_spec(&spec, self.env.settings.allow_system_binds)?;
        if self.db(|s| s.rs_current(name))?.is_some()
            || !self.env.docker.containers_of(name).await?.is_empty()
        {
            return Err(CoreError::RsExists(name.into()));
        }
        if !self.env.docker.image_exists(&spec.image).await? {
            return Err(CoreError::ImageMissing(spec.image.clone()));
        }
        let (gpus, ports) = self.claim(name, &spec, &[]).await?;
        let rec = VersionRecord {
            name: name.into(),
            version: 1,
            spec,
            gpus,
            ports,
            op: "run".into(),
            changes: vec![],
            created_at: now_s(),
        };
        let made = async {
            let id = self.create(&rec).await?;
            self.env.docker.start(&id).await?;
            Ok::<_, CoreError>(id)
        }
        .await;
        match made {
            Ok(_) => {
                self.db(|s| s.rs_add_version(&rec))?;
                self.info(name).await
            }
            Err(e) => {
                let _ = self.env.docker.remove(&container_name(name, 1)).await;
                self.db(|s| s.release(name))?;
                Err(e)
            }
        }
    }

    async fn create(&self, rec: &VersionRecord) -> Result<String> {
        let cname = container_name(&rec.name, rec.version);
        self.env
            .docker
            .create(&CreateArgs {
                container_name: &cname,
                replicaset: &rec.name,
                version: rec.version,
                spec: &rec.spec,
                gpus: &rec.gpus,
                ports: &rec.ports,
            })
            .await
    }

    /// Claims GPUs and host ports for `name`'s next container (keeping `keep` host ports when free).
    async fn claim(
        &self,
        name: &str,
        spec: &RsSpec,
        keep: &[u16],
    ) -> Result<(Vec<String>, Vec<(u16, u16)>)> {
        let dir = self.env.docker.directory().await?;
        let held = dir.held_outside(name, &self.env.gpus);
        let gpus = self.db(|s| s.claim_gpus(name, &self.env.gpus, &held, spec.gpus))?;
        match self.claim_ports_only(name, spec, keep).await {
            Ok(ports) => Ok((gpus, ports)),
            Err(e) => {
                self.db(|s| s.release(name))?;
                Err(e)
            }
        }
    }

    /// Stops the container and releases its GPUs and ports (once: stopping twice releases nothing).
    pub async fn stop(&self, name: &str) -> Result<RsInfo> {
        let (cur, stopped, _) = self.current(name)?;
        if !stopped {
            if let Some(c) = self.env.docker.state(&container_name(name, cur)).await? {
                if c.status == "paused" {
                    self.env.docker.unpause(&c.id).await?;
                }
                self.env.docker.stop(&c.id).await?;
            }
            self.db(|s| {
                s.release(name)?;
                s.rs_set_stopped(name, true)
            })?;
        }
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
                let dir = self.env.docker.directory().await?;
                let held = dir.held_outside(name, &self.env.gpus);
                if let Err(taken) = self.db(|s| s.claim_exact_gpus(name, &rec.gpus, &held))? {
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
                self.env.docker.start(&c.id).await?;
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
        self.new_version(name, rec.spec.clone(), "restart", None)
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
        self.new_version(name, spec, "patch", None).await
    }

    /// A new version with version `k`'s spec and k's files as they were when k was replaced.
    pub async fn rollback(&self, name: &str, k: u32) -> Result<RsInfo> {
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
        self.new_version(name, target.spec.clone(), &format!("rollback {k}"), Some(k))
            .await
    }

    /// The journaled replace (see the module doc).
    async fn new_version(
        &self,
        name: &str,
        spec: RsSpec,
        op: &str,
        files_of: Option<u32>,
    ) -> Result<RsInfo> {
        let (cur, stopped, old) = self.current(name)?;
        if !self.env.docker.image_exists(&spec.image).await? {
            return Err(CoreError::ImageMissing(spec.image.clone()));
        }
        let next = self
            .db(|s| s.rs_versions(name))?
            .iter()
            .map(|v| v.version)
            .max()
            .unwrap_or(cur)
            + 1;
        let old_state = self.env.docker.state(&container_name(name, cur)).await?;
        let was_running = old_state
            .as_ref()
            .is_some_and(|c| c.status == "running" || c.status == "paused")
            && !stopped;
        let source = files_of.unwrap_or(cur);
        let payload = json!({ "name": name, "old": cur, "new": next, "was_running": was_running, "was_stopped": stopped, "source": source });
        let id = self.db(|s| s.journal_begin(op, name, &payload))?;
        crash_point("begun");

        let result = async {
            let keep: Vec<u16> = old.ports.iter().map(|(_, h)| *h).collect();
            let (gpus, ports) = self.claim(name, &spec, &keep).await?;
            self.step(id, "claimed")?;
            let rec = VersionRecord {
                name: name.into(),
                version: next,
                changes: describe_change(&old.spec, &spec),
                spec,
                gpus,
                ports,
                op: op.into(),
                created_at: now_s(),
            };
            let new_id = self.create(&rec).await?;
            self.step(id, "created")?;
            if let Some(c) = &old_state {
                if c.status == "paused" {
                    self.env.docker.unpause(&c.id).await?;
                }
                self.env.docker.stop(&c.id).await?;
            }
            self.step(id, "stopped_old")?;
            // The old version's files, kept for a later rollback to it.
            if let Some(upper) = old_state.as_ref().and_then(|c| c.upper_dir.as_deref()) {
                copy_tree(Path::new(upper), &self.snapshot_dir(name, cur)).await?;
            }
            self.step(id, "snapshotted")?;
            let new_state = self.env.docker.state(&new_id).await?;
            let into = new_state.and_then(|c| c.upper_dir).ok_or_else(|| CoreError::Docker("the new container has no overlay2 upper layer (GPU Deck carries files over on the overlay2 storage driver)".into()))?;
            let from = self.snapshot_dir(name, source);
            if from.exists() {
                copy_tree(&from, Path::new(&into)).await?;
            }
            self.step(id, "copied")?;
            self.env.docker.start(&new_id).await?;
            self.step(id, "started")?;
            self.db(|s| s.rs_add_version(&rec))?;
            self.step(id, "recorded")?;
            Ok::<_, CoreError>(())
        }
        .await;
        match result {
            Ok(()) => {
                self.finish(name, cur).await?;
                self.db(|s| s.journal_finish(id, "done"))?;
                self.info(name).await
            }
            Err(e) => {
                self.undo(name, &payload).await?;
                self.db(|s| s.journal_finish(id, "undone"))?;
                Err(e)
            }
        }
    }

    /// The new version runs: the old container goes.
    async fn finish(&self, name: &str, old: u32) -> Result<()> {
        self.env.docker.remove(&container_name(name, old)).await
    }

    /// Back to the old version as it was: the new container goes, the old one's claims come back,
    /// and it runs again if it ran.
    async fn undo(&self, name: &str, p: &serde_json::Value) -> Result<()> {
        let old = p["old"].as_u64().unwrap_or(0) as u32;
        let new = p["new"].as_u64().unwrap_or(0) as u32;
        self.env.docker.remove(&container_name(name, new)).await?;
        let _ = std::fs::remove_dir_all(self.snapshot_dir(name, old));
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
                if c.status != "running" {
                    self.env.docker.start(&c.id).await?;
                }
            }
        }
        Ok(())
    }

    /// Finishes or undoes every operation a crash left open. Returns how many it settled.
    pub async fn recover(&self) -> Result<usize> {
        // Volume operations settle themselves (`Volumes::recover`).
        let open: Vec<_> = self
            .db(|s| s.journal_open())?
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
                self.finish(name, op.payload["old"].as_u64().unwrap_or(0) as u32)
                    .await?;
                self.db(|s| s.journal_finish(op.id, "done after restart"))?;
            } else {
                self.undo(name, &op.payload).await?;
                self.db(|s| s.journal_finish(op.id, "undone after restart"))?;
            }
        }
        Ok(open.len())
    }

    /// Removes every container of the replicaSet (also those left from crashes or removed outside
    /// GPU Deck), its snapshots, claims and records.
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
        let snaps = self.env.data_dir.path().join("snapshots").join(name);
        if snaps.exists() {
            tokio::fs::remove_dir_all(&snaps)
                .await
                .map_err(|e| CoreError::io(&snaps, e))?;
        }
        self.db(|s| s.rs_delete(name))
    }

    pub async fn exec(&self, name: &str, cmd: &[String], timeout: Duration) -> Result<ExecOutput> {
        if cmd.is_empty() {
            return Err(CoreError::InvalidInput {
                what: "command".into(),
                reason: "empty".into(),
            });
        }
        let (cur, stopped, _) = self.current(name)?;
        match self.status_of(name, cur, stopped).await? {
            (RsStatus::Running, Some(c)) => self.env.docker.exec(&c.id, cmd, timeout).await,
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
        self.env.docker.commit(&c.id, &repo, &tag, message).await
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
pub fn split_image(image: &str) -> Result<(String, String)> {
    let bad = || {
        CoreError::InvalidInput { what: "image".into(), reason: format!("\"{image}\" is not REPOSITORY[:TAG] (lowercase repository, tag of letters, digits, _ . -)") }
    };
    let (repo, tag) = match image.rsplit_once(':') {
        Some((r, t)) if !t.contains('/') => (r, t),
        _ => (image, "latest"),
    };
    let repo_ok = !repo.is_empty()
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

/// Copies a directory tree with everything overlay needs kept: owners, modes, times, symlinks,
/// hard links, xattrs (opaque directories) and device nodes (whiteouts). Cost: the bytes in it.
async fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    tokio::fs::create_dir_all(to)
        .await
        .map_err(|e| CoreError::io(to, e))?;
    let out = tokio::process::Command::new("cp")
        .arg("-a")
        .arg(format!("{}/.", from.display()))
        .arg(to)
        .output()
        .await
        .map_err(|e| CoreError::io(from, e))?;
    if !out.status.success() {
        return Err(CoreError::Io {
            path: from.display().to_string(),
            reason: format!(
                "copying the container's files failed: {} (GPU Deck needs to read Docker's storage: run it as root)",
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        });
    }
    Ok(())
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
        for bad in ["", "Foo:1", "foo:", "foo:bad tag", "foo:a/b"] {
            assert!(split_image(bad).is_err() || bad == "foo:a/b", "{bad}");
        }
    }
}
