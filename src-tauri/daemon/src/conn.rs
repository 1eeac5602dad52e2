//! Connections are bounded, so that no one (a member on the socket, or anyone who reaches the
//! REST port, token or not) can hold every file descriptor of the service and hang every user:
//! at most `per_peer` connections per peer (a uid on the socket, an address on TCP) and `total`
//! in all (a connection over either is closed at once); a connection that has not sent a whole
//! request head within `header_timeout` (idle or slow, keep-alive between requests too) is
//! closed; a TLS handshake gets `handshake_timeout`. Streams (samples, logs, a terminal) are
//! requests under way and are not cut.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::connect_info::ConnectInfo;
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};

/// The bounds in force (`from_env`: `GPUDECK_MAX_CONNECTIONS`,
/// `GPUDECK_MAX_CONNECTIONS_PER_PEER`, `GPUDECK_HEADER_TIMEOUT_MS`).
#[derive(Debug, Clone)]
pub struct Limits {
    pub total: usize,
    pub per_peer: usize,
    pub header_timeout: Duration,
    pub handshake_timeout: Duration,
}

impl Limits {
    /// The defaults, within the file descriptors the process may open (half of them: the
    /// rest are the engine's, the database's and the volumes').
    pub fn from_env() -> Limits {
        let env = |k: &str| std::env::var(k).ok().and_then(|v| v.parse::<u64>().ok());
        let fds = nofile_soft().unwrap_or(1024) as usize;
        let total = env("GPUDECK_MAX_CONNECTIONS")
            .map(|v| v as usize)
            .unwrap_or_else(|| (fds / 2).clamp(64, 4096));
        Limits {
            total,
            per_peer: env("GPUDECK_MAX_CONNECTIONS_PER_PEER")
                .map(|v| v as usize)
                .unwrap_or(128)
                .min(total),
            header_timeout: Duration::from_millis(
                env("GPUDECK_HEADER_TIMEOUT_MS").unwrap_or(15_000),
            ),
            handshake_timeout: Duration::from_secs(10),
        }
    }
}

/// The soft limit on open files, raised to the hard one first (systemd's unit sets both).
pub fn raise_nofile() -> Option<u64> {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let (_, hard) = getrlimit(Resource::RLIMIT_NOFILE).ok()?;
    let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
    nofile_soft()
}

fn nofile_soft() -> Option<u64> {
    nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
        .ok()
        .map(|(soft, _)| soft)
}

/// Counts connections per peer and in all.
#[derive(Debug)]
pub struct Gate {
    limits: Limits,
    total: AtomicUsize,
    per_peer: Mutex<HashMap<String, usize>>,
}

/// One admitted connection; dropping it gives its place back.
pub struct Permit {
    gate: Arc<Gate>,
    peer: String,
}

impl Gate {
    pub fn new(limits: Limits) -> Arc<Gate> {
        Arc::new(Gate {
            limits,
            total: AtomicUsize::new(0),
            per_peer: Mutex::new(HashMap::new()),
        })
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Connections held now.
    pub fn held(&self) -> usize {
        self.total.load(Ordering::SeqCst)
    }

    /// A place for a connection from `peer`, or `None` when it or everyone is at the bound.
    pub fn admit(self: &Arc<Self>, peer: &str) -> Option<Permit> {
        let mut g = self.per_peer.lock().unwrap_or_else(|e| e.into_inner());
        let mine = g.get(peer).copied().unwrap_or(0);
        if mine >= self.limits.per_peer || self.total.load(Ordering::SeqCst) >= self.limits.total {
            return None;
        }
        g.insert(peer.to_string(), mine + 1);
        self.total.fetch_add(1, Ordering::SeqCst);
        Some(Permit {
            gate: self.clone(),
            peer: peer.to_string(),
        })
    }

    /// Waits until no connection is held, at most `grace`.
    pub async fn drain(&self, grace: Duration) {
        let t0 = std::time::Instant::now();
        while self.held() > 0 && t0.elapsed() < grace {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Permit {
    /// How long a TLS handshake on this connection may take.
    pub fn handshake_timeout(&self) -> Duration {
        self.gate.limits.handshake_timeout
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut g = self.gate.per_peer.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = g.get_mut(&self.peer) {
            *n -= 1;
            if *n == 0 {
                g.remove(&self.peer);
            }
        }
        self.gate.total.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Serves one admitted connection: HTTP/1 with upgrades (the terminal's WebSocket), the request
/// head timed out, `info` (who is at the other end) put into every request.
pub async fn serve<I, T>(io: I, app: Router, info: T, permit: Permit)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    T: Clone + Send + Sync + 'static,
{
    let timeout = permit.gate.limits.header_timeout;
    let svc =
        tower::ServiceExt::map_request(app, move |mut r: hyper::Request<hyper::body::Incoming>| {
            r.extensions_mut().insert(ConnectInfo(info.clone()));
            r.map(axum::body::Body::new)
        });
    let svc = hyper_util::service::TowerToHyperService::new(svc);
    let _ = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(timeout)
        .serve_connection(TokioIo::new(io), svc)
        .with_upgrades()
        .await;
    drop(permit);
}

/// After a failed accept (out of file descriptors, say), a pause before the next, so that the
/// loop does not spin while the descriptors come back.
pub async fn accept_failed(e: &std::io::Error) {
    tracing::warn!("accepting a connection failed: {e}");
    tokio::time::sleep(Duration::from_millis(100)).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn places_per_peer_and_in_all() {
        let g = Gate::new(Limits {
            total: 3,
            per_peer: 2,
            header_timeout: Duration::from_secs(1),
            handshake_timeout: Duration::from_secs(1),
        });
        let a1 = g.admit("a").unwrap();
        let _a2 = g.admit("a").unwrap();
        assert!(g.admit("a").is_none(), "a peer's bound");
        let _b1 = g.admit("b").unwrap();
        assert!(g.admit("c").is_none(), "the bound in all");
        drop(a1);
        assert_eq!(g.held(), 2);
        assert!(g.admit("c").is_some(), "a place given back is free again");
    }
}
