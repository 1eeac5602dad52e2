//! ReplicaSets. Everyone sees every replicaSet's name, owner, GPUs, ports and status; only its
//! owner (or an admin) sees its env and acts on it. An operation holds the replicaSet's lock from
//! start to end, so two never interleave on one replicaSet.

use std::time::Duration;

use axum::body::Body;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Extension;
use axum::{Json, Router};
use futures_util::{SinkExt, StreamExt};
use gpudeck_api::*;
use gpudeck_core::docker::{DockerAdapter, ExecOutput};
use gpudeck_core::policy::{self, Caller, Effective};
use gpudeck_core::replicaset::{Bind, ReplicaSets, RsInfo, RsSpec};
use gpudeck_core::settings::Settings;
use gpudeck_core::store::VersionRecord;
use gpudeck_core::{CoreError, Result};
use tokio::io::AsyncWriteExt;

use super::{Api, ApiError, St, Who};
use crate::state::Daemon;

type D = std::sync::Arc<Daemon>;

pub fn routes() -> Router<D> {
    Router::new()
        .route("/v1/replicasets", get(list).post(run))
        .route("/v1/replicasets/{name}", get(info).delete(delete))
        .route("/v1/replicasets/{name}/history", get(history))
        .route("/v1/replicasets/{name}/patch", post(patch))
        .route("/v1/replicasets/{name}/rollback", post(rollback))
        .route("/v1/replicasets/{name}/prune", post(prune))
        .route("/v1/replicasets/{name}/commit", post(commit))
        .route("/v1/replicasets/{name}/commit-push", post(commit_push))
        .route("/v1/replicasets/{name}/exec", post(exec))
        .route("/v1/replicasets/{name}/exec-stream", post(exec_stream))
        .route("/v1/replicasets/{name}/{action}", post(action))
        .route("/v1/replicasets/{name}/logs", get(logs))
        .route("/v1/replicasets/{name}/terminal", get(terminal))
        .route("/v1/files-bytes", get(files_bytes))
}

/// What one request works with.
struct Ctx {
    docker: DockerAdapter,
    settings: Settings,
}

async fn ctx(d: &Daemon) -> Result<Ctx> {
    Ok(Ctx {
        docker: d.docker().await?,
        settings: d.settings(),
    })
}

impl Ctx {
    fn svc<'a>(&'a self, d: &'a Daemon, fresh_gpus: bool) -> ReplicaSets<'a> {
        let gpus = if fresh_gpus { d.gpus_now() } else { vec![] };
        d.replicasets(&self.docker, &self.settings, gpus)
    }
}

/// Hides what is private to the owner (the env may hold tokens).
fn redact_spec(c: &Caller, spec: &mut RsSpec) {
    if !c.owns(spec.owner.as_deref()) {
        spec.env.clear();
    }
    spec.mask_secrets();
}

fn redact(c: &Caller, mut i: RsInfo) -> RsInfo {
    redact_spec(c, &mut i.spec);
    i
}

/// Refuses unless the caller owns `name` (or is an admin); its info.
async fn owned(c: &Caller, svc: &ReplicaSets<'_>, name: &str, action: &str) -> Result<RsInfo> {
    c.require_member()?;
    let i = svc.info(name).await?;
    c.require_owner("replicaSet", name, i.spec.owner.as_deref(), action)?;
    Ok(i)
}

/// GPUs the user's replicaSets other than `except` hold now.
async fn held_by(svc: &ReplicaSets<'_>, user: &str, except: Option<&str>) -> Result<u32> {
    Ok(svc
        .list()
        .await?
        .iter()
        .filter(|i| i.spec.owner.as_deref() == Some(user) && Some(i.name.as_str()) != except)
        .map(|i| i.gpus.len() as u32)
        .sum())
}

/// A member may hold at most their limit: refuses `requested` more beside what they hold.
async fn check_gpus(
    c: &Caller,
    pol: &Effective,
    svc: &ReplicaSets<'_>,
    except: Option<&str>,
    requested: u32,
) -> Result<()> {
    if c.is_admin() || pol.max_gpus.is_none() || requested == 0 {
        return Ok(());
    }
    policy::check_gpu_limit(pol, held_by(svc, &c.user, except).await?, requested)
}

/// The caller's rules applied to a spec: owner, user, binds (resolved and checked).
async fn apply(d: &Daemon, cx: &Ctx, c: &Caller, spec: &mut RsSpec) -> Result<Effective> {
    let pol = d.policy_of(c)?;
    // Admins are not held to bind roots: no need to ask the engine where its data lives.
    let roots = if c.is_admin() {
        vec![]
    } else {
        d.data_roots(&cx.docker).await
    };
    let vols = |v: &str| d.db(|s| s.vol_ref(v)).ok().flatten();
    policy::apply_to_spec(c, &pol, spec, &roots, &vols)?;
    if !c.is_admin() {
        // An image another member's replicaSet made is not run by anyone else (it holds their
        // files). One that is not here is said by the run itself.
        if let Ok(detail) = d.images(&cx.docker).inspect(&spec.image).await {
            policy::check_image_use(c, &spec.image, &detail.labels, "run")?;
        }
    }
    Ok(pol)
}

async fn list(State(d): St, Extension(c): Who) -> Api<Vec<RsInfo>> {
    c.require_member()?;
    let _ready = d.ready().await?;
    let cx = ctx(&d).await?;
    let all = cx.svc(&d, false).list().await?;
    Ok(Json(all.into_iter().map(|i| redact(&c, i)).collect()))
}

pub(super) async fn run(State(d): St, Extension(c): Who, Json(r): Json<RunRequest>) -> Api<RsInfo> {
    c.require_member()?;
    let _ready = d.ready().await?;
    let _lock = d.locks.lock(&format!("rs:{}", r.name)).await;
    let cx = ctx(&d).await?;
    let mut spec = r.spec;
    let pol = apply(&d, &cx, &c, &mut spec).await?;
    let svc = cx.svc(&d, true);
    check_gpus(&c, &pol, &svc, None, spec.gpus).await?;
    Ok(Json(redact(&c, svc.run(&r.name, spec).await?)))
}

async fn info(State(d): St, Extension(c): Who, Path(name): Path<String>) -> Api<RsInfo> {
    c.require_member()?;
    let _ready = d.ready().await?;
    let cx = ctx(&d).await?;
    Ok(Json(redact(&c, cx.svc(&d, false).info(&name).await?)))
}

async fn history(
    State(d): St,
    Extension(c): Who,
    Path(name): Path<String>,
) -> Api<Vec<VersionRecord>> {
    c.require_member()?;
    let _ready = d.ready().await?;
    // After a new version's reply its old files are still being kept: wait for that (a while;
    // then the answer shows that version's size as not measured yet).
    let _lock = tokio::time::timeout(Duration::from_secs(10), d.locks.lock(&format!("rs:{name}")))
        .await
        .ok();
    let cx = ctx(&d).await?;
    let mut h = cx.svc(&d, false).history(&name)?;
    for v in &mut h {
        redact_spec(&c, &mut v.spec);
    }
    Ok(Json(h))
}

async fn patch(
    State(d): St,
    Extension(c): Who,
    Path(name): Path<String>,
    Json(p): Json<PatchRequest>,
) -> Api<RsInfo> {
    let _ready = d.ready().await?;
    let lock = d.locks.lock(&format!("rs:{name}")).await;
    let cx = ctx(&d).await?;
    let svc = cx.svc(&d, true).deferring();
    let cur = owned(&c, &svc, &name, "patch").await?;
    let mut swap = p.swap;
    if let Some((old, new)) = swap.take() {
        // The new bind is checked as a run's would be.
        let mut probe = RsSpec {
            binds: vec![new],
            ..cur.spec.clone()
        };
        apply(&d, &cx, &c, &mut probe).await?;
        let new: Bind = probe.binds.remove(0);
        swap = Some((old, new));
    }
    if let Some(g) = p.gpus {
        let pol = d.policy_of(&c)?;
        check_gpus(&c, &pol, &svc, Some(&name), g).await?;
    }
    let info = svc.patch(&name, p.gpus, swap).await;
    settle_later(&d, lock, &svc);
    Ok(Json(redact(&c, info?)))
}

async fn rollback(
    State(d): St,
    Extension(c): Who,
    Path(name): Path<String>,
    Json(r): Json<RollbackRequest>,
) -> Api<RsInfo> {
    let _ready = d.ready().await?;
    let lock = d.locks.lock(&format!("rs:{name}")).await;
    let cx = ctx(&d).await?;
    let svc = cx.svc(&d, true).deferring();
    owned(&c, &svc, &name, "roll back").await?;
    if !c.is_admin() {
        // What version k ran with must still be allowed to this member now.
        let target = svc
            .history(&name)?
            .into_iter()
            .find(|v| v.version == r.version);
        if let Some(v) = target {
            let mut probe = v.spec.clone();
            let pol = apply(&d, &cx, &c, &mut probe).await?;
            check_gpus(&c, &pol, &svc, Some(&name), v.spec.gpus).await?;
        }
    }
    let info = svc.rollback(&name, r.version, r.config_only).await;
    settle_later(&d, lock, &svc);
    Ok(Json(redact(&c, info?)))
}

async fn prune(
    State(d): St,
    Extension(c): Who,
    Path(name): Path<String>,
    Json(p): Json<PruneRequest>,
) -> Api<PruneReply> {
    let _ready = d.ready().await?;
    let _lock = d.locks.lock(&format!("rs:{name}")).await;
    let cx = ctx(&d).await?;
    let svc = cx.svc(&d, false);
    owned(&c, &svc, &name, "prune").await?;
    let pruned = svc.prune(&name, p.keep).await?;
    Ok(Json(PruneReply { name, pruned }))
}

async fn commit(
    State(d): St,
    Extension(c): Who,
    Path(name): Path<String>,
    Json(r): Json<CommitRequest>,
) -> Api<CommitReply> {
    let _ready = d.ready().await?;
    let _lock = d.locks.lock(&format!("rs:{name}")).await;
    let cx = ctx(&d).await?;
    let svc = cx.svc(&d, false);
    owned(&c, &svc, &name, "commit").await?;
    policy::check_commit_target(&c, &r.image)?;
    let id = svc.commit(&name, &r.image, &r.message).await?;
    Ok(Json(CommitReply { image: r.image, id }))
}

/// Commit, then push the image: one job with two phases.
async fn commit_push(
    State(d): St,
    Extension(c): Who,
    Path(name): Path<String>,
    Json(r): Json<CommitRequest>,
) -> Api<gpudeck_core::image::jobs::JobView> {
    let image = gpudeck_core::image::ImageRef::parse(&r.image)?.normalized();
    let cx = ctx(&d).await?;
    owned(&c, &cx.svc(&d, false), &name, "commit").await?;
    policy::check_commit_target(&c, &image.to_string())?;
    let auth = super::images::auth_for_caller(&d, &c, &image).await?;
    Ok(Json(super::images::start_push(
        &d,
        &c,
        image,
        auth,
        cx.docker,
        Some((name, r.message)),
    )))
}

async fn exec(
    State(d): St,
    Extension(c): Who,
    Path(name): Path<String>,
    Json(r): Json<ExecRequest>,
) -> Api<ExecOutput> {
    let cx = ctx(&d).await?;
    let svc = cx.svc(&d, false);
    owned(&c, &svc, &name, "run commands in").await?;
    let timeout = Duration::from_secs(r.timeout_s.clamp(1, 3600));
    Ok(Json(svc.exec(&name, &r.command, timeout).await?))
}

/// `exec`, streamed: one JSON line per `ExecFrame` as the command prints, the exit code last.
async fn exec_stream(
    State(d): St,
    Extension(c): Who,
    Path(name): Path<String>,
    Json(r): Json<ExecRequest>,
) -> Result<Response, ApiError> {
    let cx = ctx(&d).await?;
    let svc = cx.svc(&d, false);
    owned(&c, &svc, &name, "run commands in").await?;
    let timeout = Duration::from_secs(r.timeout_s.clamp(1, 3600));
    let rx = svc.exec_stream(&name, &r.command, timeout).await?;
    let stream = tokio_stream::wrappers::ReceiverStream::new(rx).map(|f| {
        let mut line = serde_json::to_vec(&f).unwrap_or_default();
        line.push(b'\n');
        Ok::<_, std::convert::Infallible>(bytes::Bytes::from(line))
    });
    Ok((
        [("content-type", "application/x-ndjson")],
        Body::from_stream(stream),
    )
        .into_response())
}

/// stop | pause | continue | restart.
async fn action(
    State(d): St,
    Extension(c): Who,
    Path((name, action)): Path<(String, String)>,
) -> Api<RsInfo> {
    let _ready = d.ready().await?;
    let lock = d.locks.lock(&format!("rs:{name}")).await;
    let cx = ctx(&d).await?;
    let svc = cx
        .svc(&d, matches!(action.as_str(), "continue" | "restart"))
        .deferring();
    let cur = owned(&c, &svc, &name, &action).await?;
    if matches!(action.as_str(), "continue" | "restart") {
        let pol = d.policy_of(&c)?;
        check_gpus(&c, &pol, &svc, Some(&name), cur.spec.gpus).await?;
    }
    let info = match action.as_str() {
        "stop" => svc.stop(&name).await,
        "pause" => svc.pause(&name).await,
        "continue" => svc.resume(&name).await,
        "restart" => svc.restart(&name).await,
        other => Err(CoreError::InvalidInput {
            what: "action".into(),
            reason: format!("unknown action \"{other}\" (stop, pause, continue, restart)"),
        }),
    };
    settle_later(&d, lock, &svc);
    Ok(Json(redact(&c, info?)))
}

/// Finishes a new version recorded by `svc` (its old files kept, its old container removed)
/// after the reply, still holding the replicaSet's lock, so the next operation on it waits.
fn settle_later(d: &D, lock: tokio::sync::OwnedMutexGuard<()>, svc: &ReplicaSets<'_>) {
    let Some(p) = svc.take_pending() else {
        return;
    };
    let d = d.clone();
    tokio::spawn(async move {
        let _lock = lock;
        let r = async {
            let cx = ctx(&d).await?;
            cx.svc(&d, false).settle(p).await
        }
        .await;
        if let Err(e) = r {
            tracing::error!(
                "finishing a new version after the reply: {e} (retried at the next start)"
            );
        }
    });
}

async fn delete(State(d): St, Extension(c): Who, Path(name): Path<String>) -> Api<()> {
    let _ready = d.ready().await?;
    let _lock = d.locks.lock(&format!("rs:{name}")).await;
    let cx = ctx(&d).await?;
    let svc = cx.svc(&d, false);
    owned(&c, &svc, &name, "delete").await?;
    svc.delete(&name).await?;
    Ok(Json(()))
}

async fn files_bytes(State(d): St, Extension(c): Who) -> Api<u64> {
    c.require_member()?;
    let _ready = d.ready().await?;
    let cx = ctx(&d).await?;
    Ok(Json(cx.svc(&d, false).files_bytes()?))
}

#[derive(serde::Deserialize)]
struct LogsQuery {
    #[serde(default)]
    follow: bool,
}

/// The container's output as plain text, streamed while `follow`.
async fn logs(
    State(d): St,
    Extension(c): Who,
    Path(name): Path<String>,
    Query(q): Query<LogsQuery>,
) -> Result<Response, ApiError> {
    let cx = ctx(&d).await?;
    let svc = cx.svc(&d, false);
    owned(&c, &svc, &name, "read the logs of").await?;
    let id = svc.container_id(&name).await?;
    let docker = cx.docker.clone();
    // A task reads the engine's stream; a client that goes away drops the receiver, which ends it.
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<bytes::Bytes>>(64);
    tokio::spawn(async move {
        let mut logs = Box::pin(docker.logs(&id, q.follow));
        while let Some(chunk) = logs.next().await {
            if tx.send(chunk.map(bytes::Bytes::from)).await.is_err() {
                break;
            }
        }
    });
    let stream = tokio_stream::wrappers::ReceiverStream::new(rx);
    Ok((
        [("content-type", "text/plain; charset=utf-8")],
        Body::from_stream(stream),
    )
        .into_response())
}

/// A shell in the container, as the container's user (a member's own), over a WebSocket:
/// binary or text frames in are typed; `{"resize":[cols,rows]}` resizes; output comes as binary.
async fn terminal(
    State(d): St,
    Extension(c): Who,
    Path(name): Path<String>,
    ws: WebSocketUpgrade,
) -> Result<Response, ApiError> {
    let cx = ctx(&d).await?;
    let svc = cx.svc(&d, false);
    owned(&c, &svc, &name, "open a terminal in").await?;
    let id = svc.container_id(&name).await?;
    let docker = cx.docker.clone();
    let term = docker.terminal(&id).await?;
    Ok(ws.on_upgrade(move |socket| pump(socket, docker, term)))
}

async fn pump(socket: WebSocket, docker: DockerAdapter, term: gpudeck_core::docker::Terminal) {
    let (mut tx, mut rx) = socket.split();
    let mut output = term.output;
    let out = tokio::spawn(async move {
        while let Some(Ok(bytes)) = output.next().await {
            if tx.send(Message::Binary(bytes.into())).await.is_err() {
                break;
            }
        }
        let _ = tx.send(Message::Close(None)).await;
    });
    let mut input = term.input;
    while let Some(Ok(msg)) = rx.next().await {
        let data: Vec<u8> = match msg {
            Message::Binary(b) => b.to_vec(),
            Message::Text(t) => {
                if let Some([c, r]) = resize_of(t.as_str()) {
                    let _ = docker.resize_terminal(&term.exec_id, c, r).await;
                    continue;
                }
                t.as_str().as_bytes().to_vec()
            }
            Message::Close(_) => break,
            _ => continue,
        };
        if input.write_all(&data).await.is_err() || input.flush().await.is_err() {
            break;
        }
    }
    out.abort();
}

/// `{"resize":[cols,rows]}` → `[cols, rows]`.
fn resize_of(text: &str) -> Option<[u16; 2]> {
    let v: serde_json::Value = serde_json::from_str(text).ok()?;
    serde_json::from_value(v.get("resize")?.clone()).ok()
}
