//! The overlay2 way of carrying a version's files, used where the engine keeps containers on
//! overlay2 and GPU Deck (root, beside the engine) can reach a container's upper directory.
//!
//! The new container is created from the image the old one was created from and, before its
//! first start, gets a copy of the old one's upper directory (`cp -a`: owners, modes, times,
//! links, holes, extended attributes and overlay whiteouts kept): a plain file copy, with no tar
//! stream, digest or image layer in the way, so the new version runs sooner than with `docker
//! commit` (see the README's benchmark). The old version's files are kept *after* the reply,
//! as the folder `version-files/<name>/<k>` in the data folder: the old upper directory is moved
//! there (copied when on another file system) and then each file the version before it holds
//! unchanged (same path, metadata and bytes) becomes a hard link to that file, so a file is
//! stored once however many versions keep it. Version folders are never written once complete,
//! which is what makes sharing files between them safe; a rollback copies one into the new
//! container. A version kept this way is recorded with the snapshot id `dir:<image id>` (the
//! image its files sit on).
//!
//! Every other engine (other storage drivers, the containerd image store, rootless Docker out of
//! reach, no GNU cp) uses the archive way in `archive` (or the layer way in `files` where that
//! cannot), as does any host with `GPUDECK_CARRY=archive` or `GPUDECK_CARRY=layers`.

use std::collections::HashSet;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::docker::ContainerState;
use crate::{CoreError, Result};

/// The snapshot id prefix of a version kept as a folder.
pub const DIR_PREFIX: &str = "dir:";

/// Whether the copy way may be used at all (`GPUDECK_CARRY=layers` or `=archive` turns it off).
pub fn enabled() -> bool {
    std::env::var("GPUDECK_CARRY").map_or(true, |v| v != "layers" && v != "archive")
}

/// GNU cp (its `-a` keeps extended attributes, which carry overlay's opaque directories).
fn gnu_cp() -> bool {
    static GNU: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *GNU.get_or_init(|| {
        std::process::Command::new("cp")
            .arg("--version")
            .output()
            .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("GNU"))
    })
}

/// The upper directory of `c` when its files can be carried the copy way.
pub fn usable_upper(c: &ContainerState) -> Option<PathBuf> {
    upper_of(c).filter(|_| enabled())
}

/// The upper directory of `c` where the engine says and GNU cp can copy it, whichever way was
/// chosen to carry its files (keeping an overlay2 container's files is a move of it).
pub fn upper_of(c: &ContainerState) -> Option<PathBuf> {
    let up = PathBuf::from(c.upper_dir.as_ref()?);
    (up.is_dir() && gnu_cp()).then_some(up)
}

pub fn snapshot_id(parent_image: &str) -> String {
    format!("{DIR_PREFIX}{parent_image}")
}

/// The image a folder-kept version's files sit on; `None` for a snapshot image.
pub fn parent_of(snapshot_id: &str) -> Option<&str> {
    snapshot_id.strip_prefix(DIR_PREFIX)
}

fn root(data: &Path) -> PathBuf {
    data.join("version-files")
}

/// The folder that keeps `name`'s version `k`'s files.
pub fn version_dir(data: &Path, name: &str, k: u32) -> PathBuf {
    root(data).join(name).join(k.to_string())
}

fn io(p: &Path) -> impl FnOnce(std::io::Error) -> CoreError + '_ {
    move |e| CoreError::io(p, e)
}

pub(super) use crate::paths::fs_space;

/// Whether a copy of `need` bytes fits in `free`, keeping 1 % of what the file system holds
/// (and at least 64 MiB) spare.
pub fn fits(need: u64, free: u64, total: u64) -> bool {
    need.saturating_add((total / 100).max(64 << 20)) <= free
}

/// Checks, before anything is stopped, that a copy of `src` fits on the file system of `dst`
/// (Docker's storage). When the free space is at least what the whole file system holds, any
/// folder on it fits and nothing is counted; otherwise `src` is measured.
pub async fn check_room(name: &str, src: &Path, dst: &Path) -> Result<()> {
    let Some((free, used)) = fs_space(dst) else {
        return Ok(());
    };
    if fits(used, free, free + used) {
        return Ok(());
    }
    let s = src.to_path_buf();
    let need = tokio::task::spawn_blocking(move || unique_bytes(&s, None))
        .await
        .map_err(|e| CoreError::io(src, std::io::Error::other(e)))??;
    if fits(need, free, free + used) {
        return Ok(());
    }
    Err(CoreError::RsState {
        name: name.into(),
        state: "short of disk space for its files".into(),
        hint: format!(
            "carrying them over needs {} MB free where Docker keeps containers ({}), and {} MB are free. Nothing was stopped. Free some space (`gpudeck rs prune`, `docker system prune`), then try again.",
            need / 1_000_000 + 1,
            dst.display(),
            free / 1_000_000
        ),
    })
}

/// Copies the tree `src` into the (existing) folder `dst`, everything kept.
pub async fn copy_tree(src: &Path, dst: &Path) -> Result<()> {
    let out = tokio::process::Command::new("cp")
        .arg("-a")
        .arg("--reflink=auto")
        .arg(format!("{}/.", src.display()))
        .arg(format!("{}/", dst.display()))
        .output()
        .await
        .map_err(io(src))?;
    if !out.status.success() {
        return Err(CoreError::Io {
            path: src.display().to_string(),
            reason: format!(
                "copying it to {} failed: {}",
                dst.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        });
    }
    Ok(())
}

/// Keeps `name`'s version `k`'s files: `upper` (the stopped old container's upper directory)
/// becomes `version-files/<name>/<k>`, its files shared with `prev` (the folder of the version
/// before it on the same image) where unchanged. Safe to run again after a crash at any point:
/// a finished folder is kept, a moved one is finished, a half-copied one is copied again.
/// Returns the bytes this version adds.
pub async fn save(
    data: &Path,
    name: &str,
    k: u32,
    upper: Option<PathBuf>,
    prev: Option<PathBuf>,
) -> Result<u64> {
    let fin = version_dir(data, name, k);
    let moved = fin.with_extension("moved");
    let copying = fin.with_extension("copying");
    if !fin.is_dir() {
        if !moved.is_dir() {
            let upper = upper
                .filter(|u| u.is_dir())
                .ok_or_else(|| CoreError::FilesGone {
                    name: name.into(),
                    version: k,
                })?;
            std::fs::create_dir_all(fin.parent().unwrap_or(&fin)).map_err(io(&fin))?;
            match std::fs::rename(&upper, &moved) {
                Ok(()) => {}
                // Another file system: copied (the original goes with the container).
                Err(e) if e.raw_os_error() == Some(libc::EXDEV) => {
                    if copying.exists() {
                        std::fs::remove_dir_all(&copying).map_err(io(&copying))?;
                    }
                    std::fs::create_dir(&copying).map_err(io(&copying))?;
                    copy_tree(&upper, &copying).await?;
                    std::fs::rename(&copying, &moved).map_err(io(&moved))?;
                }
                Err(e) => return Err(CoreError::io(&upper, e)),
            }
        }
        if copying.exists() {
            std::fs::remove_dir_all(&copying).map_err(io(&copying))?;
        }
        let (m, p, scratch) = (moved.clone(), prev.clone(), root(data).join(".link"));
        tokio::task::spawn_blocking(move || share(&m, p.as_deref(), &scratch))
            .await
            .map_err(|e| CoreError::io(&moved, std::io::Error::other(e)))??;
        std::fs::rename(&moved, &fin).map_err(io(&fin))?;
    }
    let (f, p) = (fin.clone(), prev);
    tokio::task::spawn_blocking(move || unique_bytes(&f, p.as_deref()))
        .await
        .map_err(|e| CoreError::io(&fin, std::io::Error::other(e)))?
}

/// The bytes of `dir`'s files that `prev` does not share (each file counted once).
pub fn unique_bytes(dir: &Path, prev: Option<&Path>) -> Result<u64> {
    let mut shared = HashSet::new();
    if let Some(p) = prev.filter(|p| p.is_dir()) {
        walk(p, &mut |m| {
            if m.file_type().is_file() && m.nlink() > 1 {
                shared.insert((m.dev(), m.ino()));
            }
            Ok(())
        })?;
    }
    let (mut seen, mut bytes) = (HashSet::new(), 0u64);
    walk(dir, &mut |m| {
        if !shared.contains(&(m.dev(), m.ino())) && seen.insert((m.dev(), m.ino())) {
            bytes += m.blocks() * 512;
        }
        Ok(())
    })?;
    Ok(bytes)
}

/// Every entry below `dir` (not `dir` itself), depth first, without following links.
fn walk(dir: &Path, f: &mut dyn FnMut(&std::fs::Metadata) -> Result<()>) -> Result<()> {
    for e in std::fs::read_dir(dir).map_err(io(dir))? {
        let e = e.map_err(io(dir))?;
        let p = e.path();
        let m = std::fs::symlink_metadata(&p).map_err(io(&p))?;
        f(&m)?;
        if m.file_type().is_dir() {
            walk(&p, f)?;
        }
    }
    Ok(())
}

fn has_xattrs(p: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let Ok(c) = std::ffi::CString::new(p.as_os_str().as_bytes()) else {
        return true;
    };
    // SAFETY: a NUL-terminated path and a null buffer of size 0 (asks only for the length).
    let n = unsafe { libc::llistxattr(c.as_ptr(), std::ptr::null_mut(), 0) };
    n != 0
}

fn same_bytes(a: &Path, b: &Path) -> std::io::Result<bool> {
    let (mut fa, mut fb) = (std::fs::File::open(a)?, std::fs::File::open(b)?);
    let (mut ba, mut bb) = (vec![0u8; 1 << 20], vec![0u8; 1 << 20]);
    loop {
        let n = fa.read(&mut ba)?;
        if n == 0 {
            return Ok(fb.read(&mut bb[..1])? == 0);
        }
        fb.read_exact(&mut bb[..n])?;
        if ba[..n] != bb[..n] {
            return Ok(false);
        }
    }
}

/// Turns each regular file of `dir` that `prev` holds unchanged at the same path (same bytes,
/// mode, owner and modification time, to the second where one side has whole seconds only; no
/// extended attributes; not already linked) into a hard link to it.
/// Each swap is atomic (link beside, then rename over), through the scratch folder `scratch`.
fn share(dir: &Path, prev: Option<&Path>, scratch: &Path) -> Result<()> {
    let Some(prev) = prev.filter(|p| p.is_dir()) else {
        return Ok(());
    };
    if scratch.exists() {
        std::fs::remove_dir_all(scratch).map_err(io(scratch))?;
    }
    std::fs::create_dir_all(scratch).map_err(io(scratch))?;
    share_in(dir, prev, &scratch.join("link"))?;
    std::fs::remove_dir_all(scratch).map_err(io(scratch))
}

/// `share` for one folder and its counterpart in the version before. Both sides are followed
/// only through real folders, never through a symbolic link (a container's files may link
/// anywhere on the host).
fn share_in(dir: &Path, prev: &Path, tmp: &Path) -> Result<()> {
    for e in std::fs::read_dir(dir).map_err(io(dir))? {
        let e = e.map_err(io(dir))?;
        let p = e.path();
        let m = std::fs::symlink_metadata(&p).map_err(io(&p))?;
        let q = prev.join(e.file_name());
        let Ok(n) = std::fs::symlink_metadata(&q) else {
            continue;
        };
        if m.file_type().is_dir() {
            if n.file_type().is_dir() {
                share_in(&p, &q, tmp)?;
            }
            continue;
        }
        if !m.file_type().is_file() || m.nlink() != 1 || m.len() == 0 {
            continue;
        }
        let same_meta = n.file_type().is_file()
            && n.len() == m.len()
            && n.mode() == m.mode()
            && n.uid() == m.uid()
            && n.gid() == m.gid()
            && n.mtime() == m.mtime()
            // A file that went through a tar stream (the archive way) keeps whole seconds only:
            // the same file, kept before with its fraction, is still the same.
            && (n.mtime_nsec() == m.mtime_nsec() || n.mtime_nsec() == 0 || m.mtime_nsec() == 0);
        if !same_meta || has_xattrs(&p) || has_xattrs(&q) {
            continue;
        }
        if !same_bytes(&p, &q).map_err(io(&p))? {
            continue;
        }
        let _ = std::fs::remove_file(tmp);
        if std::fs::hard_link(&q, tmp).is_err() {
            // Another file system, or the link count is at its limit: stored twice, still right.
            continue;
        }
        std::fs::rename(tmp, &p).map_err(io(&p))?;
    }
    Ok(())
}

/// Removes version `k`'s folder (and any half-made one).
pub fn remove(data: &Path, name: &str, k: u32) -> Result<()> {
    let fin = version_dir(data, name, k);
    super::archive::remove_items(data, name, k)?;
    for p in [
        fin.with_extension("moved"),
        fin.with_extension("copying"),
        fin,
    ] {
        if p.exists() {
            std::fs::remove_dir_all(&p).map_err(io(&p))?;
        }
    }
    Ok(())
}

/// Removes every version folder of `name`.
pub fn remove_all(data: &Path, name: &str) -> Result<()> {
    let p = root(data).join(name);
    if p.exists() {
        std::fs::remove_dir_all(&p).map_err(io(&p))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(p: &Path, s: &str) {
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, s).unwrap();
    }

    #[test]
    fn room() {
        let gb = 1_000_000_000u64;
        assert!(fits(10 * gb, 50 * gb, 100 * gb));
        assert!(!fits(10 * gb, 10 * gb, 100 * gb), "1 % stays spare");
        assert!(!fits(1, 60 << 20, 1 << 30), "at least 64 MiB stay spare");
        // The real file system answers.
        assert!(fs_space(Path::new("/")).is_some_and(|(free, used)| free + used > 0));
        assert!(fs_space(Path::new("/no/such/place")).is_none());
    }

    /// On a real, small file system (a 100 MiB tmpfs; root, as CI runs): a copy that would not
    /// leave room is refused with the sizes before anything is stopped; a small one passes.
    #[test]
    fn a_copy_without_room_is_refused() {
        let t = tempfile::tempdir().unwrap();
        let m = t.path().join("fs");
        std::fs::create_dir(&m).unwrap();
        let mounted = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=100m", "tmpfs"])
            .arg(&m)
            .status()
            .is_ok_and(|s| s.success());
        if !mounted {
            assert_ne!(
                unsafe { libc::geteuid() },
                0,
                "root could not mount a tmpfs"
            );
            eprintln!("skipped: mounting a tmpfs needs root");
            return;
        }
        let r = (|| {
            let up = m.join("upper");
            write(&up.join("small"), "s");
            block_on(check_room("x", &up, &m))?;
            std::fs::write(up.join("big"), vec![7u8; 60 << 20]).unwrap();
            block_on(check_room("x", &up, &m))
        })();
        let _ = std::process::Command::new("umount").arg(&m).status();
        let e = r.unwrap_err().to_string();
        assert!(
            e.contains("Nothing was stopped") && e.contains("MB free"),
            "{e}"
        );
    }

    #[test]
    fn ids() {
        assert_eq!(parent_of(&snapshot_id("sha256:ab")), Some("sha256:ab"));
        assert_eq!(parent_of("sha256:ab"), None);
    }

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(f)
    }

    /// A version's upper directory is moved in (same file system) and shared with the folder
    /// before; saving again finds it done; a half-made copy is redone; removal takes it all.
    #[test]
    fn save_moves_shares_and_repeats() {
        let t = tempfile::tempdir().unwrap();
        let data = t.path().join("data");
        let big = "b".repeat(200_000);
        let up1 = t.path().join("up1");
        write(&up1.join("big"), &big);
        let b1 = block_on(save(&data, "n", 1, Some(up1.clone()), None)).unwrap();
        assert!(!up1.exists(), "moved, not copied");
        assert!(b1 >= 200_000);
        let v1 = version_dir(&data, "n", 1);
        // Version 2 kept the big file as it was (cp -a keeps the times) and added one.
        let up2 = t.path().join("up2");
        std::fs::create_dir_all(&up2).unwrap();
        let cp = std::process::Command::new("cp")
            .arg("-a")
            .arg(v1.join("big"))
            .arg(up2.join("big"))
            .status()
            .unwrap();
        assert!(cp.success());
        write(&up2.join("new"), "n");
        // A copy a crash left half-made is redone.
        std::fs::create_dir_all(version_dir(&data, "n", 2).with_extension("copying")).unwrap();
        let b2 = block_on(save(&data, "n", 2, Some(up2), Some(v1.clone()))).unwrap();
        assert!(b2 < 100_000, "the big file is shared: {b2}");
        let v2 = version_dir(&data, "n", 2);
        assert!(!v2.with_extension("copying").exists());
        assert_eq!(
            std::fs::metadata(v1.join("big")).unwrap().ino(),
            std::fs::metadata(v2.join("big")).unwrap().ino()
        );
        // Done already: the same answer, with no upper directory needed.
        assert_eq!(
            block_on(save(&data, "n", 2, None, Some(v1.clone()))).unwrap(),
            b2
        );
        // Nothing anywhere: the files are gone, said so.
        let e = block_on(save(&data, "n", 3, None, None)).unwrap_err();
        assert!(matches!(e, CoreError::FilesGone { version: 3, .. }), "{e}");
        remove(&data, "n", 1).unwrap();
        assert_eq!(std::fs::read_to_string(v2.join("big")).unwrap(), big);
        assert!(unique_bytes(&v2, None).unwrap() >= 200_000);
        remove_all(&data, "n").unwrap();
        assert!(!v2.exists());
    }

    /// Unchanged files become links to the version before; changed, new or re-timed ones stay
    /// their own; the bytes counted are only this version's.
    #[test]
    fn sharing_links_only_unchanged_files() {
        let t = tempfile::tempdir().unwrap();
        let (a, b) = (t.path().join("a"), t.path().join("b"));
        let big = "x".repeat(100_000);
        write(&a.join("same"), &big);
        write(&a.join("d/changed"), "one");
        write(&a.join("retimed"), "r");
        write(&b.join("d/changed"), "two");
        write(&b.join("new"), &big);
        write(&b.join("retimed"), "r");
        let old = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1000);
        std::fs::File::options()
            .write(true)
            .open(b.join("retimed"))
            .unwrap()
            .set_times(std::fs::FileTimes::new().set_modified(old))
            .unwrap();
        // Same bytes and times: copied as cp -a would.
        std::fs::copy(a.join("same"), b.join("same")).unwrap();
        let m = std::fs::metadata(a.join("same")).unwrap();
        let times = std::fs::FileTimes::new().set_modified(m.modified().unwrap());
        std::fs::File::options()
            .write(true)
            .open(b.join("same"))
            .unwrap()
            .set_times(times)
            .unwrap();
        // The same file through a tar stream: its time in whole seconds.
        let set = |p: &Path, t: std::time::SystemTime| {
            std::fs::File::options()
                .write(true)
                .open(p)
                .unwrap()
                .set_times(std::fs::FileTimes::new().set_modified(t))
                .unwrap();
        };
        write(&a.join("tarred"), &big);
        write(&b.join("tarred"), &big);
        let secs = std::time::UNIX_EPOCH + std::time::Duration::from_secs(2000);
        set(
            &a.join("tarred"),
            secs + std::time::Duration::from_millis(250),
        );
        set(&b.join("tarred"), secs);
        let before = unique_bytes(&b, Some(&a)).unwrap();
        share(&b, Some(&a), &t.path().join("scratch")).unwrap();
        let ino = |p: &Path| std::fs::metadata(p).unwrap().ino();
        assert_eq!(ino(&a.join("same")), ino(&b.join("same")));
        assert_eq!(ino(&a.join("tarred")), ino(&b.join("tarred")));
        assert_ne!(ino(&a.join("d/changed")), ino(&b.join("d/changed")));
        assert_ne!(ino(&a.join("retimed")), ino(&b.join("retimed")));
        assert_eq!(std::fs::read_to_string(b.join("d/changed")).unwrap(), "two");
        let after = unique_bytes(&b, Some(&a)).unwrap();
        assert!(
            after + 190_000 < before,
            "the shared files no longer count: {before} → {after}"
        );
        assert!(!t.path().join("scratch").exists());
        // A folder that is a symbolic link in the version before is not followed.
        let outside = t.path().join("outside");
        write(&outside.join("f"), &big);
        std::os::unix::fs::symlink(&outside, a.join("l")).unwrap();
        std::fs::create_dir_all(b.join("l")).unwrap();
        std::fs::copy(outside.join("f"), b.join("l/f")).unwrap();
        let m = std::fs::metadata(outside.join("f")).unwrap();
        std::fs::File::options()
            .write(true)
            .open(b.join("l/f"))
            .unwrap()
            .set_times(std::fs::FileTimes::new().set_modified(m.modified().unwrap()))
            .unwrap();
        share(&b, Some(&a), &t.path().join("scratch")).unwrap();
        assert_ne!(ino(&outside.join("f")), ino(&b.join("l/f")));
        // No version before: nothing changes.
        share(&a, None, &t.path().join("scratch")).unwrap();
        assert_eq!(std::fs::read_to_string(a.join("d/changed")).unwrap(), "one");
    }
}
