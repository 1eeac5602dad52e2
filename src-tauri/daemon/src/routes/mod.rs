//! The local API's routes, a file per domain. A handler checks who may, takes its lock, and calls
//! the core; errors reach the client as `{code, message}` with a fitting HTTP status.

mod catalog;
mod gpus;
mod images;
mod policy;
mod registries;
mod replicasets;
mod system;
mod volumes;

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json, Router};
use gpudeck_core::policy::Caller;
use gpudeck_core::CoreError;

use crate::state::Daemon;

pub type St = State<Arc<Daemon>>;
pub type Who = Extension<Caller>;

/// A core error as an HTTP answer.
pub struct ApiError(pub CoreError);

impl From<CoreError> for ApiError {
    fn from(e: CoreError) -> Self {
        ApiError(e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status =
            StatusCode::from_u16(self.0.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut resp = (status, Json(self.0.payload())).into_response();
        resp.extensions_mut()
            .insert(ErrorCode(self.0.code().to_string()));
        resp
    }
}

/// The error code of a failed request, for the audit.
#[derive(Clone)]
struct ErrorCode(String);

pub type Api<T> = Result<Json<T>, ApiError>;

/// Request bodies are small: 1 MiB at most.
pub const BODY_LIMIT: usize = 1 << 20;

pub fn router(d: Arc<Daemon>) -> Router {
    Router::new()
        .merge(system::routes())
        .merge(gpus::routes())
        .merge(replicasets::routes())
        .merge(volumes::routes())
        .merge(policy::routes())
        .merge(images::routes())
        .merge(catalog::routes())
        .merge(registries::routes())
        .layer(axum::middleware::from_fn_with_state(d.clone(), audit))
        .layer(axum::middleware::from_fn(crate::identity::identify))
        .layer(axum::extract::DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(d)
}

/// Records every request that changes something: who, what, on what, how it ended.
async fn audit(State(d): St, req: Request, next: Next) -> Response {
    let changes = req.method() != axum::http::Method::GET;
    let caller = req.extensions().get::<Caller>().cloned();
    let action = format!("{} {}", req.method(), req.uri().path());
    let resp = next.run(req).await;
    if let (true, Some(c)) = (changes, caller) {
        let outcome = resp
            .extensions()
            .get::<ErrorCode>()
            .map(|e| e.0.clone())
            .unwrap_or_else(|| resp.status().as_u16().to_string());
        let subject = action
            .split('/')
            .nth(3)
            .map(|s| s.to_string())
            .unwrap_or_default();
        let _ = d.db(|s| s.audit_add(c.uid, &c.user, &action, &subject, &outcome));
    }
    resp
}
