//! Volumes: everyone sees them; a member creates their own (its top folder theirs, so their
//! containers can write in it) and resizes or deletes only their own.

use axum::extract::{Path, State};
use axum::routing::{get, post};
use axum::Extension;
use axum::{Json, Router};
use gpudeck_api::*;
use gpudeck_core::policy::Caller;
use gpudeck_core::store::VolumeVersion;
use gpudeck_core::volume::{parse_size, VolumeInfo};
use gpudeck_core::Result;

use super::{Api, St, Who};
use crate::state::Daemon;

pub fn routes() -> Router<std::sync::Arc<Daemon>> {
    Router::new()
        .route("/v1/volumes", get(list).post(create))
        .route("/v1/volumes/{name}", get(info).delete(delete))
        .route("/v1/volumes/{name}/history", get(history))
        .route("/v1/volumes/{name}/resize", post(resize))
}

fn owned(d: &Daemon, c: &Caller, name: &str, action: &str) -> Result<()> {
    c.require_member()?;
    if let Some(owner) = d.db(|s| s.vol_owner(name))? {
        c.require_owner("volume", name, owner.as_deref(), action)?;
    }
    Ok(())
}

async fn list(State(d): St, Extension(c): Who) -> Api<Vec<VolumeInfo>> {
    c.require_member()?;
    let _ready = d.ready().await?;
    let docker = d.docker().await?;
    Ok(Json(d.volumes(&docker).list().await?))
}

async fn create(
    State(d): St,
    Extension(c): Who,
    Json(r): Json<VolCreateRequest>,
) -> Api<VolumeInfo> {
    c.require_member()?;
    let size = parse_size(&r.size)?;
    let _ready = d.ready().await?;
    // The user's quota is counted and used under one lock of theirs (two creates at once
    // cannot pass it together), taken before the volume's.
    let _quota = d.locks.lock(&format!("volquota:{}", c.user)).await;
    let _lock = d.locks.lock(&format!("vol:{}", r.name)).await;
    check_quota(&d, &c.user, &r.name, size)?;
    let docker = d.docker().await?;
    let mut vols = d.volumes(&docker);
    if !c.is_admin() {
        vols.root_owner = Some((c.uid, c.gid));
    }
    let mut v = vols.create(&r.name, size).await?;
    d.db(|s| s.vol_set_owner(&r.name, &c.user))?;
    v.owner = Some(c.user.clone());
    Ok(Json(v))
}

async fn info(State(d): St, Extension(c): Who, Path(name): Path<String>) -> Api<VolumeInfo> {
    c.require_member()?;
    let _ready = d.ready().await?;
    let docker = d.docker().await?;
    Ok(Json(d.volumes(&docker).info(&name).await?))
}

async fn history(
    State(d): St,
    Extension(c): Who,
    Path(name): Path<String>,
) -> Api<Vec<VolumeVersion>> {
    c.require_member()?;
    let _ready = d.ready().await?;
    let docker = d.docker().await?;
    Ok(Json(d.volumes(&docker).history(&name)?))
}

async fn resize(
    State(d): St,
    Extension(c): Who,
    Path(name): Path<String>,
    Json(r): Json<VolResizeRequest>,
) -> Api<VolumeInfo> {
    owned(&d, &c, &name, "resize")?;
    let size = parse_size(&r.size)?;
    let _ready = d.ready().await?;
    let owner = d.db(|s| s.vol_owner(&name))?.flatten();
    let _quota = match &owner {
        Some(o) => Some(d.locks.lock(&format!("volquota:{o}")).await),
        None => None,
    };
    let _lock = d.locks.lock(&format!("vol:{name}")).await;
    if let Some(o) = &owner {
        check_quota(&d, o, &name, size)?;
    }
    let docker = d.docker().await?;
    // A move patches the replicaSets that bind it: each one's lock is held for the whole
    // resize, taken after the volume's, in name order (every operation takes them in that
    // order), so no restart or patch of theirs runs in between.
    let mut _rs_locks = Vec::new();
    if r.move_users {
        if let Some((cur, false)) = d.db(|s| s.vol_current(&name))? {
            let mut users: Vec<String> = docker
                .volume_users(&gpudeck_core::volume::docker_name(&name, cur))
                .await?
                .into_iter()
                .filter_map(|u| u.3)
                .collect();
            users.sort();
            users.dedup();
            for u in users {
                _rs_locks.push(d.locks.lock(&format!("rs:{u}")).await);
            }
        }
    }
    let settings = d.settings();
    let rs = d.replicasets(&docker, &settings, d.gpus_now());
    let vols = d.volumes(&docker);
    Ok(Json(
        vols.resize(&name, size, r.move_users.then_some(&rs))
            .await?,
    ))
}

/// Refuses `size` bytes for `name` when the owner's other volumes and it pass their quota.
fn check_quota(d: &Daemon, owner: &str, name: &str, size: u64) -> Result<()> {
    let Some(who) = crate::identity::caller_named(owner) else {
        return Ok(());
    };
    let pol = d.policy_of(&who)?;
    if pol.max_volume_bytes.is_none() {
        return Ok(());
    }
    let held = d.db(|s| s.vol_bytes_of(owner, name))?;
    gpudeck_core::policy::check_volume_quota(&pol, held, size)
}

async fn delete(State(d): St, Extension(c): Who, Path(name): Path<String>) -> Api<()> {
    owned(&d, &c, &name, "delete")?;
    let _ready = d.ready().await?;
    let _lock = d.locks.lock(&format!("vol:{name}")).await;
    let docker = d.docker().await?;
    d.volumes(&docker).delete(&name).await?;
    Ok(Json(()))
}
