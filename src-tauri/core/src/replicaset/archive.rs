//! The archive way of carrying a version's files, through the Docker API only (every engine:
//! the containerd image store, vfs, btrfs, zfs, rootless), for a container that added and changed
//! files but deleted none of its image's.
//!
//! The engine lists what the stopped (or frozen) old container changed (`GET /changes`); each
//! changed path not below another one is read from it as a tar stream (`GET /archive`) and
//! written, as it flows, into the new container, created from the *same* image, before its first
//! start (`PUT /archive`). Nothing is committed: no layer is diffed, compressed, unpacked or
//! stacked (the containerd image store gzips a commit and unpacks it again; vfs copies the whole
//! image for it), so the new version runs sooner than with `docker commit` + `docker run`, and
//! the chain of image layers does not grow. A folder whose own metadata changed (a `chmod`, or
//! only because files in it changed) carries just its own entry.
//!
//! The old version's files are kept after the reply, as the copy way keeps them: the same paths
//! read again into `version-files/<name>/<k>`, files unchanged since the version before shared
//! with it (hard links), with the list of paths beside it (`<k>.items`) so that a rollback writes
//! back exactly those (on overlay2, where `GPUDECK_CARRY=archive` chooses this way, the old
//! container's upper directory is moved there instead, as the copy way keeps it). A version kept
//! as a folder is recorded with the snapshot id `dir:<image id>`.
//!
//! A tar stream cannot delete: a container that deleted a file of its image, changed more
//! separate paths than `MAX_ITEMS` (one request each), or has a changed name that is not UTF-8
//! (which the engine's list cannot name), is carried the layer way (`files`).
//! Paths under a mount (binds, volumes of either version) are never read or written: the engine
//! would read or write the mounted data.

use std::path::{Path, PathBuf};

use bollard::models::ChangeType;
use bollard::query_parameters::{DownloadFromContainerOptions, UploadToContainerOptions};
use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};

use crate::docker::DockerAdapter;
use crate::{CoreError, Result};

/// More separate changed paths than this: the layer way (each path is a request each way).
pub const MAX_ITEMS: usize = 64;

/// Paths the engine provides to every container: never carried.
const ENGINE_PATHS: [&str; 6] = [
    "/dev",
    "/proc",
    "/sys",
    "/etc/hostname",
    "/etc/hosts",
    "/etc/resolv.conf",
];

/// Whether the archive way may be used (`GPUDECK_CARRY=layers` turns it off).
pub fn enabled() -> bool {
    std::env::var("GPUDECK_CARRY").map_or(true, |v| v != "layers")
}

/// One changed path to carry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Item {
    /// The path and everything below it.
    Whole(String),
    /// Only the folder's own entry (owner, mode, times): what changed below it is listed apart.
    Head(String),
}

impl Item {
    pub fn path(&self) -> &str {
        match self {
            Item::Whole(p) | Item::Head(p) => p,
        }
    }
}

/// Why a container's files go the layer way instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Skip {
    Deleted(String),
    TooMany(usize),
    /// A name that is not UTF-8: the engine's JSON list replaces its bytes, so it could not be
    /// asked for by name.
    Unnamed(String),
}

impl std::fmt::Display for Skip {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Skip::Deleted(p) => write!(f, "it deleted {p}, which a tar stream cannot"),
            Skip::TooMany(n) => write!(f, "{n} separate paths changed (more than {MAX_ITEMS})"),
            Skip::Unnamed(p) => write!(f, "{p} has a name that is not UTF-8"),
        }
    }
}

fn norm(p: &str) -> String {
    let t = p.trim_end_matches('/');
    if t.starts_with('/') {
        t.to_string()
    } else {
        format!("/{t}")
    }
}

fn below(p: &str, dir: &str) -> bool {
    p.len() > dir.len() && p.starts_with(dir) && p.as_bytes()[dir.len()] == b'/'
}

/// The folder a path sits in ("/" for a top-level one).
pub fn parent(p: &str) -> &str {
    match p.rfind('/') {
        Some(0) | None => "/",
        Some(i) => &p[..i],
    }
}

fn base(p: &str) -> &str {
    p.rsplit('/').next().unwrap_or(p)
}

/// What to carry for a container with these changes, mounts of the old and new version at
/// `mounts`. Added heads come first (a new folder that holds a mount, so that what goes in it
/// has somewhere to go), then whole paths, then changed folders' own entries (after what was
/// written in them).
pub fn plan(
    changes: &[(String, ChangeType)],
    mounts: &[String],
) -> std::result::Result<Vec<Item>, Skip> {
    let mut ch: Vec<(String, ChangeType)> = changes.iter().map(|(p, k)| (norm(p), *k)).collect();
    ch.sort_by(|a, b| a.0.cmp(&b.0));
    if let Some((p, _)) = ch.iter().find(|(_, k)| *k == ChangeType::_2) {
        return Err(Skip::Deleted(p.clone()));
    }
    if let Some((p, _)) = ch.iter().find(|(p, _)| p.contains('\u{FFFD}')) {
        return Err(Skip::Unnamed(p.clone()));
    }
    let mut fenced: Vec<String> = mounts.iter().map(|m| norm(m)).collect();
    fenced.extend(ENGINE_PATHS.iter().map(|p| p.to_string()));
    fenced.retain(|m| m != "/");
    let (mut first, mut whole, mut last) = (Vec::new(), Vec::<String>::new(), Vec::new());
    for (i, (p, kind)) in ch.iter().enumerate() {
        if fenced.iter().any(|m| p == m || below(p, m)) || whole.iter().any(|w| below(p, w)) {
            continue;
        }
        let holds_mount = fenced.iter().any(|m| below(m, p));
        // Sorted: anything below `p` follows it.
        let has_listed = ch[i + 1..].iter().any(|(q, _)| below(q, p));
        match kind {
            ChangeType::_1 if holds_mount => first.push(Item::Head(p.clone())),
            ChangeType::_1 => whole.push(p.clone()),
            _ if holds_mount || has_listed => last.push(Item::Head(p.clone())),
            _ => whole.push(p.clone()),
        }
    }
    let n = first.len() + whole.len() + last.len();
    if n > MAX_ITEMS {
        return Err(Skip::TooMany(n));
    }
    last.reverse();
    Ok(first
        .into_iter()
        .chain(whole.into_iter().map(Item::Whole))
        .chain(last)
        .collect())
}

/// The mount destinations of container `id`.
async fn mounts_of(d: &DockerAdapter, id: &str) -> Result<Vec<String>> {
    let c = d.client().inspect_container(id, None).await?;
    let mut out: Vec<String> = c
        .mounts
        .unwrap_or_default()
        .into_iter()
        .filter_map(|m| m.destination)
        .collect();
    if let Some(t) = c.host_config.and_then(|h| h.tmpfs) {
        out.extend(t.into_keys());
    }
    Ok(out)
}

/// The plan for carrying container `id`'s files into a new container whose mounts are `more`.
pub async fn plan_for(
    d: &DockerAdapter,
    id: &str,
    more: &[String],
) -> Result<std::result::Result<Vec<Item>, Skip>> {
    let changes = d.client().container_changes(id).await?.unwrap_or_default();
    let mut mounts = mounts_of(d, id).await?;
    mounts.extend(more.iter().cloned());
    let ch: Vec<(String, ChangeType)> = changes.into_iter().map(|c| (c.path, c.kind)).collect();
    Ok(plan(&ch, &mounts))
}

type ByteStream =
    std::pin::Pin<Box<dyn futures_util::Stream<Item = std::io::Result<Bytes>> + Send>>;

fn download(d: &DockerAdapter, id: &str, path: &str) -> ByteStream {
    Box::pin(
        d.client()
            .download_from_container(
                id,
                Some(DownloadFromContainerOptions {
                    path: path.to_string(),
                }),
            )
            .map_err(std::io::Error::other),
    )
}

async fn upload(d: &DockerAdapter, id: &str, dir: &str, body: ByteStream) -> Result<()> {
    d.client()
        .upload_to_container(
            id,
            Some(UploadToContainerOptions {
                path: dir.to_string(),
                ..Default::default()
            }),
            bollard::body_try_stream(body),
        )
        .await
        .map_err(|e| CoreError::Docker(format!("writing into {dir} of the new container: {e}")))
}

fn octal(field: &[u8]) -> u64 {
    field
        .iter()
        .skip_while(|b| **b == b' ')
        .take_while(|b| (b'0'..=b'7').contains(b))
        .fold(0, |n, b| n * 8 + u64::from(b - b'0'))
}

/// The bytes of the first entry of a tar stream (with the extension headers before it: long
/// names, extended attributes), ended as an archive of its own; `None` while `buf` holds less.
pub fn first_entry(buf: &[u8]) -> std::result::Result<Option<Vec<u8>>, String> {
    let mut at = 0;
    loop {
        let Some(h) = buf.get(at..at + 512) else {
            return Ok(None);
        };
        if h.iter().all(|b| *b == 0) {
            return Err("the engine sent an empty archive".into());
        }
        let size = octal(&h[124..136]);
        let end = at + 512 + size.div_ceil(512) as usize * 512;
        if buf.len() < end {
            return Ok(None);
        }
        at = end;
        if !matches!(h[156], b'x' | b'g' | b'L' | b'K') {
            let mut out = buf[..end].to_vec();
            out.extend_from_slice(&[0u8; 1024]);
            return Ok(Some(out));
        }
        if at > 1 << 20 {
            return Err("the first entry's headers pass 1 MiB".into());
        }
    }
}

/// A folder's own entry, read from container `id`.
async fn head(d: &DockerAdapter, id: &str, path: &str) -> Result<Vec<u8>> {
    let mut s = download(d, id, path);
    let mut buf = Vec::new();
    while let Some(chunk) = s.next().await {
        buf.extend_from_slice(&chunk.map_err(|e| CoreError::Docker(e.to_string()))?);
        match first_entry(&buf) {
            Ok(Some(e)) => return Ok(e),
            Ok(None) => {}
            Err(why) => return Err(CoreError::Docker(format!("reading {path}: {why}"))),
        }
    }
    Err(CoreError::Docker(format!(
        "reading {path}: the archive ended early"
    )))
}

/// What `it` takes from container `id`: the whole path's stream, or its folder's own entry.
async fn read(d: &DockerAdapter, id: &str, it: &Item) -> Result<ByteStream> {
    Ok(match it {
        Item::Whole(p) => download(d, id, p),
        Item::Head(p) => {
            let entry = Bytes::from(head(d, id, p).await?);
            Box::pin(futures_util::stream::once(async move { Ok(entry) }))
        }
    })
}

/// Writes `items` of container `from` into container `to` (created, not yet started).
pub async fn carry(d: &DockerAdapter, from: &str, to: &str, items: &[Item]) -> Result<()> {
    for it in items {
        let p = it.path();
        // What went wrong reading, where it did: the write then fails only with "body error".
        let failed = std::sync::Arc::new(std::sync::Mutex::new(None::<String>));
        let f = failed.clone();
        let body: ByteStream = Box::pin(read(d, from, it).await?.inspect_err(move |e| {
            *f.lock().unwrap_or_else(|e| e.into_inner()) = Some(e.to_string());
        }));
        if let Err(e) = upload(d, to, parent(p), body).await {
            let reading = failed.lock().unwrap_or_else(|e| e.into_inner()).take();
            return Err(match reading {
                Some(r) => CoreError::Docker(format!("reading {p} from the old container: {r}")),
                None => e,
            });
        }
    }
    Ok(())
}

fn items_file(dir: &Path) -> PathBuf {
    dir.with_extension("items")
}

fn io(p: &Path) -> impl FnOnce(std::io::Error) -> CoreError + '_ {
    move |e| CoreError::io(p, e)
}

/// GNU tar, extracting into `dir` from its standard input, everything kept (owners by number,
/// modes, times, links, devices, extended attributes).
fn untar(dir: &Path) -> tokio::process::Command {
    let mut c = tokio::process::Command::new("tar");
    c.args([
        "-x",
        "-f",
        "-",
        "-p",
        "--same-owner",
        "--numeric-owner",
        "--xattrs",
        "--xattrs-include=*",
        "-C",
    ])
    .arg(dir)
    .stdin(std::process::Stdio::piped())
    .stdout(std::process::Stdio::null())
    .stderr(std::process::Stdio::piped());
    c
}

async fn extract(mut body: ByteStream, dir: &Path) -> Result<()> {
    use tokio::io::AsyncWriteExt;
    let mut child = untar(dir).spawn().map_err(io(dir))?;
    let mut stdin = child
        .stdin
        .take()
        .ok_or_else(|| CoreError::io(dir, std::io::Error::other("tar has no standard input")))?;
    let fed = async {
        while let Some(chunk) = body.next().await {
            stdin.write_all(&chunk?).await?;
        }
        stdin.shutdown().await?;
        drop(stdin);
        Ok::<_, std::io::Error>(())
    }
    .await;
    let out = child.wait_with_output().await.map_err(io(dir))?;
    fed.map_err(io(dir))?;
    if !out.status.success() {
        return Err(CoreError::Io {
            path: dir.display().to_string(),
            reason: format!(
                "extracting a container's files failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        });
    }
    Ok(())
}

/// Keeps version `k`'s files (container `id`, stopped) as `version-files/<name>/<k>`, shared
/// with `prev` where unchanged; returns the bytes this version adds. Safe to run again after a
/// crash at any point.
pub async fn save(
    d: &DockerAdapter,
    id: &str,
    data: &Path,
    name: &str,
    k: u32,
    prev: Option<PathBuf>,
) -> Result<u64> {
    let fin = super::copy::version_dir(data, name, k);
    let moved = fin.with_extension("moved");
    if !fin.is_dir() && !moved.is_dir() {
        let items = match plan_for(d, id, &[]).await? {
            Ok(items) => items,
            Err(why) => {
                return Err(CoreError::Docker(format!(
                    "{name}-{k}'s files changed after they were carried ({why})"
                )))
            }
        };
        let copying = fin.with_extension("copying");
        if copying.exists() {
            std::fs::remove_dir_all(&copying).map_err(io(&copying))?;
        }
        std::fs::create_dir_all(&copying).map_err(io(&copying))?;
        for it in &items {
            let p = it.path();
            let at = copying.join(parent(p).trim_start_matches('/'));
            std::fs::create_dir_all(&at).map_err(io(&at))?;
            extract(read(d, id, it).await?, &at).await?;
        }
        let list = serde_json::to_vec(&items).unwrap_or_default();
        let f = items_file(&fin);
        std::fs::write(&f, list).map_err(io(&f))?;
        std::fs::rename(&copying, &moved).map_err(io(&moved))?;
    }
    super::copy::save(data, name, k, None, prev).await
}

/// Whether the folder `dir` was kept this way (else the copy way, on overlay2).
pub fn kept_here(dir: &Path) -> bool {
    items_file(dir).is_file()
}

/// Writes a version's folder kept this way into container `to` (created, not yet started).
pub async fn put_folder(d: &DockerAdapter, dir: &Path, to: &str) -> Result<()> {
    let f = items_file(dir);
    let items: Vec<Item> = serde_json::from_slice(&std::fs::read(&f).map_err(io(&f))?)
        .map_err(|e| CoreError::io(&f, std::io::Error::other(e)))?;
    for it in &items {
        let p = it.path();
        let at = dir.join(parent(p).trim_start_matches('/'));
        let mut c = tokio::process::Command::new("tar");
        c.args([
            "-c",
            "-f",
            "-",
            "--format=posix",
            "--numeric-owner",
            "--xattrs",
            "--xattrs-include=*",
        ]);
        if matches!(it, Item::Head(_)) {
            c.arg("--no-recursion");
        }
        c.arg("-C")
            .arg(&at)
            .arg("--")
            .arg(base(p))
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut child = c.spawn().map_err(io(&at))?;
        let out = child.stdout.take().ok_or_else(|| {
            CoreError::io(&at, std::io::Error::other("tar has no standard output"))
        })?;
        let body: ByteStream = Box::pin(futures_util::stream::unfold(out, |mut o| async move {
            use tokio::io::AsyncReadExt;
            let mut buf = vec![0u8; 256 << 10];
            match o.read(&mut buf).await {
                Ok(0) => None,
                Ok(n) => {
                    buf.truncate(n);
                    Some((Ok(Bytes::from(buf)), o))
                }
                Err(e) => Some((Err(e), o)),
            }
        }));
        let sent = upload(d, to, parent(p), body).await;
        let done = child.wait_with_output().await.map_err(io(&at))?;
        if !done.status.success() {
            return Err(CoreError::Io {
                path: at.join(base(p)).display().to_string(),
                reason: format!(
                    "reading a version's files failed: {}",
                    String::from_utf8_lossy(&done.stderr).trim()
                ),
            });
        }
        sent?;
    }
    Ok(())
}

/// Removes the list of paths beside version `k`'s folder.
pub fn remove_items(data: &Path, name: &str, k: u32) -> Result<()> {
    let f = items_file(&super::copy::version_dir(data, name, k));
    match std::fs::remove_file(&f) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(CoreError::io(&f, e)),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(p: &str, k: u8) -> (String, ChangeType) {
        let k = match k {
            0 => ChangeType::_0,
            1 => ChangeType::_1,
            _ => ChangeType::_2,
        };
        (p.to_string(), k)
    }

    #[test]
    fn a_new_tree_is_one_path_and_changed_folders_only_their_entry() {
        let ch = [
            c("/usr", 0),
            c("/usr/lib", 0),
            c("/usr/lib/pkg", 1),
            c("/usr/lib/pkg/a.py", 1),
            c("/usr/lib/pkg/sub", 1),
            c("/usr/lib/pkg/sub/b.py", 1),
            c("/etc", 0),
            c("/etc/app.conf", 0),
            c("/data.bin", 1),
        ];
        assert_eq!(
            plan(&ch, &[]).unwrap(),
            vec![
                Item::Whole("/data.bin".into()),
                Item::Whole("/etc/app.conf".into()),
                Item::Whole("/usr/lib/pkg".into()),
                // Deepest first, after what went into them.
                Item::Head("/usr/lib".into()),
                Item::Head("/usr".into()),
                Item::Head("/etc".into()),
            ]
        );
    }

    #[test]
    fn a_deletion_or_too_many_paths_go_the_layer_way() {
        let ch = [c("/a", 1), c("/etc/passwd", 2)];
        assert_eq!(plan(&ch, &[]), Err(Skip::Deleted("/etc/passwd".into())));
        let many: Vec<_> = (0..=MAX_ITEMS).map(|i| c(&format!("/f{i}"), 1)).collect();
        assert_eq!(plan(&many, &[]), Err(Skip::TooMany(MAX_ITEMS + 1)));
        let just: Vec<_> = (0..MAX_ITEMS).map(|i| c(&format!("/f{i}"), 1)).collect();
        assert_eq!(plan(&just, &[]).unwrap().len(), MAX_ITEMS);
        let odd = [c("/data/caf\u{FFFD}", 1)];
        assert_eq!(
            plan(&odd, &[]),
            Err(Skip::Unnamed("/data/caf\u{FFFD}".into()))
        );
    }

    #[test]
    fn nothing_under_a_mount_is_read_and_a_new_folder_holding_one_is_made_first() {
        let ch = [
            c("/mnt", 1),
            c("/mnt/data", 1),
            c("/mnt/data/big", 1),
            c("/mnt/notes", 1),
            c("/workspace", 0),
            c("/workspace/x", 1),
            c("/etc", 0),
            c("/etc/hostname", 1),
            c("/dev", 0),
            c("/dev/null", 0),
        ];
        let p = plan(&ch, &["/mnt/data/".into(), "/workspace".into()]).unwrap();
        assert_eq!(
            p,
            vec![
                Item::Head("/mnt".into()),
                Item::Whole("/mnt/notes".into()),
                Item::Head("/etc".into()),
            ]
        );
    }

    #[test]
    fn a_changed_leaf_is_carried_whole_and_lookalike_names_are_not_below() {
        let ch = [c("/opt", 1), c("/opt-x", 0), c("/opt/y", 1)];
        assert_eq!(
            plan(&ch, &[]).unwrap(),
            vec![Item::Whole("/opt".into()), Item::Whole("/opt-x".into())]
        );
        assert_eq!(parent("/a"), "/");
        assert_eq!(parent("/a/b/c"), "/a/b");
        assert_eq!(base("/a/b/c"), "c");
    }

    #[test]
    fn the_first_entry_is_cut_with_its_extension_headers() {
        let mut pax = [0u8; 512];
        pax[124..135].copy_from_slice(b"00000000020");
        pax[156] = b'x';
        let mut dir = [0u8; 512];
        dir[0] = b'd';
        dir[124..135].copy_from_slice(b"00000000000");
        dir[156] = b'5';
        let mut file = [0u8; 512];
        file[124..135].copy_from_slice(b"00000000005");
        file[156] = b'0';
        let mut s = Vec::new();
        s.extend_from_slice(&pax);
        s.extend_from_slice(&[7u8; 512]);
        assert_eq!(first_entry(&s), Ok(None), "the entry has not arrived yet");
        s.extend_from_slice(&dir);
        s.extend_from_slice(&file);
        let e = first_entry(&s).unwrap().unwrap();
        assert_eq!(e.len(), 3 * 512 + 1024);
        assert_eq!(e[1024], b'd');
        assert!(e[1536..].iter().all(|b| *b == 0));
        assert!(first_entry(&[0u8; 1024]).is_err());
    }
}
