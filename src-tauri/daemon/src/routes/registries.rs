//! Registries: an admin adds (after the login worked) and removes them; everyone browses them.
//! Passwords are write-only: sealed at rest, never in a reply, a log line or an error.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::routing::{delete, get, post};
use axum::Extension;
use axum::{Json, Router};
use gpudeck_api::*;
use gpudeck_core::image::registry::{RemoteDeleted, RemoteImageInfo};
use gpudeck_core::image::{parse_repo_tag, Registry, RegistryAdd};
use serde::Deserialize;

use super::{Api, St, Who};
use crate::state::Daemon;

pub fn routes() -> Router<Arc<Daemon>> {
    Router::new()
        .route("/v1/registries", get(list).post(add))
        .route("/v1/registries/{name}", delete(remove))
        .route("/v1/registries/{name}/repositories", get(repositories))
        .route("/v1/registries/{name}/tags", get(tags))
        .route("/v1/registries/{name}/info", get(info))
        .route("/v1/registries/{name}/delete", post(delete_image))
}

async fn list(State(d): St, Extension(c): Who) -> Api<Vec<Registry>> {
    c.require_member()?;
    Ok(Json(d.registries().list()?))
}

async fn add(State(d): St, Extension(c): Who, Json(r): Json<RegistryAdd>) -> Api<Registry> {
    c.require_admin("add registries")?;
    let _lock = d.locks.lock(&format!("registry:{}", r.name)).await;
    Ok(Json(d.registries().add(&r, &c.user).await?))
}

async fn remove(State(d): St, Extension(c): Who, Path(name): Path<String>) -> Api<()> {
    c.require_admin("remove registries")?;
    let _lock = d.locks.lock(&format!("registry:{name}")).await;
    d.registries().remove(&name)?;
    Ok(Json(()))
}

async fn repositories(
    State(d): St,
    Extension(c): Who,
    Path(name): Path<String>,
) -> Api<Vec<String>> {
    c.require_member()?;
    Ok(Json(d.registries().client(&name)?.repositories().await?))
}

#[derive(Deserialize)]
struct RepoQuery {
    repository: String,
}

async fn tags(
    State(d): St,
    Extension(c): Who,
    Path(name): Path<String>,
    Query(q): Query<RepoQuery>,
) -> Api<Vec<String>> {
    c.require_member()?;
    let (repo, _) = parse_repo_tag(&q.repository)?;
    Ok(Json(d.registries().client(&name)?.tags(&repo).await?))
}

#[derive(Deserialize)]
struct ImageQuery {
    image: String,
}

async fn info(
    State(d): St,
    Extension(c): Who,
    Path(name): Path<String>,
    Query(q): Query<ImageQuery>,
) -> Api<RemoteImageInfo> {
    c.require_member()?;
    let (repo, tag) = parse_repo_tag(&q.image)?;
    Ok(Json(d.registries().client(&name)?.info(&repo, &tag).await?))
}

async fn delete_image(
    State(d): St,
    Extension(c): Who,
    Path(name): Path<String>,
    Json(r): Json<ImageRequest>,
) -> Api<RemoteDeleted> {
    c.require_admin("delete images from a registry")?;
    let (repo, tag) = parse_repo_tag(&r.image)?;
    Ok(Json(
        d.registries().client(&name)?.delete(&repo, &tag).await?,
    ))
}
