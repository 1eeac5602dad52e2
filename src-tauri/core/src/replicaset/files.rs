//! A version's files, carried through the Docker API only, so it works the same on every engine a
//! lab runs: overlay2, the containerd image store, vfs, btrfs, zfs, rootless.
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
    CommitContainerOptions, ListVolumesOptions, RemoveImageOptions, RemoveVolumeOptions,
};

use super::spec::LABEL_RS;
use crate::docker::{tolerate, DockerAdapter};
use crate::{CoreError, Result};

/// The repository of every version snapshot; the tag is `<name>-<version>`.
pub const SNAPSHOT_REPO: &str = "gpudeck-snapshot";

/// Versions are refused past this many image layers (overlay2 stacks at most 128 lower layers;
/// each version adds one). Plenty for hundreds of patches of one chain: a rollback starts a new
/// chain from an older version.
pub const MAX_LAYERS: usize = 120;

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

/// Commits the (stopped) container `id` as the snapshot of `name`'s version `version`: the image
/// id and the bytes of the layer it added (what this version changed).
pub async fn commit_snapshot(
    d: &DockerAdapter,
    id: &str,
    name: &str,
    version: u32,
) -> Result<(String, u64)> {
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
            ContainerConfig::default(),
        )
        .await?;
    Ok((r.id.clone(), top_layer_bytes(d, &r.id).await?))
}

/// The size of the newest layer of an image (`docker history`'s first row).
pub async fn top_layer_bytes(d: &DockerAdapter, image: &str) -> Result<u64> {
    let h = d.client().image_history(image).await?;
    Ok(h.first().map(|r| r.size.max(0) as u64).unwrap_or(0))
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

/// Checks that a chain of `layers` can take one more version.
pub fn check_layers(name: &str, layers: usize) -> Result<()> {
    if layers + 1 > MAX_LAYERS {
        return Err(CoreError::RsState {
            name: name.into(),
            state: format!("{layers} image layers deep"),
            hint: format!(
                "a new version would pass {MAX_LAYERS} layers, the most an engine stacks safely. Roll back to an earlier version (a shorter chain), or commit it to an image (`gpudeck rs commit`) and run a new replicaSet from that image. Nothing was stopped."
            ),
        });
    }
    Ok(())
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
    fn layer_limit() {
        assert!(check_layers("x", MAX_LAYERS - 1).is_ok());
        let e = check_layers("x", MAX_LAYERS).unwrap_err().to_string();
        assert!(e.contains("Nothing was stopped"), "{e}");
    }
}
