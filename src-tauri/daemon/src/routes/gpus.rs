//! GPUs: a fresh reading, the history, and a stream of samples. Everyone who may use GPU Deck
//! sees every GPU and who holds it.

use std::collections::HashMap;
use std::convert::Infallible;
use std::path::Path;

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::routing::get;
use axum::Extension;
use axum::{Json, Router};
use futures_util::{Stream, StreamExt};
use gpudeck_core::gpu::{self, GpuSnapshot, HistoryPoint, NvmlSource};
use gpudeck_core::paths::nvml_lib_from_env;
use tokio_stream::wrappers::WatchStream;

use super::{Api, ApiError, St, Who};
use crate::state::Daemon;

pub fn routes() -> Router<std::sync::Arc<Daemon>> {
    Router::new()
        .route("/v1/gpus", get(snapshot))
        .route("/v1/gpus/history", get(history))
        .route("/v1/gpus/stream", get(stream))
}

/// A reading taken now (the CLI's `gpudeck gpus`), with every container that holds a GPU.
async fn snapshot(State(d): St, Extension(c): Who) -> Api<GpuSnapshot> {
    c.require_member()?;
    let dir = match d.docker().await {
        Ok(docker) => docker.directory().await.unwrap_or_default(),
        Err(_) => Default::default(),
    };
    let snap = tokio::task::spawn_blocking(move || {
        NvmlSource::open(nvml_lib_from_env().as_deref())
            .and_then(|s| gpu::read_snapshot(&s, &dir, Path::new("/proc")))
    })
    .await
    .map_err(|e| gpudeck_core::CoreError::NvmlUnavailable(e.to_string()))??;
    Ok(Json(snap))
}

async fn history(State(d): St, Extension(c): Who) -> Api<HashMap<u32, Vec<HistoryPoint>>> {
    c.require_member()?;
    Ok(Json(d.sampler.history()))
}

/// Server-sent events `sample`, the latest snapshot first. A client that goes away (even killed)
/// only ends its own stream.
async fn stream(
    State(d): St,
    Extension(c): Who,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    c.require_member()?;
    let samples = WatchStream::new(d.sampler.subscribe()).map(|s| {
        Ok(Event::default()
            .event("sample")
            .json_data(&*s)
            .unwrap_or_default())
    });
    Ok(Sse::new(samples).keep_alive(KeepAlive::default()))
}
