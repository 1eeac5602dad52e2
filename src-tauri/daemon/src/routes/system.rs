//! Who am I, the engine, doctor, settings, ports, local images, events, the OpenAPI document.

use std::convert::Infallible;

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::routing::get;
use axum::Extension;
use axum::{Json, Router};
use futures_util::{Stream, StreamExt};
use gpudeck_core::alloc::PortMap;
use gpudeck_core::docker::DockerStatus;
use gpudeck_core::doctor::{self, DoctorCheck};
use gpudeck_core::paths::nvml_lib_from_env;
use gpudeck_core::policy::Caller;
use gpudeck_core::settings::Settings;
use tokio_stream::wrappers::WatchStream;

use super::{Api, St, Who};
use crate::state::Daemon;

pub fn routes() -> Router<std::sync::Arc<Daemon>> {
    Router::new()
        .route("/v1/whoami", get(whoami))
        .route("/v1/docker", get(docker_status))
        .route("/v1/doctor", get(doctor))
        .route("/v1/settings", get(settings).put(set_settings))
        .route("/v1/ports", get(ports))
        .route("/v1/images", get(images))
        .route("/v1/events", get(events))
        .route("/v1/openapi.json", get(openapi))
}

/// Answers anyone who reached the socket, members or not: the app says what to do from it.
async fn whoami(Extension(c): Who) -> Json<Caller> {
    Json(c)
}

async fn docker_status(State(d): St, Extension(c): Who) -> Api<DockerStatus> {
    c.require_member()?;
    Ok(Json(d.docker_status.borrow().clone()))
}

async fn doctor(State(d): St, Extension(c): Who) -> Api<Vec<DoctorCheck>> {
    c.require_member()?;
    let s = d.settings();
    Ok(Json(
        doctor::run(&s, d.data.path(), nvml_lib_from_env().as_deref()).await,
    ))
}

async fn settings(State(d): St, Extension(c): Who) -> Api<Settings> {
    c.require_member()?;
    Ok(Json(d.settings()))
}

async fn set_settings(State(d): St, Extension(c): Who, Json(s): Json<Settings>) -> Api<Settings> {
    c.require_admin("change the settings")?;
    Ok(Json(d.set_settings(s)?))
}

async fn ports(State(d): St, Extension(c): Who) -> Api<PortMap> {
    c.require_member()?;
    let _ready = d.ready().await?;
    let docker = d.docker().await?;
    let claims = d.db(|s| s.port_claims())?;
    let published = docker.published_ports().await?;
    Ok(Json(gpudeck_core::alloc::port_map(
        d.settings().port_range,
        &gpudeck_core::alloc::host_listening_ports(),
        &published,
        &claims,
    )))
}

async fn images(State(d): St, Extension(c): Who) -> Api<Vec<String>> {
    c.require_member()?;
    Ok(Json(d.docker().await?.image_tags().await?))
}

/// `docker-status` when the engine's status changes, `containers-changed` when any container does,
/// `progress` at every step of a journaled operation (a patch, a resize), `job` as pulls and
/// pushes go.
async fn events(
    State(d): St,
    Extension(c): Who,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, super::ApiError> {
    c.require_member()?;
    let status = WatchStream::new(d.docker_status.clone()).map(|s| {
        Ok(Event::default()
            .event("docker-status")
            .json_data(s)
            .unwrap_or_default())
    });
    let changes = WatchStream::from_changes(d.changes.clone()).map(|n| {
        Ok(Event::default()
            .event("containers-changed")
            .data(n.to_string()))
    });
    // Every journaled step of every operation: names and steps only, which everyone may see
    // (like the list itself).
    let progress = tokio_stream::wrappers::BroadcastStream::new(gpudeck_core::store::progress())
        .filter_map(|p| async move {
            p.ok().map(|p| {
                Ok(Event::default()
                    .event("progress")
                    .json_data(p)
                    .unwrap_or_default())
            })
        });
    // Pull and push jobs (at most 10 updates a second each): a member sees their own.
    let (admin, uid) = (c.is_admin(), c.uid);
    let jobs = tokio_stream::wrappers::BroadcastStream::new(d.jobs.subscribe()).filter_map(
        move |j| async move {
            j.ok().filter(|j| admin || j.uid == uid).map(|j| {
                Ok(Event::default()
                    .event("job")
                    .json_data(j)
                    .unwrap_or_default())
            })
        },
    );
    let all = futures_util::stream::select(
        futures_util::stream::select(status, changes),
        futures_util::stream::select(progress, jobs),
    );
    Ok(Sse::new(all).keep_alive(KeepAlive::default()))
}

async fn openapi() -> Json<serde_json::Value> {
    Json(gpudeck_api::openapi())
}
