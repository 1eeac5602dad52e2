//! Volumes: named, versioned (`<name>-<N>`), with a size the kernel enforces.
//!
//! Each version lives under the volumes folder (`<data dir>/volumes`), with one of two kinds of
//! limit, chosen when the version is made:
//! - "xfs-quota", when that folder is on XFS mounted with `prjquota`: a folder `<name>-<N>/` with
//!   an XFS project quota of the size (`xfs_quota project -s`, `limit -p bhard=`), given to
//!   Docker's `local` driver as `type=none,o=bind,device=DIR`. Native: nothing to attach, and it
//!   survives reboots by itself.
//! - "image-file" otherwise: an ext4 file system in a sparse file (`<name>-<N>.img`), attached to
//!   a loop device and given to the `local` driver as `type=ext4,device=/run/gpudeck/loop/<name>-<N>`,
//!   a link to the loop device that GPU Deck keeps pointing at this file. Docker is never handed a
//!   loop number, which a reboot can give to another volume's file: after a reboot the link is gone
//!   (/run is cleared), so a container starts only once `restore` (every start of the app and of
//!   every CLI command) has attached the file again and pointed the link at it.
//!
//! Either way writing past the size fails with ENOSPC inside the container, and either needs root
//! (xfs_quota, or losetup and mount).
//!
//! A resize makes version N+1 of the new size and copies everything (owners, modes, xattrs,
//! symlinks, hard links, sparse files) before N is retired, in journaled steps:
//!   begun → users_stopped → created → copied → volume_created → recorded → moved → retired
//! `recover` undoes an operation that was not recorded and finishes one that was.

mod size;
pub mod store;

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::Serialize;
use serde_json::json;
use ts_rs::TS;

pub use size::{human, parse_size, MIN_SIZE};

use crate::docker::{DockerAdapter, LocalSource};
use crate::paths::DataDir;
use crate::replicaset::{validate_name, Bind, ReplicaSets};
use crate::store::{Store, VolumeVersion};
use crate::{crash_point, CoreError, Result};

pub const IMAGE_FILE: &str = "image-file";
pub const XFS_QUOTA: &str = "xfs-quota";
/// XFS project IDs GPU Deck hands out start above this (clear of hand-made /etc/projects ones).
const PROJECT_ID_FLOOR: i64 = 4_100_000;

/// Where one version's bytes are, as the host sees them.
enum Backing {
    /// A loop device with an ext4 file system (image-file).
    Loop(String),
    /// A folder with a project quota (xfs-quota).
    Dir(PathBuf),
}

impl Backing {
    fn source(&self) -> LocalSource<'_> {
        match self {
            Backing::Loop(dev) => LocalSource::Ext4Device(dev),
            Backing::Dir(dir) => LocalSource::BindDir(dir.to_str().unwrap_or_default()),
        }
    }
}

#[derive(Debug, Clone, Serialize, serde::Deserialize, TS, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VolumeInfo {
    pub name: String,
    pub version: u32,
    /// The Docker volume to bind: `<name>-<N>`.
    pub docker_name: String,
    #[ts(type = "number")]
    pub size_bytes: u64,
    /// What the files in it take; `None` when it cannot be measured now.
    #[ts(type = "number | null")]
    pub used_bytes: Option<u64>,
    pub backend: String,
    /// Containers that mount it.
    pub users: Vec<String>,
    /// The Linux user who owns it (`None`: made before owners were kept; an admin's).
    pub owner: Option<String>,
}

pub fn docker_name(name: &str, version: u32) -> String {
    format!("{name}-{version}")
}

use crate::store::now_s;

/// Runs a host tool; its stdout, or an error that names it and says root is needed.
async fn run(tool: &str, args: &[&str]) -> Result<String> {
    run_ok_codes(tool, args, &[0]).await
}

/// `run`, where some non-zero exit statuses mean success too (e2fsck: 1 = errors corrected).
async fn run_ok_codes(tool: &str, args: &[&str], ok: &[i32]) -> Result<String> {
    let out = tokio::process::Command::new(tool)
        .args(args)
        .output()
        .await
        .map_err(|e| CoreError::Io {
            path: tool.into(),
            reason: format!("{e} (install mount, e2fsprogs and xfsprogs)"),
        })?;
    let stdout = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if out.status.code().is_some_and(|c| ok.contains(&c)) {
        return Ok(stdout);
    }
    let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
    Err(CoreError::Io {
        path: format!("{tool} {}", args.join(" ")),
        reason: format!(
            "{} (volumes with enforced sizes need root: run GPU Deck as root or with sudo)",
            if stderr.is_empty() { stdout } else { stderr }
        ),
    })
}

pub struct Volumes<'a> {
    pub docker: &'a DockerAdapter,
    pub store: &'a Mutex<Store>,
    pub data_dir: &'a DataDir,
    /// `uid:gid` that a new volume's top folder belongs to (a member's, so that their container,
    /// which runs as them, can write in it); `None`: root.
    pub root_owner: Option<(u32, u32)>,
}

impl<'a> Volumes<'a> {
    fn db<T>(&self, f: impl FnOnce(&mut Store) -> Result<T>) -> Result<T> {
        let mut g = self.store.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut g)
    }

    fn step(&self, id: i64, step: &str) -> Result<()> {
        self.db(|s| s.journal_step(id, step))?;
        crash_point(step);
        Ok(())
    }

    fn root(&self) -> PathBuf {
        self.data_dir.path().join("volumes")
    }

    /// Refuses a version of `size` bytes the disk that holds the volumes cannot give now (the
    /// size would be promised and never be there), with both sizes.
    fn check_disk(&self, name: &str, size: u64) -> Result<()> {
        let root = self.root();
        let Some((free, _)) = root.ancestors().find_map(crate::paths::fs_space) else {
            return Ok(());
        };
        if size > free {
            return Err(CoreError::InvalidInput {
                what: "size".into(),
                reason: format!(
                    "{name} would be {} but the disk that holds {} has {} free: choose a smaller size, or free space first",
                    human(size),
                    root.display(),
                    human(free)
                ),
            });
        }
        Ok(())
    }

    fn file(&self, name: &str, version: u32) -> PathBuf {
        self.root()
            .join(format!("{}.img", docker_name(name, version)))
    }

    fn dir(&self, name: &str, version: u32) -> PathBuf {
        self.root().join(docker_name(name, version))
    }

    /// Where a new version gets an XFS project quota (the mount point), or `None`: an image file.
    fn quota_mount(&self) -> Result<Option<PathBuf>> {
        let root = self.root();
        std::fs::create_dir_all(&root).map_err(|e| CoreError::io(&root, e))?;
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let root = root.canonicalize().map_err(|e| CoreError::io(&root, e))?;
        Ok(
            match crate::doctor::mount_of(&mountinfo, &root.display().to_string()) {
                Some((mnt, fs, opts)) if crate::doctor::has_project_quota(fs, &opts) => {
                    Some(PathBuf::from(mnt))
                }
                _ => None,
            },
        )
    }

    /// A new version's storage of `size` bytes (a quota folder on `quota`'s mount, else an
    /// image file); its kind and where it is.
    async fn make_backing(
        &self,
        name: &str,
        version: u32,
        size: u64,
        quota: Option<&Path>,
    ) -> Result<(&'static str, Backing)> {
        match quota {
            Some(mnt) => {
                let dir = self.dir(name, version);
                if dir.exists() {
                    drop_dir(&dir).await?;
                }
                tokio::fs::create_dir_all(&dir)
                    .await
                    .map_err(|e| CoreError::io(&dir, e))?;
                if let Some((uid, gid)) = self.root_owner {
                    std::os::unix::fs::chown(&dir, Some(uid), Some(gid))
                        .map_err(|e| CoreError::io(&dir, e))?;
                }
                let id = self.db(|s| s.next_counter("xfs_project", PROJECT_ID_FLOOR))?;
                let (d, m) = (dir.display().to_string(), mnt.display().to_string());
                run(
                    "xfs_quota",
                    &["-x", "-c", &format!("project -s -p {d} {id}"), &m],
                )
                .await?;
                run(
                    "xfs_quota",
                    &["-x", "-c", &format!("limit -p bhard={size} {id}"), &m],
                )
                .await?;
                Ok((XFS_QUOTA, Backing::Dir(dir)))
            }
            None => Ok((
                IMAGE_FILE,
                Backing::Loop(self.make_image(name, version, size).await?),
            )),
        }
    }

    /// Version `to` as a copy of image `from` (not mounted) resized to `size`: a sparse copy of
    /// the file, `e2fsck -f` (resize2fs insists) and `resize2fs`.
    async fn clone_image(&self, name: &str, from: u32, to: u32, size: u64) -> Result<()> {
        let (src, dst) = (self.file(name, from), self.file(name, to));
        let d = dst.display().to_string();
        let s = src.display().to_string();
        let old_len = std::fs::metadata(&src)
            .map_err(|e| CoreError::io(&src, e))?
            .len();
        if size < old_len {
            // resize2fs's own (cautious) minimum, known at once: below it, do not start.
            let min_blocks = run("resize2fs", &["-P", &s]).await?;
            let block = run("tune2fs", &["-l", &s]).await?;
            let figure = |text: &str, key: &str| {
                text.lines()
                    .find_map(|l| l.trim().strip_prefix(key))
                    .and_then(|v| v.trim().parse::<u64>().ok())
            };
            match (
                figure(&min_blocks, "Estimated minimum size of the filesystem:"),
                figure(&block, "Block size:"),
            ) {
                (Some(m), Some(b)) if m * b <= size => {}
                _ => {
                    return Err(CoreError::InvalidInput {
                        what: "size".into(),
                        reason: "below what resize2fs can shrink to".into(),
                    })
                }
            }
        }
        run("cp", &["--sparse=always", &s, &d]).await?;
        let grow = size > old_len;
        let set_len = |len: u64| {
            std::fs::OpenOptions::new()
                .write(true)
                .open(&dst)
                .and_then(|f| f.set_len(len))
                .map_err(|e| CoreError::io(&dst, e))
        };
        if grow {
            set_len(size)?;
        }
        // 0: clean, 1: errors corrected; anything else is a real problem.
        run_ok_codes("e2fsck", &["-f", "-y", &d], &[0, 1]).await?;
        // A failure here is not the user's: the caller copies file by file instead.
        run("resize2fs", &[&d, &format!("{}K", size / 1024)]).await?;
        if !grow {
            set_len(size)?;
        }
        run("e2label", &[&d, &docker_name(name, to)]).await?;
        Ok(())
    }

    /// An existing version's storage (attaching an image file that is not attached).
    async fn backing(&self, name: &str, version: u32) -> Result<Backing> {
        let dir = self.dir(name, version);
        if dir.is_dir() {
            return Ok(Backing::Dir(dir));
        }
        Ok(Backing::Loop(attach(&self.file(name, version)).await?))
    }

    fn current(&self, name: &str) -> Result<VolumeVersion> {
        validate_name("volume", name)?;
        let (cur, deleted) = self
            .db(|s| s.vol_current(name))?
            .ok_or_else(|| not_found(name))?;
        if deleted {
            return Err(not_found(name));
        }
        self.db(|s| s.vol_versions(name))?
            .into_iter()
            .find(|v| v.version == cur)
            .ok_or_else(|| not_found(name))
    }

    /// An ext4 file system of `size` bytes in a new sparse file, attached; the loop device.
    async fn make_image(&self, name: &str, version: u32, size: u64) -> Result<String> {
        let file = self.file(name, version);
        if let Some(dir) = file.parent() {
            tokio::fs::create_dir_all(dir)
                .await
                .map_err(|e| CoreError::io(dir, e))?;
        }
        let f = std::fs::File::create(&file).map_err(|e| CoreError::io(&file, e))?;
        f.set_len(size).map_err(|e| CoreError::io(&file, e))?;
        drop(f);
        let path = file.display().to_string();
        let label = docker_name(name, version);
        let owner = self.root_owner.map(|(u, g)| format!("root_owner={u}:{g}"));
        let mut args = vec!["-q", "-F", "-m", "0", "-L", &label];
        if let Some(o) = &owner {
            args.extend(["-E", o]);
        }
        // Small volumes: fewer inodes and a small journal leave ~93 % of the size for files
        // (the defaults leave ~81 % of 50 MB). Large ones keep the defaults (inodes for many files).
        // A journal needs 1024 blocks at least: 1 MB with the 1 KiB blocks mke2fs gives file
        // systems under 512 MiB, 4 MB with 4 KiB blocks above.
        if size < 1_000_000_000 {
            let journal = if size < 512 << 20 { "size=1" } else { "size=4" };
            args.extend(["-i", "65536", "-J", journal]);
        }
        args.push(&path);
        run("mkfs.ext4", &args).await?;
        attach(&file).await
    }

    async fn drop_backing(&self, name: &str, version: u32) -> Result<()> {
        let dir = self.dir(name, version);
        if dir.is_dir() {
            drop_dir(&dir).await?;
        }
        let file = self.file(name, version);
        detach(&file).await?;
        if file.exists() {
            tokio::fs::remove_file(&file)
                .await
                .map_err(|e| CoreError::io(&file, e))?;
        }
        Ok(())
    }

    pub async fn create(&self, name: &str, size: u64) -> Result<VolumeInfo> {
        validate_name("volume", name)?;
        if size < MIN_SIZE {
            return Err(CoreError::InvalidInput {
                what: "size".into(),
                reason: format!("the smallest volume is {}", human(MIN_SIZE)),
            });
        }
        if matches!(self.db(|s| s.vol_current(name))?, Some((_, false)))
            || self
                .docker
                .volume_device(&docker_name(name, 1))
                .await?
                .is_some()
        {
            return Err(CoreError::InvalidInput {
                what: "volume name".into(),
                reason: format!("a volume named \"{name}\" exists already"),
            });
        }
        self.check_disk(name, size)?;
        // Journaled: a crash before the record leaves no file, loop device or Docker volume.
        let id =
            self.db(|s| s.journal_begin("vol-create", name, &json!({ "name": name, "new": 1 })))?;
        crash_point("create_begun");
        let made = async {
            let quota = self.quota_mount()?;
            let (kind, b) = self.make_backing(name, 1, size, quota.as_deref()).await?;
            self.step(id, "create_made")?;
            self.docker
                .create_local_volume(&docker_name(name, 1), b.source(), name, 1)
                .await?;
            self.step(id, "create_volume")?;
            self.db(|s| {
                s.vol_add_version(&VolumeVersion {
                    name: name.into(),
                    version: 1,
                    size_bytes: size,
                    backend: kind.into(),
                    op: "create".into(),
                    created_at: now_s(),
                    retired_at: None,
                })
            })?;
            Ok::<_, CoreError>(())
        }
        .await;
        if let Err(e) = made {
            self.undo_create(name).await?;
            self.db(|s| s.journal_finish(id, "undone"))?;
            return Err(e);
        }
        self.db(|s| s.journal_finish(id, "done"))?;
        self.info(name).await
    }

    /// A create that was never recorded leaves nothing behind.
    async fn undo_create(&self, name: &str) -> Result<()> {
        self.docker.remove_volume(&docker_name(name, 1)).await?;
        self.drop_backing(name, 1).await
    }

    pub async fn info(&self, name: &str) -> Result<VolumeInfo> {
        self.info_with(name, None).await
    }

    /// `info`, with the used bytes when they are known already (measuring mounts the volume).
    async fn info_with(&self, name: &str, known_used: Option<u64>) -> Result<VolumeInfo> {
        let v = self.current(name)?;
        let dn = docker_name(name, v.version);
        let users = self
            .docker
            .volume_users(&dn)
            .await?
            .into_iter()
            .map(|u| u.1)
            .collect();
        Ok(VolumeInfo {
            name: name.into(),
            version: v.version,
            docker_name: dn,
            size_bytes: v.size_bytes,
            used_bytes: match known_used {
                Some(u) => Some(u),
                None => self.used(name, v.version).await.ok(),
            },
            backend: v.backend,
            users,
            owner: self.db(|s| s.vol_owner(name))?.flatten(),
        })
    }

    pub async fn list(&self) -> Result<Vec<VolumeInfo>> {
        let mut out = Vec::new();
        for n in self.db(|s| s.vol_names())? {
            out.push(self.info(&n).await?);
        }
        Ok(out)
    }

    pub fn history(&self, name: &str) -> Result<Vec<VolumeVersion>> {
        validate_name("volume", name)?;
        let v = self.db(|s| s.vol_versions(name))?;
        if v.is_empty() {
            return Err(not_found(name));
        }
        Ok(v)
    }

    /// Bytes the files take (statfs: blocks in use; for a quota folder, what the project uses).
    async fn used(&self, name: &str, version: u32) -> Result<u64> {
        let dev = match self.backing(name, version).await? {
            Backing::Dir(dir) => return df_used(&dir).await,
            Backing::Loop(dev) => dev,
        };
        if let Some(mnt) = mount_point_of(&dev) {
            return df_used(&mnt).await;
        }
        // Not mounted: the superblock says it, read without mounting (a mount here would race a
        // container starting on the volume: "device or resource busy").
        let out = run("dumpe2fs", &["-h", &dev]).await?;
        superblock_used(&out).ok_or_else(|| CoreError::Io {
            path: dev.clone(),
            reason: "dumpe2fs -h printed no block counts".into(),
        })
    }

    /// Resizes into version N+1 with every byte copied. With `move_users`, replicaSets that bind
    /// the volume are moved to the new version (a patch each); without it, any user refuses it.
    pub async fn resize(
        &self,
        name: &str,
        size: u64,
        move_users: Option<&ReplicaSets<'_>>,
    ) -> Result<VolumeInfo> {
        let cur = self.current(name)?;
        if size == cur.size_bytes {
            return Err(CoreError::InvalidInput {
                what: "size".into(),
                reason: format!("{name} is {} already", human(size)),
            });
        }
        if size < MIN_SIZE {
            return Err(CoreError::InvalidInput {
                what: "size".into(),
                reason: format!("the smallest volume is {}", human(MIN_SIZE)),
            });
        }
        let used = self.used(name, cur.version).await?;
        if used > size {
            return Err(CoreError::InvalidInput {
                what: "size".into(),
                reason: format!("{name} uses {}, asked {}", human(used), human(size)),
            });
        }
        // The new version is made beside the old one, which is kept until the copy is done.
        self.check_disk(name, size)?;
        let old_dn = docker_name(name, cur.version);
        let users = self.docker.volume_users(&old_dn).await?;
        if !users.is_empty() {
            let names: Vec<String> = users.iter().map(|u| u.1.clone()).collect();
            if move_users.is_none() {
                return Err(CoreError::InvalidInput {
                    what: "volume".into(),
                    reason: format!("{name} is used by {}: resize with --move to move replicaSets to the new version, or stop and remove them first", names.join(", ")),
                });
            }
            if let Some(u) = users.iter().find(|u| u.3.is_none()) {
                return Err(CoreError::InvalidInput {
                    what: "volume".into(),
                    reason: format!("{name} is used by container {}, which is not a replicaSet: stop and remove it first", u.1),
                });
            }
        }
        let next = self
            .db(|s| s.vol_versions(name))?
            .iter()
            .map(|v| v.version)
            .max()
            .unwrap_or(cur.version)
            + 1;
        let running: Vec<String> = users.iter().filter(|u| u.2).map(|u| u.0.clone()).collect();
        let replicasets: Vec<String> = users.iter().filter_map(|u| u.3.clone()).collect();
        let payload = json!({ "name": name, "old": cur.version, "new": next, "size": size, "stopped": running, "replicasets": replicasets });
        let id = self.db(|s| s.journal_begin("vol-resize", name, &payload))?;
        crash_point("begun");
        let result = async {
            // A consistent copy: nothing writes while it is made.
            for c in &running {
                self.docker.stop(c, 10).await?;
            }
            self.step(id, "users_stopped")?;
            let from = self.backing(name, cur.version).await?;
            let quota = self.quota_mount()?;
            let block_copy = quota.is_none()
                && matches!(&from, Backing::Loop(dev) if mount_point_of(dev).is_none());
            // Image to image, nothing mounted: copy the file system itself and resize it
            // (resize2fs), which keeps every byte, owner, link and hole by construction and is
            // faster than copying file by file. resize2fs refuses some shrinks that would fit
            // (its minimum is cautious); those, and any other failure of it, copy file by file.
            let cloned = block_copy
                && match self.clone_image(name, cur.version, next, size).await {
                    Ok(()) => true,
                    Err(_) => {
                        self.drop_backing(name, next).await?;
                        false
                    }
                };
            let (kind, to) = if cloned {
                self.step(id, "created")?;
                let dev = attach(&self.file(name, next)).await?;
                (IMAGE_FILE, Backing::Loop(dev))
            } else {
                let (kind, to) = self
                    .make_backing(name, next, size, quota.as_deref())
                    .await?;
                self.step(id, "created")?;
                copy_fs(&from, &to).await?;
                (kind, to)
            };
            self.step(id, "copied")?;
            self.docker
                .create_local_volume(&docker_name(name, next), to.source(), name, next)
                .await?;
            self.step(id, "volume_created")?;
            self.db(|s| {
                s.vol_add_version(&VolumeVersion {
                    name: name.into(),
                    version: next,
                    size_bytes: size,
                    backend: kind.into(),
                    op: "resize".into(),
                    created_at: now_s(),
                    retired_at: None,
                })
            })?;
            self.step(id, "recorded")?;
            Ok::<_, CoreError>(())
        }
        .await;
        match result {
            Ok(()) => {
                self.finish_resize(name, cur.version, next, &replicasets, move_users)
                    .await?;
                self.db(|s| s.journal_finish(id, "done"))?;
                // The copy holds exactly what the old version held.
                self.info_with(name, Some(used)).await
            }
            Err(e) => {
                self.undo_resize(&payload).await?;
                self.db(|s| s.journal_finish(id, "undone"))?;
                Err(e)
            }
        }
    }

    /// Moves the replicaSets to the new version, then retires the old one.
    async fn finish_resize(
        &self,
        name: &str,
        old: u32,
        new: u32,
        replicasets: &[String],
        rs: Option<&ReplicaSets<'_>>,
    ) -> Result<()> {
        let (old_dn, new_dn) = (docker_name(name, old), docker_name(name, new));
        if let Some(rs) = rs {
            for r in replicasets {
                let Ok(info) = rs.info(r).await else { continue };
                if let Some(b) = info.spec.binds.iter().find(|b| b.src == old_dn) {
                    let new_bind = Bind {
                        src: new_dn.clone(),
                        ..b.clone()
                    };
                    rs.patch(r, None, Some((b.clone(), new_bind))).await?;
                }
            }
        }
        crash_point("moved");
        // Containers that still hold the old version (stopped ones outside GPU Deck) keep it alive.
        if self.docker.volume_users(&old_dn).await?.is_empty() {
            self.docker.remove_volume(&old_dn).await?;
            self.drop_backing(name, old).await?;
            self.db(|s| s.vol_retire(name, old))?;
        }
        Ok(())
    }

    async fn undo_resize(&self, p: &serde_json::Value) -> Result<()> {
        let name = p["name"].as_str().unwrap_or_default();
        let new = p["new"].as_u64().unwrap_or(0) as u32;
        self.docker.remove_volume(&docker_name(name, new)).await?;
        self.drop_backing(name, new).await?;
        for c in p["stopped"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| c.as_str())
        {
            let _ = crate::replicaset::pin::start(self.docker, self.data_dir, c, false).await;
        }
        Ok(())
    }

    /// Settles what a crash left half done.
    pub async fn recover(&self, rs: Option<&ReplicaSets<'_>>) -> Result<usize> {
        let open: Vec<_> = self
            .db(|s| s.journal_open())?
            .into_iter()
            .filter(|o| o.kind == "vol-resize" || o.kind == "vol-create")
            .collect();
        for op in &open {
            let p = &op.payload;
            let name = p["name"].as_str().unwrap_or_default();
            let new = p["new"].as_u64().unwrap_or(0) as u32;
            let recorded = self
                .db(|s| s.vol_current(name))?
                .is_some_and(|(c, deleted)| c == new && !deleted);
            if op.kind == "vol-create" {
                if !recorded {
                    self.undo_create(name).await?;
                }
                self.db(|s| s.journal_finish(op.id, "settled after restart"))?;
            } else if recorded {
                let rss: Vec<String> = p["replicasets"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|r| r.as_str().map(String::from))
                    .collect();
                self.finish_resize(name, p["old"].as_u64().unwrap_or(0) as u32, new, &rss, rs)
                    .await?;
                self.db(|s| s.journal_finish(op.id, "done after restart"))?;
            } else {
                self.undo_resize(p).await?;
                self.db(|s| s.journal_finish(op.id, "undone after restart"))?;
            }
        }
        Ok(open.len())
    }

    /// Re-attaches every current version's file (a reboot detaches loop devices) and re-creates a
    /// Docker volume whose device changed, when nothing uses it.
    pub async fn restore(&self) -> Result<()> {
        let mut todo = Vec::new();
        for name in self.db(|s| s.vol_names())? {
            let v = self.current(&name)?;
            let file = self.file(&name, v.version);
            // Quota folders need nothing: the limit lives in the file system.
            if v.backend != IMAGE_FILE || !file.exists() {
                continue;
            }
            let dn = docker_name(&name, v.version);
            let given = self.docker.volume_device(&dn).await?;
            todo.push((name, v.version, file, dn, given));
        }
        // Volumes an earlier GPU Deck gave Docker as `/dev/loopN` (before the links) first: each
        // file goes back on the very device its Docker volume names while that one is free, so a
        // container that still references it (and keeps the volume from being re-created) mounts
        // its own data, not another file that took the number.
        todo.sort_by_key(|t| !t.4.as_deref().is_some_and(is_loop_number));
        for (name, version, file, dn, given) in todo {
            if let Some(d) = given.as_deref().filter(|d| is_loop_number(d)) {
                if !is_attached(&file).await?
                    && run("losetup", &[d, &file.display().to_string()])
                        .await
                        .is_err()
                {
                    tracing::warn!("{dn}: {d} is taken by another file; the Docker volume is re-created once no container references it");
                }
            }
            let dev = attach(&file).await?;
            match given {
                Some(d) if d == dev => {}
                Some(_) if !self.docker.volume_users(&dn).await?.is_empty() => {}
                _ => {
                    self.docker.remove_volume(&dn).await?;
                    self.docker
                        .create_local_volume(&dn, LocalSource::Ext4Device(&dev), &name, version)
                        .await?;
                }
            }
        }
        Ok(())
    }

    /// Deletes the volume and its file; refused while a container uses it. History stays.
    pub async fn delete(&self, name: &str) -> Result<()> {
        let v = self.current(name)?;
        let dn = docker_name(name, v.version);
        let users = self.docker.volume_users(&dn).await?;
        if !users.is_empty() {
            let names: Vec<String> = users.into_iter().map(|u| u.1).collect();
            return Err(CoreError::InvalidInput {
                what: "volume".into(),
                reason: format!("{name} is used by {}: stop and delete them (or move them to another volume) first", names.join(", ")),
            });
        }
        self.docker.remove_volume(&dn).await?;
        self.drop_backing(name, v.version).await?;
        self.db(|s| s.vol_mark_deleted(name))
    }
}

fn not_found(name: &str) -> CoreError {
    CoreError::InvalidInput {
        what: "volume".into(),
        reason: format!("no volume is named \"{name}\" (`gpudeck vol ls` lists them)"),
    }
}

fn tempdir() -> Result<PathBuf> {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let p = std::env::temp_dir().join(format!(
        "gpudeck-mnt-{}-{}-{n}",
        std::process::id(),
        crate::gpu::now_ms()
    ));
    std::fs::create_dir_all(&p).map_err(|e| CoreError::io(&p, e))?;
    Ok(p)
}

/// The loop device `file` is attached to, attaching it when it is not.
/// A device path that is a loop number (`/dev/loop3`), as an earlier GPU Deck gave Docker.
fn is_loop_number(dev: &str) -> bool {
    dev.strip_prefix("/dev/loop")
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// Whether an image file is attached to a loop device now.
async fn is_attached(file: &Path) -> Result<bool> {
    Ok(!run("losetup", &["-j", &file.display().to_string()])
        .await?
        .trim()
        .is_empty())
}

/// Where the stable links to the loop devices live: on /run, which a reboot clears.
const LOOP_LINKS: &str = "/run/gpudeck/loop";

/// The stable device path of a version's image file (`<name>-<N>.img` → `…/loop/<name>-<N>`).
fn loop_link(file: &Path) -> PathBuf {
    let stem = file
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    Path::new(LOOP_LINKS).join(stem)
}

/// Attaches an image file to a loop device (or finds the one it is attached to) and points its
/// stable link at that device; returns the link, the only device path Docker is given.
async fn attach(file: &Path) -> Result<String> {
    let path = file.display().to_string();
    let listed = run("losetup", &["-j", &path]).await?;
    let dev = match listed
        .lines()
        .next()
        .and_then(|l| l.split(':').next())
        .filter(|d| !d.is_empty())
    {
        Some(dev) => dev.to_string(),
        None => run("losetup", &["--find", "--show", &path]).await?,
    };
    let link = loop_link(file);
    std::fs::create_dir_all(LOOP_LINKS).map_err(|e| CoreError::io(LOOP_LINKS, e))?;
    if std::fs::read_link(&link).ok() != Some(PathBuf::from(&dev)) {
        // A new link beside it, renamed over the old one: never a moment without one.
        let tmp = link.with_extension("new");
        let _ = std::fs::remove_file(&tmp);
        std::os::unix::fs::symlink(&dev, &tmp).map_err(|e| CoreError::io(&tmp, e))?;
        std::fs::rename(&tmp, &link).map_err(|e| CoreError::io(&link, e))?;
    }
    Ok(link.display().to_string())
}

async fn detach(file: &Path) -> Result<()> {
    let _ = std::fs::remove_file(loop_link(file));
    if !file.exists() {
        return Ok(());
    }
    let listed = run("losetup", &["-j", &file.display().to_string()]).await?;
    for dev in listed
        .lines()
        .filter_map(|l| l.split(':').next())
        .filter(|d| !d.is_empty())
    {
        run("losetup", &["-d", dev]).await?;
    }
    Ok(())
}

/// Bytes in use from `dumpe2fs -h`: (blocks − free − overhead) × block size, which is what `df`
/// says of the mounted file system (overhead: the journal and inode tables).
fn superblock_used(dumpe2fs: &str) -> Option<u64> {
    let field = |k: &str| -> Option<u64> {
        dumpe2fs
            .lines()
            .find_map(|l| l.strip_prefix(k)?.trim_start().strip_prefix(':'))
            .and_then(|v| v.trim().parse().ok())
    };
    let blocks = field("Block count")?;
    let free = field("Free blocks")?;
    let size = field("Block size")?;
    let overhead = field("Overhead clusters").unwrap_or(0);
    Some(blocks.saturating_sub(free).saturating_sub(overhead) * size)
}

/// Where `dev` is mounted now (a container using the volume), if anywhere.
fn mount_point_of(dev: &str) -> Option<PathBuf> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    // Mounted through the link or the loop device itself: the same device either way.
    let real = std::fs::canonicalize(dev).ok();
    text.lines().find_map(|l| {
        let (pre, post) = l.split_once(" - ")?;
        let source = post.split(' ').nth(1)?;
        let same = source == dev
            || (real.is_some()
                && (Some(PathBuf::from(source)) == real
                    || std::fs::canonicalize(source).ok() == real));
        same.then(|| PathBuf::from(pre.split(' ').nth(4).unwrap_or("")))
    })
}

async fn df_used(path: &Path) -> Result<u64> {
    let out = run("df", &["-B1", "--output=used", &path.display().to_string()]).await?;
    out.lines()
        .nth(1)
        .and_then(|l| l.trim().parse().ok())
        .ok_or_else(|| CoreError::Io {
            path: path.display().to_string(),
            reason: "df gave no figure".into(),
        })
}

/// Where a backing can be read or written: its folder, or a fresh mount of its loop device.
async fn open(b: &Backing, read_only: bool) -> Result<(PathBuf, bool)> {
    match b {
        Backing::Dir(d) => Ok((d.clone(), false)),
        Backing::Loop(dev) => {
            let t = tempdir()?;
            let at = t.display().to_string();
            let mounted = if read_only {
                run("mount", &["-o", "ro", dev, &at]).await
            } else {
                run("mount", &[dev, &at]).await
            };
            if let Err(e) = mounted {
                let _ = std::fs::remove_dir(&t);
                return Err(e);
            }
            Ok((t, true))
        }
    }
}

async fn close(path: &Path, mounted: bool) -> Result<()> {
    if !mounted {
        return Ok(());
    }
    let r = run("umount", &[&path.display().to_string()]).await;
    let _ = std::fs::remove_dir(path);
    r.map(|_| ())
}

/// Copies one version's files into another, keeping owners, modes, times, xattrs, symlinks, hard
/// links and holes.
async fn copy_fs(from: &Backing, to: &Backing) -> Result<()> {
    let (a, ma) = open(from, true).await?;
    let result = async {
        let (b, mb) = open(to, false).await?;
        let copied = run(
            "cp",
            &[
                "-a",
                "--sparse=always",
                &format!("{}/.", a.display()),
                &b.display().to_string(),
            ],
        )
        .await;
        run("sync", &[]).await?;
        let closed = close(&b, mb).await;
        copied?;
        closed
    }
    .await;
    let _ = close(&a, ma).await;
    result.map_err(|e| match e {
        CoreError::Io { reason, .. }
            if reason.contains("No space left") || reason.contains("quota exceeded") =>
        {
            CoreError::InvalidInput {
                what: "size".into(),
                reason: "the files do not fit in the new size (the file system needs room of its own); ask for more".into(),
            }
        }
        other => other,
    })
}

/// Removes a quota folder: its limit is lifted first (the project ID is never handed out again).
async fn drop_dir(dir: &Path) -> Result<()> {
    let d = dir.display().to_string();
    if let Ok(out) = run("xfs_io", &["-c", "lsproj", &d]).await {
        let id = out
            .split('=')
            .nth(1)
            .map(str::trim)
            .and_then(|v| v.parse::<u64>().ok());
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        if let (Some(id), Some((mnt, _, _))) = (
            id.filter(|i| *i != 0),
            crate::doctor::mount_of(&mountinfo, &d),
        ) {
            run(
                "xfs_quota",
                &["-x", "-c", &format!("limit -p bhard=0 {id}"), mnt],
            )
            .await?;
        }
    }
    tokio::fs::remove_dir_all(dir)
        .await
        .map_err(|e| CoreError::io(dir, e))
}

#[cfg(test)]
mod tests {
    #[test]
    fn used_bytes_from_the_superblock_match_df() {
        let out = "Block count:              102400\nReserved block count:     5120\nOverhead clusters:        12067\nFree blocks:              80079\nBlock size:               1024\n";
        // df -B1 said 10500096 used for this file system.
        assert_eq!(super::superblock_used(out), Some(10_500_096));
        assert_eq!(super::superblock_used("Block size: 4096"), None);
    }
}
