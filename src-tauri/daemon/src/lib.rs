//! gpudeckd: the one privileged GPU Deck process. It holds the data folder, the store, the Docker
//! connection, NVML sampling, loop devices and quotas, and serves the local API (see
//! `gpudeck-api`) on a Unix socket; who calls is what the socket's peer credentials say.

pub mod conn;
pub mod gda;
pub mod identity;
pub mod routes;
pub mod state;

use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;

use gpudeck_api::client::{Body, BoxError, BoxFuture, Transport};
use gpudeck_api::Client;
use gpudeck_core::paths::DataDir;
use gpudeck_core::policy::{self, Caller};
use gpudeck_core::{CoreError, Result};
use http_body_util::BodyExt;
use nix::fcntl::{Flock, FlockArg};

pub use state::Daemon;

/// Holds the data folder for this process: one process at a time runs operations on it.
pub struct DataLock(#[allow(dead_code)] Flock<File>);

pub fn lock_data_dir(data: &DataDir) -> Result<DataLock> {
    data.ensure()?;
    let path = data.path().join("gpudeck.lock");
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| CoreError::io(&path, e))?;
    match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(mut lock) => {
            let _ = lock.set_len(0);
            let _ = write!(&mut *lock, "{}", std::process::id());
            Ok(DataLock(lock))
        }
        Err((mut file, _)) => {
            let mut pid = String::new();
            let _ = file.read_to_string(&mut pid);
            Err(CoreError::DataDirBusy {
                path: data.path().display().to_string(),
                pid: pid.trim().to_string(),
            })
        }
    }
}

/// The service's router run in this process as one caller: the same routes, rules, locks and
/// audit as the socket. The REST API (`gda`) calls it as a token's user.
#[derive(Clone)]
pub struct AsCaller {
    pub router: axum::Router,
    pub caller: Caller,
}

impl Transport for AsCaller {
    fn send(
        &self,
        req: hyper::Request<http_body_util::Full<bytes::Bytes>>,
    ) -> BoxFuture<'_, Result<hyper::Response<Body>>> {
        use tower::ServiceExt;
        Box::pin(async move {
            let mut req = req.map(axum::body::Body::new);
            req.extensions_mut().insert(self.caller.clone());
            let resp = match self.router.clone().oneshot(req).await {
                Ok(r) => r,
                Err(never) => match never {},
            };
            Ok(resp.map(|b| b.map_err(|e| Box::new(e) as BoxError).boxed_unsync()))
        })
    }
}

/// `gpudeck --local` (root, when no service runs): the router in this process as this process's
/// user, holding the data folder's lock.
pub struct InProcess {
    inner: AsCaller,
    _lock: DataLock,
}

impl Transport for InProcess {
    fn send(
        &self,
        req: hyper::Request<http_body_util::Full<bytes::Bytes>>,
    ) -> BoxFuture<'_, Result<hyper::Response<Body>>> {
        self.inner.send(req)
    }
}

/// `--local`: takes the data folder (refused while a service holds it), settles what a crash
/// left, and gives a client that runs every request in this process.
pub async fn local(data: DataDir) -> Result<Client> {
    let lock = lock_data_dir(&data)?;
    let d = Daemon::start(data)?;
    let all = d.ready.clone().write_owned().await;
    d.recover(all).await;
    let uid = nix::unistd::getuid().as_raw();
    Ok(Client::with_transport(Arc::new(InProcess {
        inner: AsCaller {
            router: routes::router(d),
            caller: identity::caller_of(uid),
        },
        _lock: lock,
    })))
}

/// Binds the socket: its folder made, a stale socket replaced, mode 0660, group `gpudeck` (when
/// the group exists; else only root can connect, which the log says).
pub fn bind_socket(path: &Path) -> Result<tokio::net::UnixListener> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| CoreError::io(dir, e))?;
        let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755));
    }
    if path.exists() {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(CoreError::Io {
                path: path.display().to_string(),
                reason: "another gpudeckd is serving on it; stop it first".into(),
            });
        }
        std::fs::remove_file(path).map_err(|e| CoreError::io(path, e))?;
    }
    let listener = tokio::net::UnixListener::bind(path).map_err(|e| CoreError::io(path, e))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))
        .map_err(|e| CoreError::io(path, e))?;
    match nix::unistd::Group::from_name(policy::GROUP_MEMBERS).ok().flatten() {
        Some(g) => {
            if let Err(e) = nix::unistd::chown(path, None, Some(g.gid)) {
                tracing::warn!("could not give {} to the group gpudeck: {e}", path.display());
            }
        }
        None => tracing::warn!(
            "the group \"gpudeck\" does not exist, so only root can use {}: `sudo groupadd --system gpudeck`",
            path.display()
        ),
    }
    Ok(listener)
}

/// Serves until `shutdown` resolves; recovery runs first, while requests that change things wait.
/// Connections are bounded per uid and in all (`conn`).
pub async fn serve(
    listener: tokio::net::UnixListener,
    d: Arc<Daemon>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let all = d.ready.clone().write_owned().await;
    let rd = d.clone();
    tokio::spawn(async move { rd.recover(all).await });
    let gate = d.gate.clone();
    let app = routes::router(d);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            r = listener.accept() => {
                let stream = match r {
                    Ok((s, _)) => s,
                    Err(e) => { conn::accept_failed(&e).await; continue; }
                };
                let peer = identity::Peer { uid: stream.peer_cred().ok().map(|c| c.uid()) };
                let key = peer.uid.map(|u| format!("uid {u}")).unwrap_or_else(|| "unknown".into());
                let Some(permit) = gate.admit(&key) else {
                    tracing::debug!("{key} is at its bound of connections: one more was closed");
                    continue;
                };
                tokio::spawn(conn::serve(stream, app.clone(), peer, permit));
            }
            () = &mut shutdown => break,
        }
    }
    // Requests in flight get a few seconds; streams (an app's GPU samples) would keep them
    // forever, so they are cut after that.
    gate.drain(std::time::Duration::from_secs(3)).await;
    Ok(())
}
