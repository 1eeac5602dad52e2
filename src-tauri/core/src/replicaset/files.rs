//! The layer way: a version's files, carried through the Docker API only, so it works the same on
//! every engine a lab runs: overlay2, the containerd image store, vfs, btrfs, zfs, rootless. It
//! is used where the archive way (`archive`) cannot say what a container did (it deleted image
//! files) and wherever `GPUDECK_CARRY=layers` asks for it.
//!
//! When version k is replaced, its stopped container is committed to the image
//! `gpudeck-snapshot:<name>-<k>`: Docker stores only what the container changed on top of the
//! image it was created from (deleted files as whiteouts), so every version's files are stored
//! once, as one layer, shared by the versions after it. The next version is created from that
//! image's id; a rollback to k is created from k's. The tag keeps the image from `docker image
//! prune`; GPU Deck removes it with the replicaSet (or `rs prune`).
//!
//! Paths the image declares as `VOLUME` (a database's data folder) are not part of a container's
//! layer: each gets a named volume of the replicaSet's own, mounted again by every version, so
//! their data is carried too and nothing is left orphaned.

use std::collections::HashMap;

use bollard::models::ContainerConfig;
use bollard::query_parameters::{
    CommitContainerOptions, ListImagesOptions, ListVolumesOptions, RemoveImageOptions,
    RemoveVolumeOptions,
};

use super::spec::LABEL_RS;
use crate::docker::{tolerate, DockerAdapter};
use crate::{CoreError, Result};

/// The repository of every version snapshot; the tag is `<name>-<version>`.
pub const SNAPSHOT_REPO: &str = "gpudeck-snapshot";

/// A version's snapshot is flattened into one layer when committing would pass this many image
/// layers (overlay2 stacks at most 128; each version adds one). Flattening copies the whole file
/// system once (the cost is shown: that version's files are its full size).
pub const MAX_LAYERS: usize = 120;

/// The layer limit in force: tests lower it (`GPUDECK_MAX_LAYERS`, test builds only).
pub fn max_layers() -> usize {
    #[cfg(feature = "crash-points")]
    if let Some(n) = std::env::var("GPUDECK_MAX_LAYERS")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        return n;
    }
    MAX_LAYERS
}

pub fn snapshot_ref(name: &str, version: u32) -> String {
    format!("{SNAPSHOT_REPO}:{name}-{version}")
}

/// The named volume that holds an image `VOLUME` path of a replicaSet, the same for every version.
pub fn state_volume(name: &str, path: &str) -> String {
    // FNV-1a: stable across builds and platforms, and short.
    let mut h: u32 = 0x811c_9dc5;
    for b in path.bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    format!("gpudeck-{name}-{h:08x}")
}

/// What an image is, as a replicaSet version needs it.
#[derive(Debug, Clone, Default)]
pub struct ImageFacts {
    pub id: String,
    pub layers: usize,
    /// The paths it declares with `VOLUME`.
    pub volumes: Vec<String>,
}

pub async fn image_facts(d: &DockerAdapter, image: &str) -> Result<Option<ImageFacts>> {
    let i = tolerate(d.client().inspect_image(image).await, 404)?;
    Ok(i.map(|i| ImageFacts {
        id: i.id.unwrap_or_default(),
        layers: i
            .root_fs
            .and_then(|r| r.layers)
            .map(|l| l.len())
            .unwrap_or(0),
        volumes: i.config.and_then(|c| c.volumes).unwrap_or_default(),
    }))
}

/// Commits the (stopped) container `id` as the snapshot of `name`'s version `version`, with the
/// commit's env given (`DockerAdapter::commit_env` of the container whose files these are): the
/// image id and the bytes of the layer it added (what this version changed).
async fn commit_snapshot_with(
    d: &DockerAdapter,
    id: &str,
    name: &str,
    version: u32,
    env: Vec<String>,
) -> Result<(String, u64)> {
    let snap = commit_files_with(d, id, name, version, env).await?;
    let bytes = top_layer_bytes(d, &snap).await?;
    Ok((snap, bytes))
}

/// A snapshot without the size (which a caller in a hurry reads later).
pub async fn commit_files(d: &DockerAdapter, id: &str, name: &str, version: u32) -> Result<String> {
    // No value given at run (a token, a catalog secret) is written into the snapshot's config.
    let env = d.commit_env(id).await?;
    commit_files_with(d, id, name, version, env).await
}

async fn commit_files_with(
    d: &DockerAdapter,
    id: &str,
    name: &str,
    version: u32,
    env: Vec<String>,
) -> Result<String> {
    let r = d
        .client()
        .commit_container(
            CommitContainerOptions {
                container: Some(id.to_string()),
                repo: Some(SNAPSHOT_REPO.to_string()),
                tag: Some(format!("{name}-{version}")),
                comment: Some(format!("GPU Deck: the files of {name}-{version}")),
                pause: false,
                ..Default::default()
            },
            ContainerConfig {
                env: Some(env),
                ..Default::default()
            },
        )
        .await
        .map_err(|e| {
            let e = e.to_string();
            if e.to_lowercase().contains("no space left") {
                CoreError::RsState {
                    name: name.into(),
                    state: "short of disk space for its files".into(),
                    hint: format!("Docker ran out of disk space keeping them ({e}). It was put back as it was. Free some space (`gpudeck rs prune`, `docker system prune`), then try again."),
                }
            } else {
                CoreError::Docker(e)
            }
        })?;
    Ok(r.id)
}

/// What the layer way needs free where Docker keeps its data to commit a container whose
/// changes take `rw` bytes, on a file system of `rootfs` bytes, and create the next version from
/// the commit.
pub fn layer_need(driver: &str, rw: u64, rootfs: u64) -> u64 {
    match driver {
        // vfs keeps every layer and container as a full copy: the committed layer, then the new
        // container's init and writable layers.
        "vfs" => rootfs.saturating_mul(3),
        // Elsewhere only the changes are stored again: the layer (and, in the containerd image
        // store, its compressed blob beside it).
        _ => rw.saturating_mul(2),
    }
}

/// Checks, before anything is stopped, that committing the container `id` of `name` and
/// creating the next version from it fits where the engine keeps its data. Not checked where
/// that folder is out of reach (an engine on another machine) or the engine does not count a
/// container's files.
pub async fn check_room(d: &DockerAdapter, name: &str, id: &str) -> Result<()> {
    let info = d.info().await?;
    let Some(root) = info.docker_root_dir else {
        return Ok(());
    };
    check_room_at(
        d,
        name,
        id,
        std::path::Path::new(&root),
        info.storage_driver.as_deref().unwrap_or_default(),
    )
    .await
}

/// `check_room` with the engine's data folder and storage driver given.
pub async fn check_room_at(
    d: &DockerAdapter,
    name: &str,
    id: &str,
    root: &std::path::Path,
    driver: &str,
) -> Result<()> {
    let Some((free, used)) = super::copy::fs_space(root) else {
        return Ok(());
    };
    let total = free + used;
    // A container holds no more than the file system does: when even that fits, the engine is
    // not asked to count (it walks the files).
    if super::copy::fits(layer_need(driver, used, used), free, total) {
        return Ok(());
    }
    let Some((rw, rootfs)) = d.sizes(id).await? else {
        return Ok(());
    };
    let need = layer_need(driver, rw, rootfs);
    if super::copy::fits(need, free, total) {
        return Ok(());
    }
    Err(CoreError::RsState {
        name: name.into(),
        state: "short of disk space for its files".into(),
        hint: format!(
            "keeping its files for the new version needs {} MB free where Docker keeps its data ({}), and {} MB are free. Nothing was stopped. Free some space (`gpudeck rs prune`, `docker system prune`), then try again.",
            need / 1_000_000 + 1,
            root.display(),
            free / 1_000_000
        ),
    })
}

/// The disk the newest layer of an image takes: `docker history`'s first row (its files). On the
/// containerd image store the engine also keeps that layer's compressed blob beside its unpacked
/// files (twice the size for data that does not compress): there it is what the images list
/// counts for the image beyond its parent (the next row of its history), never less than the
/// files; where the parent is not a local image, the files alone.
pub async fn top_layer_bytes(d: &DockerAdapter, image: &str) -> Result<u64> {
    let h = d.client().image_history(image).await?;
    let files = h.first().map(|r| r.size.max(0) as u64).unwrap_or(0);
    let (Some(me), Some(parent)) = (h.first(), h.get(1)) else {
        return Ok(files);
    };
    if !d.info().await?.containerd_store {
        return Ok(files);
    }
    let list = d
        .client()
        .list_images(Some(ListImagesOptions {
            all: true,
            ..Default::default()
        }))
        .await?;
    let size_of = |id: &str| {
        list.iter()
            .find(|i| i.id == id)
            .map(|i| i.size.max(0) as u64)
    };
    Ok(with_blob(files, size_of(&me.id), size_of(&parent.id)))
}

/// A layer's files, or what the images list says it adds to its parent where that is more.
fn with_blob(files: u64, listed: Option<u64>, parent_listed: Option<u64>) -> u64 {
    match (listed, parent_listed) {
        (Some(a), Some(b)) => a.saturating_sub(b).max(files),
        _ => files,
    }
}

/// Removes a version's snapshot tag. The image goes with it unless a newer version's image or a
/// container builds on it (then its layer stays until they go). Returns whether the tag is gone
/// now (removed, or gone already); `false` when it stays because a container uses that image.
pub async fn remove_snapshot(d: &DockerAdapter, name: &str, version: u32) -> Result<bool> {
    let r = d
        .client()
        .remove_image(
            &snapshot_ref(name, version),
            Some(RemoveImageOptions {
                force: false,
                noprune: false,
                platforms: None,
            }),
            None,
        )
        .await;
    match r {
        Ok(_) => Ok(true),
        Err(bollard::errors::Error::DockerResponseServerError {
            status_code: 404, ..
        }) => Ok(true),
        // A container still uses it (the current version is built on it): the tag stays, so
        // the image is never left dangling under a container.
        Err(bollard::errors::Error::DockerResponseServerError {
            status_code: 409, ..
        }) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Makes sure `name`'s volume for an image `VOLUME` path exists (labelled as the replicaSet's).
pub async fn ensure_state_volume(d: &DockerAdapter, name: &str, path: &str) -> Result<String> {
    let vol = state_volume(name, path);
    if tolerate(d.client().inspect_volume(&vol).await, 404)?.is_none() {
        d.client()
            .create_volume(bollard::models::VolumeCreateRequest {
                name: Some(vol.clone()),
                driver: Some("local".into()),
                labels: Some(HashMap::from([
                    (LABEL_RS.to_string(), name.to_string()),
                    ("gpudeck.path".to_string(), path.to_string()),
                ])),
                ..Default::default()
            })
            .await?;
    }
    Ok(vol)
}

/// Removes the replicaSet's image-`VOLUME` volumes (with its last container gone).
pub async fn remove_state_volumes(d: &DockerAdapter, name: &str) -> Result<()> {
    let list = d
        .client()
        .list_volumes(Some(ListVolumesOptions {
            filters: Some(HashMap::from([(
                "label".to_string(),
                vec![format!("{LABEL_RS}={name}")],
            )])),
        }))
        .await?;
    for v in list.volumes.unwrap_or_default() {
        tolerate(
            d.client()
                .remove_volume(&v.name, None::<RemoveVolumeOptions>)
                .await,
            404,
        )?;
    }
    Ok(())
}

/// The host config's mounts for an image's `VOLUME` paths not already bound by the spec.
pub async fn state_mounts(
    d: &DockerAdapter,
    name: &str,
    image_volumes: &[String],
    bound: &[String],
) -> Result<Vec<bollard::models::Mount>> {
    let mut out = Vec::new();
    for path in image_volumes {
        let p = path.trim_end_matches('/');
        if bound.iter().any(|b| b.trim_end_matches('/') == p) {
            continue;
        }
        let vol = ensure_state_volume(d, name, path).await?;
        out.push(bollard::models::Mount {
            target: Some(path.clone()),
            source: Some(vol),
            typ: Some(bollard::models::MountType::VOLUME),
            ..Default::default()
        });
    }
    Ok(out)
}

/// Whether committing a container of an image with `layers` layers must be flattened instead.
pub fn must_flatten(layers: usize) -> bool {
    layers + 1 > max_layers()
}

/// Checks that a version can be created from an image of `layers` layers.
pub fn check_layers(name: &str, layers: usize) -> Result<()> {
    if layers > max_layers() {
        return Err(CoreError::RsState {
            name: name.into(),
            state: format!("{layers} image layers deep"),
            hint: format!(
                "that image has more than {} layers, the most GPU Deck stacks. Roll back to another version, or commit it to an image (`gpudeck rs commit`) and run a new replicaSet from that image. Nothing was stopped.", max_layers()
            ),
        });
    }
    Ok(())
}

/// Commits the (stopped) container `id` as `name`'s version `version` flattened into one layer:
/// its whole file system exported and imported as a fresh image (`docker export | docker
/// import`, streamed through the engine's socket, never held in memory), then given the
/// container's configuration back (a container of it committed once more). Deleted files are
/// simply absent. Returns the snapshot id and the bytes it stores (the whole file system).
pub async fn flatten_snapshot(
    d: &DockerAdapter,
    id: &str,
    name: &str,
    version: u32,
) -> Result<(String, u64)> {
    use futures_util::StreamExt;
    let config = d
        .client()
        .inspect_container(
            id,
            None::<bollard::query_parameters::InspectContainerOptions>,
        )
        .await?
        .config
        .unwrap_or_default();
    // The env as a commit of the original would have it: the flat image has no config of its
    // own to keep values from.
    let env = d.commit_env(id).await?;
    let flat_tag = format!("{name}-{version}-flat");
    let export = d.client().export_container(id);
    let flat = import_stream(d, export.map(|r| r.map_err(CoreError::from)), &flat_tag).await?;
    let temp = format!("gpudeck-flatten-{name}-{version}");
    let _ = d.remove(&temp).await;
    let body = bollard::models::ContainerCreateBody {
        image: Some(flat.clone()),
        user: config.user,
        exposed_ports: config.exposed_ports,
        env: config.env,
        cmd: config.cmd,
        healthcheck: config.healthcheck,
        volumes: config.volumes,
        working_dir: config.working_dir,
        entrypoint: config.entrypoint,
        labels: config.labels,
        stop_signal: config.stop_signal,
        shell: config.shell,
        ..Default::default()
    };
    let made = d
        .client()
        .create_container(
            Some(bollard::query_parameters::CreateContainerOptions {
                name: Some(temp.clone()),
                ..Default::default()
            }),
            body,
        )
        .await;
    let result = match made {
        Ok(c) => commit_snapshot_with(d, &c.id, name, version, env).await,
        Err(e) => Err(e.into()),
    };
    let _ = d.remove(&temp).await;
    // The flat image stays as the snapshot's parent; only its tag goes.
    let _ = d
        .client()
        .remove_image(
            &format!("{SNAPSHOT_REPO}:{flat_tag}"),
            None::<RemoveImageOptions>,
            None,
        )
        .await;
    let (snap, _) = result?;
    let bytes = d
        .client()
        .image_history(&snap)
        .await?
        .iter()
        .map(|r| r.size.max(0) as u64)
        .take(2)
        .sum();
    Ok((snap, bytes))
}

/// `POST /images/create?fromSrc=-` with the tar streamed as the chunked body, on the engine's
/// own socket (bollard's import holds the whole archive in memory). The new image's id.
async fn import_stream(
    d: &DockerAdapter,
    mut tar: impl futures_util::Stream<Item = Result<bytes::Bytes>> + Unpin,
    tag: &str,
) -> Result<String> {
    use futures_util::StreamExt;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut conn = d.raw_connection().await?;
    let head = format!(
        "POST /images/create?fromSrc=-&repo={SNAPSHOT_REPO}&tag={tag} HTTP/1.1\r\nHost: docker\r\nContent-Type: application/x-tar\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    );
    let io = |e: std::io::Error| CoreError::Docker(format!("streaming the flattened files: {e}"));
    conn.write_all(head.as_bytes()).await.map_err(io)?;
    while let Some(chunk) = tar.next().await {
        let chunk = chunk?;
        if chunk.is_empty() {
            continue;
        }
        conn.write_all(format!("{:x}\r\n", chunk.len()).as_bytes())
            .await
            .map_err(io)?;
        conn.write_all(&chunk).await.map_err(io)?;
        conn.write_all(b"\r\n").await.map_err(io)?;
    }
    conn.write_all(b"0\r\n\r\n").await.map_err(io)?;
    let mut answer = Vec::new();
    conn.read_to_end(&mut answer).await.map_err(io)?;
    let text = String::from_utf8_lossy(&answer);
    let status = text.lines().next().unwrap_or_default().to_string();
    if !status.contains(" 200") {
        let message = text
            .lines()
            .find(|l| l.contains("message"))
            .unwrap_or_default();
        return Err(CoreError::Docker(format!(
            "the engine refused the flattened files ({status}): {message}"
        )));
    }
    if let Some(i) = text.find("\"error\"") {
        let line = text[i..].lines().next().unwrap_or_default();
        return Err(CoreError::Docker(format!(
            "the engine refused the flattened files: {line}"
        )));
    }
    // The last `{"status":"sha256:…"}` names the image.
    text.rmatch_indices("sha256:")
        .next()
        .map(|(i, _)| {
            text[i..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == ':')
                .collect::<String>()
        })
        .filter(|id| id.len() == 71)
        .ok_or_else(|| {
            CoreError::Docker(format!(
                "the engine's answer to the import named no image: {}",
                text.lines().next().unwrap_or_default()
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_volume_names_are_stable_and_distinct() {
        assert_eq!(
            state_volume("pg", "/var/lib/postgresql/data"),
            state_volume("pg", "/var/lib/postgresql/data")
        );
        assert_ne!(state_volume("pg", "/a"), state_volume("pg", "/b"));
        assert_ne!(state_volume("pg", "/a"), state_volume("ph", "/a"));
        assert!(state_volume("pg", "/a").starts_with("gpudeck-pg-"));
    }

    #[test]
    fn the_layer_way_needs_the_changes_twice_or_three_full_copies_on_vfs() {
        let mb = 1u64 << 20;
        assert_eq!(layer_need("overlay2", 10 * mb, 500 * mb), 20 * mb);
        assert_eq!(layer_need("overlayfs", 10 * mb, 500 * mb), 20 * mb);
        assert_eq!(layer_need("btrfs", 0, 500 * mb), 0);
        assert_eq!(layer_need("vfs", 10 * mb, 500 * mb), 1500 * mb);
        assert_eq!(layer_need("vfs", 0, u64::MAX), u64::MAX, "no overflow");
    }

    #[test]
    fn a_layer_counts_its_blob_where_the_images_list_says_so() {
        // Docker 26's containerd store: 3.15 MB of random files, 6.31 MB more than the parent.
        assert_eq!(
            with_blob(3_149_824, Some(19_902_834), Some(13_593_468)),
            6_309_366
        );
        assert_eq!(with_blob(3_149_824, Some(100), Some(200)), 3_149_824);
        assert_eq!(with_blob(3_149_824, None, Some(200)), 3_149_824);
        assert_eq!(with_blob(3_149_824, Some(100), None), 3_149_824);
    }

    #[test]
    fn layer_limit() {
        assert!(check_layers("x", MAX_LAYERS).is_ok());
        let e = check_layers("x", MAX_LAYERS + 1).unwrap_err().to_string();
        assert!(e.contains("Nothing was stopped"), "{e}");
        assert!(!must_flatten(MAX_LAYERS - 1));
        assert!(must_flatten(MAX_LAYERS));
    }
}
