//! Images: what is on this machine (with the replicaSet versions that use it and where a committed
//! one came from), the lab's registries (browsed through the Registry v2 API, with passwords
//! sealed at rest), and pull and push through the engine with per-layer progress, as jobs.
//!
//! Snapshot images (`gpudeck-snapshot:*`, the files of replaced versions) are GPU Deck's own and
//! left out of the list; `gpudeck rs prune` reclaims them.

pub mod dockercfg;
pub mod jobs;
pub mod progress;
pub mod reference;
pub mod registry;
pub mod secrets;
pub mod store;
pub mod transfer;

use std::collections::HashMap;
use std::sync::Mutex;

use bollard::query_parameters::{ListImagesOptions, RemoveImageOptions, TagImageOptions};
use serde::{Deserialize, Serialize};

pub use reference::ImageRef;
pub use store::{ImageOrigin, ImageUse, Registry};

use crate::docker::DockerAdapter;
use crate::paths::DataDir;
use crate::replicaset::files::SNAPSHOT_REPO;
use crate::store::Store;
use crate::{CoreError, Result};

/// One local image.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema, ts_rs::TS)]
#[serde(rename_all = "camelCase")]
pub struct LocalImage {
    pub id: String,
    /// `name:tag`, none for a dangling image.
    pub tags: Vec<String>,
    pub digests: Vec<String>,
    /// Bytes on this machine's disk (shared layers counted in each image that has them).
    #[ts(type = "number")]
    pub size: u64,
    /// Seconds since the epoch.
    #[ts(type = "number")]
    pub created: i64,
    pub used_by: Vec<ImageUse>,
    pub origin: Option<ImageOrigin>,
    /// Containers of it, GPU Deck's or not.
    pub containers: i64,
}

/// One layer (a step of the image's history).
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema, ts_rs::TS)]
#[serde(rename_all = "camelCase")]
pub struct ImageLayer {
    pub created_by: String,
    #[ts(type = "number")]
    pub size: u64,
    #[ts(type = "number")]
    pub created: i64,
    pub comment: String,
}

/// `image inspect`: what a container of it would get.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema, ts_rs::TS)]
#[serde(rename_all = "camelCase")]
pub struct ImageDetail {
    pub image: LocalImage,
    pub architecture: String,
    pub os: String,
    pub env: Vec<String>,
    pub cmd: Vec<String>,
    pub entrypoint: Vec<String>,
    pub working_dir: String,
    pub user: String,
    pub labels: HashMap<String, String>,
    pub exposed_ports: Vec<String>,
    pub volumes: Vec<String>,
    pub layers: Vec<ImageLayer>,
}

/// What `image prune` did.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema, ts_rs::TS)]
#[serde(rename_all = "camelCase")]
pub struct PruneReport {
    pub removed: Vec<String>,
    /// Dangling images kept because a replicaSet version still uses them.
    pub kept: Vec<String>,
    #[ts(type = "number")]
    pub reclaimed: u64,
}

fn uses_text(uses: &[ImageUse]) -> String {
    let mut v: Vec<String> = uses
        .iter()
        .map(|u| format!("{}-{}", u.replicaset, u.version))
        .collect();
    v.dedup();
    v.join(", ")
}

type UsesById = HashMap<String, Vec<ImageUse>>;

/// Local images, through the engine.
pub struct Images<'a> {
    pub docker: &'a DockerAdapter,
    pub store: &'a Mutex<Store>,
}

impl Images<'_> {
    fn db<T>(&self, f: impl FnOnce(&Store) -> Result<T>) -> Result<T> {
        let g = self.store.lock().unwrap_or_else(|e| e.into_inner());
        f(&g)
    }

    fn uses(&self) -> Result<(UsesById, HashMap<String, ImageOrigin>)> {
        let (uses, origins) = self.db(|s| Ok((s.image_uses()?, s.image_origins()?)))?;
        let mut u: HashMap<String, Vec<ImageUse>> = HashMap::new();
        for (id, x) in uses {
            u.entry(id).or_default().push(x);
        }
        Ok((u, origins.into_iter().collect()))
    }

    /// Every image but GPU Deck's snapshots, newest first.
    pub async fn list(&self) -> Result<Vec<LocalImage>> {
        let list = self
            .docker
            .client()
            .list_images(Some(ListImagesOptions {
                all: false,
                ..Default::default()
            }))
            .await?;
        let (mut uses, origins) = self.uses()?;
        let mut out: Vec<LocalImage> = list
            .into_iter()
            .filter(|i| {
                !i.repo_tags
                    .iter()
                    .any(|t| t.starts_with(&format!("{SNAPSHOT_REPO}:")))
            })
            .map(|i| LocalImage {
                used_by: uses.remove(&i.id).unwrap_or_default(),
                origin: origins.get(&i.id).cloned(),
                tags: i
                    .repo_tags
                    .into_iter()
                    .filter(|t| t != "<none>:<none>")
                    .collect(),
                digests: i
                    .repo_digests
                    .into_iter()
                    .filter(|d| d != "<none>@<none>")
                    .collect(),
                id: i.id,
                size: i.size.max(0) as u64,
                created: i.created,
                containers: i.containers,
            })
            .collect();
        out.sort_by(|a, b| b.created.cmp(&a.created).then(a.tags.cmp(&b.tags)));
        Ok(out)
    }

    /// One image by reference or id.
    pub async fn inspect(&self, reference: &str) -> Result<ImageDetail> {
        let key = lookup_key(reference)?;
        let i = match self.docker.client().inspect_image(&key).await {
            Ok(i) => i,
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => return Err(CoreError::ImageMissing(reference.to_string())),
            Err(e) => return Err(e.into()),
        };
        let id = i.id.clone().unwrap_or_default();
        let history = self
            .docker
            .client()
            .image_history(&id)
            .await
            .unwrap_or_default();
        let (mut uses, origins) = self.uses()?;
        let c = i.config.clone().unwrap_or_default();
        let created = i.created.as_deref().and_then(chrono_secs).unwrap_or(0);
        let mut ports: Vec<String> = c
            .exposed_ports
            .clone()
            .map(|m| m.into_iter().collect())
            .unwrap_or_default();
        ports.sort();
        let mut volumes: Vec<String> = c
            .volumes
            .clone()
            .map(|m| m.into_iter().collect())
            .unwrap_or_default();
        volumes.sort();
        Ok(ImageDetail {
            image: LocalImage {
                used_by: uses.remove(&id).unwrap_or_default(),
                origin: origins.get(&id).cloned(),
                tags: i.repo_tags.clone().unwrap_or_default(),
                digests: i.repo_digests.clone().unwrap_or_default(),
                size: i.size.unwrap_or(0).max(0) as u64,
                created,
                containers: -1,
                id,
            },
            architecture: i.architecture.clone().unwrap_or_default(),
            os: i.os.clone().unwrap_or_default(),
            env: c.env.unwrap_or_default(),
            cmd: c.cmd.unwrap_or_default(),
            entrypoint: c.entrypoint.unwrap_or_default(),
            working_dir: c.working_dir.unwrap_or_default(),
            user: c.user.unwrap_or_default(),
            labels: c.labels.unwrap_or_default(),
            exposed_ports: ports,
            volumes,
            layers: history
                .into_iter()
                .rev()
                .map(|h| ImageLayer {
                    created_by: h.created_by,
                    size: h.size.max(0) as u64,
                    created: h.created,
                    comment: h.comment,
                })
                .collect(),
        })
    }

    /// The environment a local image gives its containers; None when it is not here.
    pub async fn env_of(&self, reference: &str) -> Option<Vec<String>> {
        self.docker
            .client()
            .inspect_image(reference)
            .await
            .ok()
            .and_then(|i| i.config.and_then(|c| c.env))
    }

    /// Gives `src` (a reference or id) the name `dest`.
    pub async fn tag(&self, src: &str, dest: &ImageRef) -> Result<()> {
        let key = lookup_key(src)?;
        if dest.digest.is_some() {
            return Err(CoreError::InvalidInput {
                what: format!("tag \"{dest}\""),
                reason: "a tag cannot carry a digest".into(),
            });
        }
        self.inspect(&key).await?;
        self.docker
            .client()
            .tag_image(
                &key,
                Some(TagImageOptions {
                    repo: Some(dest.name()),
                    tag: Some(dest.tag_or_latest().to_string()),
                }),
            )
            .await?;
        Ok(())
    }

    /// Removes a tag, or the image when it is its last name (or `reference` is its id). Refused,
    /// naming them, while replicaSet versions use the image.
    pub async fn remove(&self, reference: &str) -> Result<Vec<String>> {
        let key = lookup_key(reference)?;
        let d = self.inspect(&key).await?;
        let by_id = is_id(&key);
        let last_name = d.image.tags.len() <= 1;
        if (by_id || last_name) && !d.image.used_by.is_empty() {
            return Err(CoreError::ImageInUse {
                image: reference.to_string(),
                users: uses_text(&d.image.used_by),
            });
        }
        let target = if by_id { d.image.id.clone() } else { key };
        let r = self
            .docker
            .client()
            .remove_image(&target, None::<RemoveImageOptions>, None)
            .await
            .map_err(|e| match e {
                bollard::errors::Error::DockerResponseServerError {
                    status_code: 409,
                    message,
                } => CoreError::ImageInUse {
                    image: reference.to_string(),
                    users: format!("containers outside GPU Deck or images built on it ({message})"),
                },
                e => e.into(),
            })?;
        Ok(r.into_iter()
            .flat_map(|i| i.untagged.into_iter().chain(i.deleted))
            .collect())
    }

    /// Removes dangling images (no tag) that no replicaSet version uses.
    pub async fn prune(&self) -> Result<PruneReport> {
        let list = self
            .docker
            .client()
            .list_images(Some(ListImagesOptions {
                all: false,
                filters: Some(HashMap::from([("dangling".into(), vec!["true".into()])])),
                ..Default::default()
            }))
            .await?;
        let (uses, _) = self.uses()?;
        let mut rep = PruneReport {
            removed: vec![],
            kept: vec![],
            reclaimed: 0,
        };
        for i in list {
            if uses.contains_key(&i.id) {
                rep.kept.push(i.id);
                continue;
            }
            let r = self
                .docker
                .client()
                .remove_image(&i.id, None::<RemoveImageOptions>, None)
                .await;
            if r.is_ok() {
                rep.reclaimed += i.size.max(0) as u64;
                rep.removed.push(i.id);
            }
        }
        Ok(rep)
    }
}

fn is_id(s: &str) -> bool {
    let h = s.strip_prefix("sha256:").unwrap_or(s);
    h.len() >= 12
        && h.bytes()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        && (s.starts_with("sha256:") || h.len() == 64 || h.len() == 12)
}

/// What the engine is asked for: an id as it is, a reference parsed (refused with its reason).
pub fn lookup_key(s: &str) -> Result<String> {
    let t = s.trim();
    if is_id(t) {
        return Ok(t.to_string());
    }
    Ok(ImageRef::parse(t)?.to_string())
}

/// RFC 3339 → seconds since the epoch.
fn chrono_secs(s: &str) -> Option<i64> {
    // YYYY-MM-DDTHH:MM:SS(.frac)?(Z|±HH:MM)
    let b = s.as_bytes();
    if b.len() < 19 {
        return None;
    }
    let num = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, se) = (num(11..13)?, num(14..16)?, num(17..19)?);
    // Days from civil (Howard Hinnant).
    let y2 = if mo <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146097 + doe - 719468;
    let mut t = days * 86400 + h * 3600 + mi * 60 + se;
    let rest = &s[19..];
    let tz = rest.trim_start_matches(|c: char| c == '.' || c.is_ascii_digit());
    if let Some(off) = tz.strip_prefix('+').or_else(|| tz.strip_prefix('-')) {
        let oh: i64 = off.get(0..2)?.parse().ok()?;
        let om: i64 = off.get(3..5).and_then(|m| m.parse().ok()).unwrap_or(0);
        let sign = if tz.starts_with('+') { 1 } else { -1 };
        t -= sign * (oh * 3600 + om * 60);
    }
    Some(t)
}

/// The registries GPU Deck knows, with their sealed passwords.
pub struct Registries<'a> {
    pub store: &'a Mutex<Store>,
    pub data: &'a DataDir,
}

/// What a caller sends to add a registry.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema, ts_rs::TS)]
#[serde(rename_all = "camelCase")]
pub struct RegistryAdd {
    pub name: String,
    pub url: String,
    #[serde(default)]
    pub username: Option<String>,
    /// Write-only: never sent back.
    #[serde(default)]
    pub password: Option<String>,
}

pub fn validate_registry_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
        && name.as_bytes()[0].is_ascii_alphanumeric();
    if ok {
        Ok(())
    } else {
        Err(CoreError::InvalidInput {
            what: format!("registry name \"{}\"", name.escape_debug()),
            reason: "use 1 to 64 letters, digits, '-', '_' or '.', starting with a letter or digit"
                .into(),
        })
    }
}

impl Registries<'_> {
    fn secrets(&self) -> secrets::Secrets {
        secrets::Secrets::new(self.data.path())
    }

    fn db<T>(&self, f: impl FnOnce(&mut Store) -> Result<T>) -> Result<T> {
        let mut g = self.store.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut g)
    }

    pub fn list(&self) -> Result<Vec<Registry>> {
        self.db(|s| s.registries())
    }

    pub fn get(&self, name: &str) -> Result<Registry> {
        self.db(|s| s.registry(name))?
            .ok_or_else(|| CoreError::RegistryNotFound(name.to_string()))
    }

    /// Tries the login first; saves only when the registry took it.
    pub async fn add(&self, r: &RegistryAdd, by: &str) -> Result<Registry> {
        validate_registry_name(&r.name)?;
        let url = registry::parse_url(&r.url)?;
        let user = r.username.clone().filter(|u| !u.is_empty());
        if r.password.as_deref().is_some_and(|p| !p.is_empty()) && user.is_none() {
            return Err(CoreError::InvalidInput {
                what: "registry".into(),
                reason: "a password needs a user name".into(),
            });
        }
        if let Some(p) = &r.password {
            if p.contains(['\n', '\0']) {
                return Err(CoreError::InvalidInput {
                    what: "password".into(),
                    reason: "it holds a line break or NUL".into(),
                });
            }
        }
        if self.db(|s| s.registry(&r.name))?.is_some() {
            return Err(CoreError::RegistryExists(r.name.clone()));
        }
        let client = registry::RegistryClient::new(
            &r.name,
            registry::Endpoint {
                base: url.clone(),
                user: user.clone(),
                password: r.password.clone(),
            },
        )?;
        client.ping().await?;
        let rec = Registry {
            name: r.name.clone(),
            url: url.to_string(),
            host: registry::host_of(&url),
            username: user,
            created_by: by.to_string(),
            created_at: crate::store::now_s(),
        };
        if let Some(p) = r.password.as_deref().filter(|p| !p.is_empty()) {
            self.secrets().put(&rec.name, p)?;
        }
        if let Err(e) = self.db(|s| s.registry_add(&rec)) {
            let _ = self.secrets().remove(&rec.name);
            return Err(e);
        }
        Ok(rec)
    }

    pub fn remove(&self, name: &str) -> Result<()> {
        if !self.db(|s| s.registry_remove(name))? {
            return Err(CoreError::RegistryNotFound(name.to_string()));
        }
        self.secrets().remove(name)
    }

    /// A Registry v2 client of the registry named `name`, with its credentials.
    pub fn client(&self, name: &str) -> Result<registry::RegistryClient> {
        let r = self.get(name)?;
        let url = registry::parse_url(&r.url)?;
        registry::RegistryClient::new(
            &r.name,
            registry::Endpoint {
                base: url,
                user: r.username.clone(),
                password: self.secrets().get(&r.name)?,
            },
        )
    }

    /// The credentials the engine should use for `image`'s registry: those of the registry GPU
    /// Deck knows by that host, or none (anonymous).
    pub fn auth_for(&self, image: &ImageRef) -> Result<Option<transfer::RegistryAuth>> {
        let Some(r) = self.db(|s| s.registry_by_host(image.registry()))? else {
            return Ok(None);
        };
        let Some(user) = r.username.clone() else {
            return Ok(None);
        };
        Ok(Some(transfer::RegistryAuth {
            username: user,
            password: self.secrets().get(&r.name)?.unwrap_or_default(),
            serveraddress: r.host,
        }))
    }
}

/// `REPO:TAG` as `registry info` and `delete` take it (no registry host: that is the registry's).
pub fn parse_repo_tag(s: &str) -> Result<(String, String)> {
    let r = ImageRef::parse(s)?;
    if r.domain.is_some() {
        return Err(CoreError::InvalidInput {
            what: format!("repository \"{s}\""),
            reason: "name it without the registry's host (the registry is the first argument)"
                .into(),
        });
    }
    let sel = r.selector();
    Ok((r.path, sel))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_references_are_told_apart() {
        let full = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
        assert_eq!(lookup_key(full).unwrap(), full);
        assert_eq!(lookup_key("0123456789ab").unwrap(), "0123456789ab");
        assert_eq!(lookup_key("ubuntu:22.04").unwrap(), "ubuntu:22.04");
        assert!(lookup_key("Ubuntu").is_err());
        assert!(lookup_key("").is_err());
    }

    #[test]
    fn rfc3339_times() {
        assert_eq!(chrono_secs("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            chrono_secs("2024-03-01T12:30:15.123456789Z"),
            Some(1_709_296_215)
        );
        assert_eq!(
            chrono_secs("2024-03-01T14:30:15+02:00"),
            Some(1_709_296_215)
        );
        assert_eq!(chrono_secs("garbage"), None);
    }

    #[test]
    fn registry_names_and_repo_tags() {
        assert!(validate_registry_name("lab-1").is_ok());
        for bad in ["", "-x", "a/b", "a b", &"x".repeat(65)] {
            assert!(validate_registry_name(bad).is_err(), "{bad}");
        }
        assert_eq!(
            parse_repo_tag("team/img:v1").unwrap(),
            ("team/img".into(), "v1".into())
        );
        assert_eq!(
            parse_repo_tag("img").unwrap(),
            ("img".into(), "latest".into())
        );
        assert!(parse_repo_tag("127.0.0.1:5000/img:v1").is_err());
        assert!(parse_repo_tag("Img").is_err());
    }
}
