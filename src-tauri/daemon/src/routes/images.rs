//! Images and the jobs that move them. Everyone may list, inspect and pull; a member tags, pushes
//! and removes only images under their own name (`alice/…`), so no shared tag is ever written
//! over; pruning is for admins. Pulls and pushes run as jobs that outlive the request.

use std::convert::Infallible;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::routing::{get, post};
use axum::Extension;
use axum::{Json, Router};
use futures_util::Stream;
use gpudeck_api::*;
use gpudeck_core::image::jobs::{JobKind, JobView, PUBLISH_EVERY};
use gpudeck_core::image::progress::Direction;
use gpudeck_core::image::{dockercfg, transfer, ImageDetail, ImageRef, LocalImage, PruneReport};
use gpudeck_core::policy::{self, Caller};
use gpudeck_core::{CoreError, Result};
use serde::Deserialize;

use super::{Api, ApiError, St, Who};
use crate::state::Daemon;

pub fn routes() -> Router<Arc<Daemon>> {
    Router::new()
        .route("/v1/images/local", get(list))
        .route("/v1/images/inspect", get(inspect))
        .route("/v1/images/tag", post(tag))
        .route("/v1/images/remove", post(remove))
        .route("/v1/images/prune", post(prune))
        .route("/v1/images/pull", post(pull))
        .route("/v1/images/push", post(push))
        .route("/v1/jobs", get(jobs))
        .route("/v1/jobs/{id}", get(job))
        .route("/v1/jobs/{id}/events", get(job_events))
        .route("/v1/jobs/{id}/cancel", post(cancel))
}

#[derive(Deserialize)]
struct ImageQuery {
    image: String,
}

async fn list(State(d): St, Extension(c): Who) -> Api<Vec<LocalImage>> {
    c.require_member()?;
    let docker = d.docker().await?;
    Ok(Json(d.images(&docker).list().await?))
}

async fn inspect(State(d): St, Extension(c): Who, Query(q): Query<ImageQuery>) -> Api<ImageDetail> {
    c.require_member()?;
    let docker = d.docker().await?;
    let detail = d.images(&docker).inspect(&q.image).await?;
    policy::check_image_use(&c, &q.image, &detail.labels, "inspect")?;
    Ok(Json(detail))
}

/// A member names only under their own namespace.
fn own_name(c: &Caller, r: &ImageRef, what: &str) -> Result<()> {
    policy::check_commit_target(c, &r.to_string()).map_err(|_| {
        CoreError::Forbidden(format!(
            "You may {what} only images under your own name (\"{u}/IMAGE:TAG\" or \"REGISTRY/{u}/IMAGE:TAG\"), not \"{r}\". Nothing was changed.",
            u = c.user
        ))
    })
}

async fn tag(State(d): St, Extension(c): Who, Json(r): Json<TagRequest>) -> Api<()> {
    c.require_member()?;
    let target = ImageRef::parse(&r.target)?.normalized();
    own_name(&c, &target, "tag")?;
    let docker = d.docker().await?;
    let source = d.images(&docker).inspect(&r.source).await?;
    policy::check_image_use(&c, &r.source, &source.labels, "tag")?;
    d.images(&docker).tag(&r.source, &target).await?;
    Ok(Json(()))
}

async fn remove(State(d): St, Extension(c): Who, Json(r): Json<ImageRequest>) -> Api<Vec<String>> {
    c.require_member()?;
    if !c.is_admin() {
        let parsed = ImageRef::parse(&r.image).map_err(|_| {
            CoreError::Forbidden(format!(
                "You may remove only images under your own name, by name (\"{}/IMAGE:TAG\"); an admin removes images by id.",
                c.user
            ))
        })?;
        own_name(&c, &parsed, "remove")?;
    }
    let docker = d.docker().await?;
    Ok(Json(d.images(&docker).remove(&r.image).await?))
}

async fn prune(State(d): St, Extension(c): Who) -> Api<PruneReport> {
    c.require_admin("prune images")?;
    let docker = d.docker().await?;
    Ok(Json(d.images(&docker).prune().await?))
}

async fn pull(State(d): St, Extension(c): Who, Json(r): Json<ImageRequest>) -> Api<JobView> {
    c.require_member()?;
    let image = ImageRef::parse(&r.image)?.normalized();
    let auth = auth_for_caller(&d, &c, &image).await?;
    let docker = d.docker().await?;
    let view = d.jobs.start(
        JobKind::Pull,
        &image.to_string(),
        &c.user,
        c.uid,
        move |h| async move {
            let p = transfer::run(&docker, Direction::Pull, &image, auth.as_ref(), |p| {
                h.progress(p)
            })
            .await?;
            Ok(p.digest)
        },
    );
    Ok(Json(view))
}

async fn push(State(d): St, Extension(c): Who, Json(r): Json<ImageRequest>) -> Api<JobView> {
    c.require_member()?;
    let image = ImageRef::parse(&r.image)?.normalized();
    own_name(&c, &image, "push")?;
    let docker = d.docker().await?;
    // What is not here is said now, not by a job that fails.
    let detail = d.images(&docker).inspect(&image.to_string()).await?;
    policy::check_image_use(&c, &image.to_string(), &detail.labels, "push")?;
    let auth = auth_for_caller(&d, &c, &image).await?;
    Ok(Json(start_push(&d, &c, image, auth, docker, None)))
}

/// A push job; with `commit`, the commit of that replicaSet comes first (one job, two phases).
pub fn start_push(
    d: &Arc<Daemon>,
    c: &Caller,
    image: ImageRef,
    auth: Option<transfer::RegistryAuth>,
    docker: gpudeck_core::docker::DockerAdapter,
    commit: Option<(String, String)>,
) -> JobView {
    let kind = if commit.is_some() {
        JobKind::CommitPush
    } else {
        JobKind::Push
    };
    let d2 = d.clone();
    d.jobs.start(
        kind,
        &image.to_string(),
        &c.user,
        c.uid,
        move |h| async move {
            if let Some((name, message)) = commit {
                let _ready = d2.ready().await?;
                let _lock = d2.locks.lock(&format!("rs:{name}")).await;
                let settings = d2.settings();
                let svc = d2.replicasets(&docker, &settings, vec![]);
                svc.commit(&name, &image.to_string(), &message).await?;
                h.phase("push", Direction::Push);
            }
            let p = transfer::run(&docker, Direction::Push, &image, auth.as_ref(), |p| {
                h.progress(p)
            })
            .await?;
            Ok(p.digest)
        },
    )
}

/// The credentials for `image`'s registry: the caller's own `docker login` (their
/// `~/.docker/config.json`, its helpers run as them), else those of the registry GPU Deck knows
/// by that host, else none.
pub async fn auth_for_caller(
    d: &Daemon,
    c: &Caller,
    image: &ImageRef,
) -> Result<Option<transfer::RegistryAuth>> {
    let (uid, gid, home, host) = (c.uid, c.gid, c.home.clone(), image.registry().to_string());
    let h = host.clone();
    let own = tokio::task::spawn_blocking(move || {
        dockercfg::login_for(
            &dockercfg::Owner {
                uid,
                gid,
                home: &home,
            },
            &h,
        )
    })
    .await
    .ok()
    .flatten();
    if let Some((username, password)) = own {
        let serveraddress = if host == "docker.io" {
            "https://index.docker.io/v1/".to_string()
        } else {
            host
        };
        return Ok(Some(transfer::RegistryAuth {
            username,
            password,
            serveraddress,
        }));
    }
    d.registries().auth_for(image)
}

fn visible(c: &Caller, j: &JobView) -> bool {
    c.is_admin() || j.uid == c.uid
}

async fn jobs(State(d): St, Extension(c): Who) -> Api<Vec<JobView>> {
    c.require_member()?;
    Ok(Json(
        d.jobs
            .list()
            .into_iter()
            .filter(|j| visible(&c, j))
            .collect(),
    ))
}

fn job_of(d: &Daemon, c: &Caller, id: u64) -> Result<JobView> {
    c.require_member()?;
    d.jobs
        .get(id)
        .filter(|j| visible(c, j))
        .ok_or_else(|| CoreError::InvalidInput {
            what: format!("job {id}"),
            reason: "there is no such job of yours (ended jobs are kept for a while only)".into(),
        })
}

async fn job(State(d): St, Extension(c): Who, Path(id): Path<u64>) -> Api<JobView> {
    Ok(Json(job_of(&d, &c, id)?))
}

async fn cancel(State(d): St, Extension(c): Who, Path(id): Path<u64>) -> Api<JobView> {
    let j = job_of(&d, &c, id)?;
    d.jobs.cancel(j.id);
    let mut w = d
        .jobs
        .watch(id)
        .ok_or_else(|| CoreError::Cancelled(j.image.clone()))?;
    let end = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        w.wait_for(|v| v.ended()),
    )
    .await
    .ok()
    .and_then(|r| r.ok().map(|v| v.clone()));
    Ok(Json(end.unwrap_or(j)))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct EventsQuery {
    #[serde(default)]
    cancel_on_close: bool,
}

/// Cancels the job when dropped before it ended (the client closed the stream).
struct CancelOnDrop {
    d: Arc<Daemon>,
    id: u64,
    armed: bool,
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if self.armed && self.d.jobs.get(self.id).is_some_and(|j| !j.ended()) {
            self.d.jobs.cancel(self.id);
        }
    }
}

async fn job_events(
    State(d): St,
    Extension(c): Who,
    Path(id): Path<u64>,
    Query(q): Query<EventsQuery>,
) -> Result<Sse<impl Stream<Item = std::result::Result<Event, Infallible>>>, ApiError> {
    job_of(&d, &c, id)?;
    let w = d
        .jobs
        .watch(id)
        .ok_or_else(|| CoreError::Cancelled(format!("job {id}")))?;
    let guard = CancelOnDrop {
        d: d.clone(),
        id,
        armed: q.cancel_on_close,
    };
    let stream = futures_util::stream::unfold(
        (w, guard, false, true),
        |(mut w, guard, ended, first)| async move {
            if ended {
                return None;
            }
            if !first {
                tokio::time::sleep(PUBLISH_EVERY).await;
                if w.changed().await.is_err() {
                    return None;
                }
            }
            let v = w.borrow_and_update().clone();
            let end = v.ended();
            let ev = Event::default()
                .event("job")
                .json_data(&v)
                .unwrap_or_default();
            Some((Ok(ev), (w, guard, end, false)))
        },
    );
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}
