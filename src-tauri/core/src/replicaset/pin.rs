//! Pinned binds: what a member's container mounts is what was checked.
//!
//! A member's host-path bind is checked by its path (`policy::check_member_bind`: resolved, under
//! their bind roots, in no system tree). Were the engine handed that path, it would resolve it
//! again when it mounts, later, following whatever symbolic link is there then: a member who swaps
//! her checked folder for a link to another's, in the moment between the check and the mount, would
//! get the other's folder. So the service mounts the bind itself, from an open descriptor:
//! - the checked (resolved, symlink-free) path is opened with `openat2(RESOLVE_NO_SYMLINKS)`: a
//!   symbolic link anywhere on it now and the open fails, so what is opened is what sat at the
//!   checked path at that instant;
//! - what was opened is bind-mounted (recursively, as the engine binds) through its descriptor
//!   (`/proc/self/fd/N`, which the kernel follows to that very file, never by name) onto a stage
//!   of the service's own, `/run/gpudeck/binds/<scope>/<container>/<i>`, in a folder only root
//!   can enter (`<scope>`: one per data folder, so two services never touch each other's);
//! - the container is given the stage as a `bind` mount. The engine refuses to start a container
//!   whose `bind` source is missing (where it would make an empty folder for a plain bind), so
//!   after a reboot has cleared /run nothing starts on an empty stage.
//!
//! The stage is mounted afresh from the checked path before every start of the container
//! (`start`: run, every new version, continue, the undo of a failed operation), so a start never
//! uses a mount left from before; the checked paths are kept in the container's `gpudeck.pins`
//! label. Stages go with their container (`release`), and those of containers that are gone are
//! swept when the service starts (`sweep`). A stage is only ever unmounted and removed as an empty
//! folder or file, never emptied: the member's files are never touched.
//!
//! Admins' binds are given to the engine as they are (the admin owns the machine; a path that
//! does not exist yet is made by the engine, as `docker run` does).

use std::collections::HashSet;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{openat, openat2, OFlag, OpenHow, ResolveFlag, AT_FDCWD};
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sys::stat::{fstat, Mode, SFlag};
use sha2::{Digest, Sha256};

use super::spec::Bind;
use crate::docker::DockerAdapter;
use crate::paths::DataDir;
use crate::{CoreError, Result};

/// The label listing a container's pinned binds: `[[index, checked path], …]` (`""`: none).
pub const LABEL_PINS: &str = "gpudeck.pins";

/// Where the stages live: on /run, which a reboot clears.
const ROOT: &str = "/run/gpudeck/binds";

/// The stages of one service (one data folder).
pub struct Pins {
    root: PathBuf,
}

/// A new container's binds: those handed to the engine as they are (`Binds`), the pinned ones as
/// `bind` mounts of their stages, and the label that lists the pinned ones.
#[derive(Debug, Default)]
pub struct Planned {
    pub binds: Vec<String>,
    pub mounts: Vec<bollard::models::Mount>,
    pub label: String,
}

impl Pins {
    pub fn of(data: &DataDir) -> Pins {
        let p = data
            .path()
            .canonicalize()
            .unwrap_or_else(|_| data.path().to_path_buf());
        let h = Sha256::digest(p.as_os_str().as_bytes());
        let scope: String = h[..6].iter().map(|b| format!("{b:02x}")).collect();
        Pins {
            root: Path::new(ROOT).join(scope),
        }
    }

    fn stage(&self, container: &str, i: usize) -> PathBuf {
        self.root.join(container).join(i.to_string())
    }

    /// The binds of a new container `container`; with `pin`, every host-path bind is pinned now
    /// (the engine checks at create that a `bind` source exists) and again at each start.
    pub fn plan(&self, container: &str, binds: &[Bind], pin: bool) -> Result<Planned> {
        let mut out = Planned::default();
        let mut list: Vec<(usize, String)> = Vec::new();
        for (i, b) in binds.iter().enumerate() {
            if pin && b.is_host_path() {
                list.push((i, b.src.clone()));
                out.mounts.push(bollard::models::Mount {
                    target: Some(b.dest.clone()),
                    source: Some(self.stage(container, i).display().to_string()),
                    typ: Some(bollard::models::MountType::BIND),
                    read_only: Some(b.read_only),
                    ..Default::default()
                });
            } else {
                out.binds.push(b.to_docker());
            }
        }
        if !list.is_empty() {
            self.pin_all(container, &list, true)?;
            out.label = serde_json::to_string(&list).unwrap_or_default();
        }
        Ok(out)
    }

    /// Mounts each checked path onto its stage: afresh (`fresh`), or only where the stage is not
    /// mounted now (what the container had before, kept: the undo of a failed operation).
    pub fn pin_all(&self, container: &str, list: &[(usize, String)], fresh: bool) -> Result<()> {
        let dir = self.root.join(container);
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .map_err(|e| CoreError::io(&dir, e))?;
        // Only root may pass: a member can neither see nor swap a stage.
        for d in [Path::new(ROOT), self.root.as_path()] {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o700))
                .map_err(|e| CoreError::io(d, e))?;
        }
        let mounted = if fresh {
            String::new()
        } else {
            std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default()
        };
        for (i, path) in list {
            let stage = self.stage(container, *i);
            let at = stage.display().to_string();
            if !fresh
                && mounted
                    .lines()
                    .any(|l| l.split(' ').nth(4) == Some(at.as_str()))
            {
                continue;
            }
            pin_one(path, &stage)?;
        }
        Ok(())
    }

    /// Unmounts and removes `container`'s stages (its container is gone).
    pub fn release(&self, container: &str) {
        let dir = self.root.join(container);
        let Ok(entries) = std::fs::read_dir(&dir) else {
            return;
        };
        for e in entries.flatten() {
            remove_stage(&e.path());
        }
        let _ = std::fs::remove_dir(&dir);
    }

    /// `release` of every container of replicaSet `name` (`<name>-<N>`).
    pub fn release_rs(&self, name: &str) {
        for c in self.containers() {
            let ours = c
                .strip_prefix(name)
                .and_then(|r| r.strip_prefix('-'))
                .is_some_and(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()));
            if ours {
                self.release(&c);
            }
        }
    }

    /// The containers that have stages.
    pub fn containers(&self) -> Vec<String> {
        std::fs::read_dir(&self.root)
            .map(|rd| {
                rd.flatten()
                    .filter_map(|e| e.file_name().to_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// `release` of the stages whose container is not in `live` (names).
    pub fn sweep(&self, live: &HashSet<String>) -> usize {
        let gone: Vec<String> = self
            .containers()
            .into_iter()
            .filter(|c| !live.contains(c))
            .collect();
        for c in &gone {
            self.release(c);
        }
        gone.len()
    }
}

/// Starts a container GPU Deck made (the one way GPU Deck starts one), its pinned binds mounted
/// from their checked paths first: afresh (`fresh`: a run, a new version, a continue, each checked
/// just before), or only where a stage is missing (`!fresh`: an undo puts back what ran, as it
/// was; after a reboot the stages are gone and are made again).
pub async fn start(docker: &DockerAdapter, data: &DataDir, id: &str, fresh: bool) -> Result<()> {
    if let Some(c) = docker.state(id).await? {
        let list: Vec<(usize, String)> = c
            .labels
            .get(LABEL_PINS)
            .filter(|l| !l.is_empty())
            .and_then(|l| serde_json::from_str(l).ok())
            .unwrap_or_default();
        if !list.is_empty() {
            Pins::of(data).pin_all(&c.name, &list, fresh)?;
        }
    }
    crate::hold_point("binds_pinned");
    docker.start(id).await
}

/// `sweep` of the stages of containers the engine no longer has.
pub async fn sweep(docker: &DockerAdapter, data: &DataDir) -> Result<usize> {
    let pins = Pins::of(data);
    if pins.containers().is_empty() {
        return Ok(0);
    }
    let live: HashSet<String> = docker
        .states_by_label(super::LABEL_RS)
        .await?
        .into_keys()
        .collect();
    Ok(pins.sweep(&live))
}

/// Opens `path` (absolute, resolved) without following any symbolic link on it.
fn open_checked(path: &str) -> std::result::Result<OwnedFd, Errno> {
    let how = OpenHow::new()
        .flags(OFlag::O_PATH | OFlag::O_CLOEXEC)
        .resolve(ResolveFlag::RESOLVE_NO_SYMLINKS | ResolveFlag::RESOLVE_NO_MAGICLINKS);
    match openat2(AT_FDCWD, path, how) {
        Err(Errno::ENOSYS) => open_walk(path),
        r => r,
    }
}

/// `open_checked` where the kernel has no openat2 (before 5.6): one component at a time, none
/// followed if it is a link.
fn open_walk(path: &str) -> std::result::Result<OwnedFd, Errno> {
    let flags = OFlag::O_PATH | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW;
    let mut fd = openat(AT_FDCWD, "/", flags | OFlag::O_DIRECTORY, Mode::empty())?;
    for c in Path::new(path).components().skip(1) {
        let next = openat(fd.as_fd(), c.as_os_str(), flags, Mode::empty())?;
        if SFlag::from_bits_truncate(fstat(&next)?.st_mode) & SFlag::S_IFMT == SFlag::S_IFLNK {
            return Err(Errno::ELOOP);
        }
        fd = next;
    }
    Ok(fd)
}

/// Whether every pinned bind of `binds` can be mounted now (checked before anything is stopped;
/// the mount opens them again).
pub fn check(binds: &[Bind]) -> Result<()> {
    for b in binds.iter().filter(|b| b.is_host_path()) {
        open_bind(&b.src)?;
    }
    Ok(())
}

/// `path` opened without following links, and whether it is a folder; refusals as sentences.
fn open_bind(path: &str) -> Result<(OwnedFd, bool)> {
    let fd = open_checked(path).map_err(|e| match e {
        Errno::ELOOP | Errno::ENOTDIR | Errno::EXDEV => CoreError::Forbidden(format!(
            "The host path \"{path}\" changed after it was checked: a symbolic link is on it now, so it was not mounted and nothing was changed. Bind the folder itself (it is checked again)."
        )),
        Errno::ENOENT => CoreError::InvalidInput {
            what: "bind".into(),
            reason: format!(
                "the host path \"{path}\" does not exist: make it first (mkdir -p {path}), then try again"
            ),
        },
        e => CoreError::io(path, std::io::Error::from(e)),
    })?;
    let kind = SFlag::from_bits_truncate(
        fstat(&fd)
            .map_err(|e| CoreError::io(path, e.into()))?
            .st_mode,
    ) & SFlag::S_IFMT;
    if kind == SFlag::S_IFLNK {
        return Err(CoreError::Forbidden(format!(
            "The host path \"{path}\" changed after it was checked: it is a symbolic link now, so it was not mounted and nothing was changed. Bind the folder itself (it is checked again)."
        )));
    }
    Ok((fd, kind == SFlag::S_IFDIR))
}

/// Mounts what is at `path` now (opened without following links) onto `stage`.
fn pin_one(path: &str, stage: &Path) -> Result<()> {
    let (fd, is_dir) = open_bind(path)?;
    detach(stage);
    match std::fs::symlink_metadata(stage) {
        Ok(m) if m.is_dir() == is_dir => {}
        Ok(_) => remove_stage(stage),
        Err(_) => {}
    }
    let made = if is_dir {
        std::fs::DirBuilder::new().mode(0o700).create(stage)
    } else {
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(stage)
            .map(drop)
    };
    if let Err(e) = made {
        if e.kind() != std::io::ErrorKind::AlreadyExists {
            return Err(CoreError::io(stage, e));
        }
    }
    let via = format!("/proc/self/fd/{}", fd.as_raw_fd());
    mount(
        Some(via.as_str()),
        stage,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    )
    .map_err(|e| CoreError::Io {
        path: path.into(),
        reason: format!(
            "it could not be mounted for the container ({e}); the service must run as root"
        ),
    })
}

/// Unmounts whatever is mounted on `stage` (lazily: a container still holding it keeps its own).
fn detach(stage: &Path) {
    for _ in 0..64 {
        if umount2(stage, MntFlags::MNT_DETACH | MntFlags::UMOUNT_NOFOLLOW).is_err() {
            break;
        }
    }
}

/// Unmounts a stage and removes it: an empty folder or file of the service's, never what was
/// mounted on it (`remove_dir` of a mount point fails).
fn remove_stage(stage: &Path) {
    detach(stage);
    if std::fs::remove_dir(stage).is_err() {
        let _ = std::fs::remove_file(stage);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_link_on_the_path_is_not_followed() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().canonicalize().unwrap();
        std::fs::create_dir(root.join("real")).unwrap();
        std::os::unix::fs::symlink(root.join("real"), root.join("link")).unwrap();
        let s = |p: PathBuf| p.display().to_string();
        assert!(open_checked(&s(root.join("real"))).is_ok());
        assert_eq!(
            open_checked(&s(root.join("link"))).unwrap_err(),
            Errno::ELOOP
        );
        std::fs::create_dir(root.join("real/in")).unwrap();
        assert_eq!(
            open_checked(&s(root.join("link/in"))).unwrap_err(),
            Errno::ELOOP
        );
        // The walk without openat2 says the same.
        assert!(open_walk(&s(root.join("real/in"))).is_ok());
        assert_eq!(open_walk(&s(root.join("link"))).unwrap_err(), Errno::ELOOP);
        assert_eq!(
            open_walk(&s(root.join("link/in"))).unwrap_err(),
            Errno::ELOOP
        );
    }

    #[test]
    fn only_host_paths_are_pinned_and_only_when_asked() {
        let pins = Pins {
            root: PathBuf::from("/nonexistent/pins"),
        };
        let binds = vec![Bind::parse("data-1:/d").unwrap()];
        let p = pins.plan("x-1", &binds, true).unwrap();
        assert_eq!(p.binds, vec!["data-1:/d".to_string()]);
        assert!(p.mounts.is_empty() && p.label.is_empty());
        let host = vec![Bind::parse("/srv/a:/a:ro").unwrap()];
        let p = pins.plan("x-1", &host, false).unwrap();
        assert_eq!(p.binds, vec!["/srv/a:/a:ro".to_string()]);
    }

    #[test]
    fn a_scope_per_data_folder() {
        let a = Pins::of(&DataDir::at("/var/lib/gpudeck"));
        let b = Pins::of(&DataDir::at("/tmp/other"));
        assert_ne!(a.root, b.root);
        assert!(a.root.starts_with(ROOT));
        assert_eq!(a.stage("foo-2", 1), a.root.join("foo-2/1"));
    }
}
