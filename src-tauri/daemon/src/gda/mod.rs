//! The REST API of gpu-docker-api (mayooot/gpu-docker-api), served by gpudeckd on TCP when
//! `--gda-listen ADDR` is given, so that a lab's scripts written for it keep working: the same
//! paths, methods, bodies and `{"code","msg","data"}` envelope with its codes, mapped onto GPU
//! Deck's replicaSets, volumes, GPUs and ports — the objects the app and the CLI see, with GPU
//! Deck's behaviour where gpu-docker-api's loses data (README: "gpu-docker-api compatibility").
//!
//! TCP has no peer credentials: a request needs `Authorization: Bearer TOKEN` (`gpudeck token
//! create --user USER`), and then has that user's rights and limits. Each handler calls the local
//! API in this process as that user (the same routes, checks, locks and audit as the socket).

mod routes;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use gpudeck_api::Client;
use gpudeck_core::policy::Caller;
use gpudeck_core::{CoreError, Result};
use serde_json::{json, Value};

use crate::state::Daemon;

/// Request bodies are capped (gpu-docker-api's are a few hundred bytes).
pub const BODY_LIMIT: usize = 64 * 1024;

/// What the handlers share: the service, and its local API router to call as the token's user.
#[derive(Clone)]
pub struct Gda {
    pub d: Arc<Daemon>,
    local: Router,
}

impl Gda {
    pub fn client(&self, caller: &Caller) -> Client {
        Client::with_transport(Arc::new(crate::AsCaller {
            router: self.local.clone(),
            caller: caller.clone(),
        }))
    }
}

/// The envelope: always HTTP 200 (as gpu-docker-api), `code` 200 and `msg` "Success" on success.
pub fn ok(data: Value) -> Response {
    Json(json!({ "code": 200, "msg": "Success", "data": data })).into_response()
}

/// gpu-docker-api's fixed message of a code.
pub fn message(code: u32) -> &'static str {
    match code {
        1000 => "Failed to parse body",
        1001 => "Image name cannot be empty",
        1002 => "Container name cannot be empty",
        1003 => "Container name cannot contain dash",
        1004 => "Failed to start container",
        1005 => "Failed to delete container",
        1006 => "Failed to execute a command",
        1007 => "Failed to patch container",
        1008 => "Container already exists",
        1010 => "Failed to stop container",
        1011 => "Failed to restart container",
        1012 => "GPU count must be >= 0",
        1013 => "Not enough GPU resources",
        1014 => "Not enough port resources",
        1015 => "Failed to commit image",
        1016 => "Failed to get container info",
        1017 => "Failed to get container history",
        1018 => "Failed to shut down container",
        1020 => "Container version must be >= 0",
        1021 => "rollback failed",
        1022 => "no need to rollback",
        1023 => "volume create failed",
        1025 => "Failed to delete volume",
        1026 => "volume already exists",
        1028 => "Volume doesn't need patch",
        1029 => "size unit not supported (KB, MB, GB, TB)",
        1030 => "Volume size is smaller than used",
        1031 => "Volume name cannot contain dash",
        1032 => "Volume name cannot start with /",
        1033 => "Failed to get volume info",
        1034 => "Failed to get volume history",
        1035 => "Failed to patch volume",
        _ => "Error",
    }
}

/// A failure: the code and its fixed message, `data` null, and GPU Deck's own sentence (what
/// happened and what to do) in `detail`, a field gpu-docker-api's clients ignore. Refusals of
/// who may (another user's replicaSet, no group) are HTTP 403 with code 403.
pub fn fail(code: u32, e: Option<&CoreError>) -> Response {
    let detail = e.map(|e| e.to_string());
    if let Some(e) = e {
        if matches!(e.code(), "forbidden" | "not_in_group") {
            return (
                StatusCode::FORBIDDEN,
                Json(json!({ "code": 403, "msg": "Forbidden", "data": null, "detail": detail })),
            )
                .into_response();
        }
    }
    Json(json!({ "code": code, "msg": message(code), "data": null, "detail": detail }))
        .into_response()
}

fn unauthorized(why: &str) -> Response {
    (
        StatusCode::UNAUTHORIZED,
        [("www-authenticate", "Bearer")],
        Json(json!({ "code": 401, "msg": "Unauthorized", "data": null, "detail": why })),
    )
        .into_response()
}

/// The token's user becomes the caller; no token, or an unknown one: 401 and nothing happens.
async fn authenticate(State(g): State<Gda>, mut req: Request, next: Next) -> Response {
    let token = req
        .headers()
        .get("authorization")
        .and_then(|h| h.to_str().ok())
        .and_then(|h| {
            h.strip_prefix("Bearer ")
                .or_else(|| h.strip_prefix("bearer "))
        })
        .map(str::trim)
        .map(str::to_string);
    let Some(token) = token.filter(|t| !t.is_empty()) else {
        return unauthorized("send Authorization: Bearer TOKEN (an admin makes one: gpudeck token create --user USER)");
    };
    let user = match g.d.db(|s| s.token_user(&token)) {
        Ok(Some(u)) => u,
        Ok(None) => return unauthorized("that token is not known (removed, or mistyped)"),
        Err(e) => return fail(500, Some(&e)),
    };
    let Some(uid) = nix::unistd::User::from_name(&user)
        .ok()
        .flatten()
        .map(|u| u.uid.as_raw())
    else {
        return unauthorized("the token's user no longer exists on this machine");
    };
    req.extensions_mut().insert(crate::identity::caller_of(uid));
    next.run(req).await
}

/// CORS as gpu-docker-api answers it: `OPTIONS` → 204 with `Access-Control-Allow-Origin: *`.
async fn cors(req: Request, next: Next) -> Response {
    if req.method() == axum::http::Method::OPTIONS {
        return (
            StatusCode::NO_CONTENT,
            [
                ("access-control-allow-origin", "*"),
                (
                    "access-control-allow-headers",
                    "authorization, content-type",
                ),
                (
                    "access-control-allow-methods",
                    "GET, POST, PATCH, DELETE, OPTIONS",
                ),
            ],
        )
            .into_response();
    }
    next.run(req).await
}

pub fn router(d: Arc<Daemon>) -> Router {
    let g = Gda {
        local: crate::routes::router(d.clone()),
        d,
    };
    Router::new()
        .nest("/api/v1", routes::routes())
        .layer(axum::middleware::from_fn_with_state(
            g.clone(),
            authenticate,
        ))
        .route(
            "/ping",
            axum::routing::get(|| async { Json(json!({ "message": "pong" })) }),
        )
        .layer(axum::middleware::from_fn(cors))
        .layer(axum::extract::DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(g)
}

/// Where and how to listen.
#[derive(Debug)]
pub struct Listen {
    pub addr: SocketAddr,
    pub tls: Option<(PathBuf, PathBuf)>,
}

/// Checks the address and the TLS files before anything is bound: a non-loopback address needs
/// TLS (tokens would cross the network in clear text).
pub fn check(addr: &str, cert: Option<PathBuf>, key: Option<PathBuf>) -> Result<Listen> {
    let addr: SocketAddr = addr.parse().map_err(|e| CoreError::InvalidInput {
        what: format!("--gda-listen \"{addr}\""),
        reason: format!("{e}; give an address and port such as 127.0.0.1:2378"),
    })?;
    let tls = match (cert, key) {
        (Some(c), Some(k)) => Some((c, k)),
        (None, None) => None,
        _ => {
            return Err(CoreError::InvalidInput {
                what: "--gda-tls-cert / --gda-tls-key".into(),
                reason: "give both, the certificate and its key (PEM)".into(),
            })
        }
    };
    if tls.is_none() && !addr.ip().is_loopback() {
        return Err(CoreError::InvalidInput {
            what: format!("--gda-listen {addr}"),
            reason: "listening beyond this machine needs TLS, or tokens cross the network in clear text: add --gda-tls-cert CERT.pem --gda-tls-key KEY.pem, or listen on 127.0.0.1".into(),
        });
    }
    Ok(Listen { addr, tls })
}

/// Serves the REST API until the process ends.
pub async fn serve(d: Arc<Daemon>, l: Listen) -> Result<()> {
    let listener = tokio::net::TcpListener::bind(l.addr)
        .await
        .map_err(|e| CoreError::io(l.addr.to_string(), e))?;
    let gate = d.gate.clone();
    let app = router(d);
    let acceptor = match l.tls {
        None => None,
        Some((cert, key)) => {
            let read = |p: &PathBuf| std::fs::read(p).map_err(|e| CoreError::io(p, e));
            let identity =
                native_tls::Identity::from_pkcs8(&read(&cert)?, &read(&key)?).map_err(|e| {
                    CoreError::InvalidInput {
                        what: "--gda-tls-cert / --gda-tls-key".into(),
                        reason: format!("{e} (PEM certificate and PKCS#8 key expected)"),
                    }
                })?;
            Some(tokio_native_tls::TlsAcceptor::from(
                native_tls::TlsAcceptor::new(identity).map_err(|e| CoreError::InvalidInput {
                    what: "TLS".into(),
                    reason: e.to_string(),
                })?,
            ))
        }
    };
    loop {
        let (tcp, from) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                crate::conn::accept_failed(&e).await;
                continue;
            }
        };
        // Bounded per address and in all, with the socket's connections (`conn`).
        let Some(permit) = gate.admit(&from.ip().to_string()) else {
            continue;
        };
        let (acceptor, app) = (acceptor.clone(), app.clone());
        tokio::spawn(async move {
            match acceptor {
                None => crate::conn::serve(tcp, app, from, permit).await,
                Some(acceptor) => {
                    let limit = permit.handshake_timeout();
                    let Ok(Ok(tls)) = tokio::time::timeout(limit, acceptor.accept(tcp)).await
                    else {
                        return;
                    };
                    crate::conn::serve(tls, app, from, permit).await
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn beyond_loopback_needs_tls() {
        assert!(check("127.0.0.1:2378", None, None).is_ok());
        assert!(check("[::1]:2378", None, None).is_ok());
        let e = check("0.0.0.0:2378", None, None).unwrap_err().to_string();
        assert!(e.contains("needs TLS"), "{e}");
        assert!(check("0.0.0.0:2378", Some("c".into()), Some("k".into())).is_ok());
        assert!(check("0.0.0.0:2378", Some("c".into()), None).is_err());
        assert!(check("nonsense", None, None).is_err());
    }
}
