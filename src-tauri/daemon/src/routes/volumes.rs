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
    let _lock = d.locks.lock(&format!("vol:{}", r.name)).await;
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
    let _lock = d.locks.lock(&format!("vol:{name}")).await;
    let docker = d.docker().await?;
    let settings = d.settings();
    let rs = d.replicasets(&docker, &settings, d.gpus_now());
    let vols = d.volumes(&docker);
    Ok(Json(
        vols.resize(&name, size, r.move_users.then_some(&rs))
            .await?,
    ))
}

async fn delete(State(d): St, Extension(c): Who, Path(name): Path<String>) -> Api<()> {
    owned(&d, &c, &name, "delete")?;
    let _ready = d.ready().await?;
    let _lock = d.locks.lock(&format!("vol:{name}")).await;
    let docker = d.docker().await?;
    d.volumes(&docker).delete(&name).await?;
    Ok(Json(()))
}
