//! The typed client. Over gpudeckd's Unix socket (one HTTP/1 connection a request: cheap on a
//! local socket), or over any `Transport` (the CLI's `--local` runs the service's router
//! in-process through one).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use gpudeck_core::alloc::PortMap;
use gpudeck_core::catalog::entry::Rendered;
use gpudeck_core::catalog::{CatalogItem, ImportFormat, Imported};
use gpudeck_core::docker::{DockerStatus, ExecOutput};
use gpudeck_core::doctor::DoctorCheck;
use gpudeck_core::gpu::{GpuSnapshot, HistoryPoint};
use gpudeck_core::image::jobs::JobView;
use gpudeck_core::image::registry::{RemoteDeleted, RemoteImageInfo};
use gpudeck_core::image::{ImageDetail, LocalImage, PruneReport, Registry, RegistryAdd};
use gpudeck_core::policy::store::AuditEntry;
use gpudeck_core::policy::tokens::{NewToken, TokenInfo};
use gpudeck_core::policy::{Caller, PolicyRow};
use gpudeck_core::replicaset::{RsInfo, RsSpec};
use gpudeck_core::settings::Settings;
use gpudeck_core::store::{VersionRecord, VolumeVersion};
use gpudeck_core::volume::VolumeInfo;
use gpudeck_core::{CoreError, ErrorPayload, Result};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::*;

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
pub type Body = UnsyncBoxBody<Bytes, BoxError>;
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Carries one request to the service and brings its response back.
pub trait Transport: Send + Sync {
    fn send(&self, req: Request<Full<Bytes>>) -> BoxFuture<'_, Result<Response<Body>>>;
}

/// gpudeckd's Unix socket.
pub struct UnixTransport {
    pub socket: String,
}

impl UnixTransport {
    fn unreachable(&self, e: &std::io::Error) -> CoreError {
        match e.kind() {
            std::io::ErrorKind::PermissionDenied => CoreError::ServiceDenied {
                socket: self.socket.clone(),
            },
            _ => CoreError::ServiceUnreachable {
                socket: self.socket.clone(),
                reason: e.to_string(),
            },
        }
    }

    pub async fn connect(&self) -> Result<tokio::net::UnixStream> {
        tokio::net::UnixStream::connect(&self.socket)
            .await
            .map_err(|e| self.unreachable(&e))
    }
}

impl Transport for UnixTransport {
    fn send(&self, req: Request<Full<Bytes>>) -> BoxFuture<'_, Result<Response<Body>>> {
        Box::pin(async move {
            let stream = self.connect().await?;
            let io = hyper_util::rt::TokioIo::new(stream);
            let lost = |e: hyper::Error| CoreError::ServiceUnreachable {
                socket: self.socket.clone(),
                reason: e.to_string(),
            };
            let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
                .await
                .map_err(lost)?;
            tokio::spawn(async move {
                let _ = conn.await;
            });
            let resp = sender.send_request(req).await.map_err(lost)?;
            Ok(resp.map(|b| b.map_err(|e| Box::new(e) as BoxError).boxed_unsync()))
        })
    }
}

/// The typed client: one method a route.
#[derive(Clone)]
pub struct Client {
    transport: Arc<dyn Transport>,
    socket: Option<String>,
}

fn enc(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

fn io_err(e: impl ToString) -> CoreError {
    CoreError::Io {
        path: "the service's reply".into(),
        reason: e.to_string(),
    }
}

impl Client {
    /// A client of the service at `socket`.
    pub fn unix(socket: impl Into<String>) -> Client {
        let socket = socket.into();
        Client {
            transport: Arc::new(UnixTransport {
                socket: socket.clone(),
            }),
            socket: Some(socket),
        }
    }

    pub fn with_transport(t: Arc<dyn Transport>) -> Client {
        Client {
            transport: t,
            socket: None,
        }
    }

    pub fn socket(&self) -> Option<&str> {
        self.socket.as_deref()
    }

    async fn raw(
        &self,
        method: &str,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> Result<Response<Body>> {
        let bytes = match &body {
            Some(b) => Bytes::from(serde_json::to_vec(b).map_err(io_err)?),
            None => Bytes::new(),
        };
        let mut req = Request::builder()
            .method(method)
            .uri(format!("http://gpudeck{path}"))
            .header("host", "gpudeck");
        if body.is_some() {
            req = req.header("content-type", "application/json");
        }
        let req = req.body(Full::new(bytes)).map_err(io_err)?;
        let resp = self.transport.send(req).await?;
        if resp.status().is_success() {
            return Ok(resp);
        }
        let status = resp.status();
        let body = resp.into_body().collect().await.map_err(io_err)?.to_bytes();
        Err(match serde_json::from_slice::<ErrorPayload>(&body) {
            Ok(p) => p.into(),
            Err(_) => CoreError::Remote {
                code: "service_error".into(),
                message: format!(
                    "GPU Deck's service answered {status}: {}",
                    String::from_utf8_lossy(&body)
                ),
            },
        })
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: &str,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> Result<T> {
        let resp = self.raw(method, path, body).await?;
        let bytes = resp.into_body().collect().await.map_err(io_err)?.to_bytes();
        serde_json::from_slice(&bytes).map_err(io_err)
    }

    async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T> {
        self.call("GET", path, None).await
    }

    async fn post<B: Serialize, T: DeserializeOwned>(&self, path: &str, body: &B) -> Result<T> {
        self.call(
            "POST",
            path,
            Some(serde_json::to_value(body).map_err(io_err)?),
        )
        .await
    }

    pub async fn whoami(&self) -> Result<Caller> {
        self.get("/v1/whoami").await
    }
    pub async fn docker_status(&self) -> Result<DockerStatus> {
        self.get("/v1/docker").await
    }
    pub async fn doctor(&self) -> Result<Vec<DoctorCheck>> {
        self.get("/v1/doctor").await
    }
    pub async fn settings(&self) -> Result<Settings> {
        self.get("/v1/settings").await
    }
    pub async fn set_settings(&self, s: &Settings) -> Result<Settings> {
        self.call(
            "PUT",
            "/v1/settings",
            Some(serde_json::to_value(s).map_err(io_err)?),
        )
        .await
    }
    pub async fn gpus(&self) -> Result<GpuSnapshot> {
        self.get("/v1/gpus").await
    }
    pub async fn gpu_history(&self) -> Result<std::collections::HashMap<u32, Vec<HistoryPoint>>> {
        self.get("/v1/gpus/history").await
    }
    pub async fn ports(&self) -> Result<PortMap> {
        self.get("/v1/ports").await
    }
    pub async fn images(&self) -> Result<Vec<String>> {
        self.get("/v1/images").await
    }

    pub async fn rs_list(&self) -> Result<Vec<RsInfo>> {
        self.get("/v1/replicasets").await
    }
    pub async fn rs_run(&self, name: &str, spec: RsSpec) -> Result<RsInfo> {
        self.post(
            "/v1/replicasets",
            &RunRequest {
                name: name.into(),
                spec,
            },
        )
        .await
    }
    pub async fn rs_info(&self, name: &str) -> Result<RsInfo> {
        self.get(&format!("/v1/replicasets/{}", enc(name))).await
    }
    pub async fn rs_history(&self, name: &str) -> Result<Vec<VersionRecord>> {
        self.get(&format!("/v1/replicasets/{}/history", enc(name)))
            .await
    }
    pub async fn rs_patch(&self, name: &str, p: &PatchRequest) -> Result<RsInfo> {
        self.post(&format!("/v1/replicasets/{}/patch", enc(name)), p)
            .await
    }
    pub async fn rs_rollback(&self, name: &str, version: u32, config_only: bool) -> Result<RsInfo> {
        self.post(
            &format!("/v1/replicasets/{}/rollback", enc(name)),
            &RollbackRequest {
                version,
                config_only,
            },
        )
        .await
    }
    pub async fn rs_prune(&self, name: &str, keep: u32) -> Result<PruneReply> {
        self.post(
            &format!("/v1/replicasets/{}/prune", enc(name)),
            &PruneRequest { keep },
        )
        .await
    }
    pub async fn rs_commit(&self, name: &str, image: &str, message: &str) -> Result<CommitReply> {
        self.post(
            &format!("/v1/replicasets/{}/commit", enc(name)),
            &CommitRequest {
                image: image.into(),
                message: message.into(),
            },
        )
        .await
    }
    pub async fn rs_exec(
        &self,
        name: &str,
        command: &[String],
        timeout: Duration,
    ) -> Result<ExecOutput> {
        self.post(
            &format!("/v1/replicasets/{}/exec", enc(name)),
            &ExecRequest {
                command: command.to_vec(),
                timeout_s: timeout.as_secs(),
            },
        )
        .await
    }
    /// `rs_exec`, streamed: each piece as the command prints it, the exit code last.
    pub async fn rs_exec_stream(
        &self,
        name: &str,
        command: &[String],
        timeout: Duration,
    ) -> Result<impl Stream<Item = Result<gpudeck_core::docker::ExecFrame>> + Send + Unpin> {
        let body = serde_json::to_value(ExecRequest {
            command: command.to_vec(),
            timeout_s: timeout.as_secs(),
        })
        .unwrap_or_default();
        let resp = self
            .raw(
                "POST",
                &format!("/v1/replicasets/{}/exec-stream", enc(name)),
                Some(body),
            )
            .await?;
        let body = resp.into_body().into_data_stream();
        Ok(Box::pin(futures_util::stream::unfold(
            (body, Vec::<u8>::new()),
            |(mut body, mut buf)| async move {
                loop {
                    if let Some(end) = buf.iter().position(|b| *b == b'\n') {
                        let line: Vec<u8> = buf.drain(..=end).collect();
                        let frame = serde_json::from_slice(&line).map_err(|e| CoreError::Io {
                            path: "the service's answer".into(),
                            reason: e.to_string(),
                        });
                        return Some((frame, (body, buf)));
                    }
                    match body.next().await {
                        Some(Ok(chunk)) => buf.extend_from_slice(&chunk),
                        Some(Err(e)) => return Some((Err(io_err(e)), (body, buf))),
                        None => return None,
                    }
                }
            },
        )))
    }

    /// stop | pause | continue | restart.
    pub async fn rs_action(&self, name: &str, action: &str) -> Result<RsInfo> {
        self.post(
            &format!("/v1/replicasets/{}/{}", enc(name), enc(action)),
            &serde_json::json!({}),
        )
        .await
    }
    pub async fn rs_delete(&self, name: &str) -> Result<()> {
        let _: serde_json::Value = self
            .call("DELETE", &format!("/v1/replicasets/{}", enc(name)), None)
            .await?;
        Ok(())
    }
    pub async fn files_bytes(&self) -> Result<u64> {
        self.get("/v1/files-bytes").await
    }

    /// The container's output as it comes; with `follow`, until it ends or the stream is dropped.
    pub async fn rs_logs(
        &self,
        name: &str,
        follow: bool,
    ) -> Result<impl Stream<Item = Result<String>> + Send + Unpin> {
        let resp = self
            .raw(
                "GET",
                &format!("/v1/replicasets/{}/logs?follow={follow}", enc(name)),
                None,
            )
            .await?;
        Ok(resp.into_body().into_data_stream().map(|c| {
            c.map(|b| String::from_utf8_lossy(&b).into_owned())
                .map_err(io_err)
        }))
    }

    /// Server-sent events from `path`: (event, data) pairs until the service ends the stream.
    pub async fn events(
        &self,
        path: &str,
    ) -> Result<impl Stream<Item = Result<(String, String)>> + Send + Unpin> {
        let resp = self.raw("GET", path, None).await?;
        let body = resp.into_body().into_data_stream();
        Ok(Box::pin(futures_util::stream::unfold(
            (body, String::new(), false),
            |(mut body, mut buf, done)| async move {
                loop {
                    if let Some(end) = buf.find("\n\n") {
                        let frame: String = buf.drain(..end + 2).collect();
                        let (mut ev, mut data) = (String::from("message"), String::new());
                        for line in frame.lines() {
                            if let Some(v) = line.strip_prefix("event:") {
                                ev = v.trim().to_string();
                            } else if let Some(v) = line.strip_prefix("data:") {
                                if !data.is_empty() {
                                    data.push('\n');
                                }
                                data.push_str(v.strip_prefix(' ').unwrap_or(v));
                            }
                        }
                        if data.is_empty() {
                            continue; // a keep-alive comment
                        }
                        return Some((Ok((ev, data)), (body, buf, done)));
                    }
                    if done {
                        return None;
                    }
                    match body.next().await {
                        Some(Ok(b)) => buf.push_str(&String::from_utf8_lossy(&b)),
                        Some(Err(e)) => return Some((Err(io_err(e)), (body, buf, true))),
                        None => return None,
                    }
                }
            },
        )))
    }

    /// Every new GPU snapshot, the latest first.
    pub async fn gpu_stream(
        &self,
    ) -> Result<impl Stream<Item = Result<GpuSnapshot>> + Send + Unpin> {
        Ok(self
            .events("/v1/gpus/stream")
            .await?
            .map(|r| r.and_then(|(_, d)| serde_json::from_str(&d).map_err(io_err))))
    }

    /// A shell in the replicaSet's container: a WebSocket on the service's socket.
    pub async fn rs_terminal(
        &self,
        name: &str,
    ) -> Result<tokio_tungstenite::WebSocketStream<tokio::net::UnixStream>> {
        let socket = self.socket.clone().ok_or_else(|| CoreError::InvalidInput {
            what: "terminal".into(),
            reason: "a terminal needs the service (not --local)".into(),
        })?;
        // Asked first as a plain request, so that a refusal comes back as its sentence.
        self.rs_info(name).await?;
        let stream = UnixTransport {
            socket: socket.clone(),
        }
        .connect()
        .await?;
        let url = format!("ws://gpudeck/v1/replicasets/{}/terminal", enc(name));
        let (ws, _) = tokio_tungstenite::client_async(url, stream)
            .await
            .map_err(|e| CoreError::ServiceUnreachable {
                socket,
                reason: e.to_string(),
            })?;
        Ok(ws)
    }

    pub async fn vol_list(&self) -> Result<Vec<VolumeInfo>> {
        self.get("/v1/volumes").await
    }
    pub async fn vol_create(&self, name: &str, size: &str) -> Result<VolumeInfo> {
        self.post(
            "/v1/volumes",
            &VolCreateRequest {
                name: name.into(),
                size: size.into(),
            },
        )
        .await
    }
    pub async fn vol_info(&self, name: &str) -> Result<VolumeInfo> {
        self.get(&format!("/v1/volumes/{}", enc(name))).await
    }
    pub async fn vol_history(&self, name: &str) -> Result<Vec<VolumeVersion>> {
        self.get(&format!("/v1/volumes/{}/history", enc(name)))
            .await
    }
    pub async fn vol_resize(&self, name: &str, size: &str, move_users: bool) -> Result<VolumeInfo> {
        self.post(
            &format!("/v1/volumes/{}/resize", enc(name)),
            &VolResizeRequest {
                size: size.into(),
                move_users,
            },
        )
        .await
    }
    pub async fn vol_delete(&self, name: &str) -> Result<()> {
        let _: serde_json::Value = self
            .call("DELETE", &format!("/v1/volumes/{}", enc(name)), None)
            .await?;
        Ok(())
    }

    pub async fn policy(&self) -> Result<PolicyView> {
        self.get("/v1/policy").await
    }
    pub async fn policy_set(&self, user: &str, u: &PolicyUpdate) -> Result<PolicyRow> {
        self.call(
            "PUT",
            &format!("/v1/policy/{}", enc(user)),
            Some(serde_json::to_value(u).map_err(io_err)?),
        )
        .await
    }
    pub async fn audit(&self) -> Result<Vec<AuditEntry>> {
        self.get("/v1/audit").await
    }
    pub async fn openapi(&self) -> Result<serde_json::Value> {
        self.get("/v1/openapi.json").await
    }

    pub async fn images_local(&self) -> Result<Vec<LocalImage>> {
        self.get("/v1/images/local").await
    }
    pub async fn image_inspect(&self, image: &str) -> Result<ImageDetail> {
        self.get(&format!("/v1/images/inspect?image={}", enc(image)))
            .await
    }
    pub async fn image_tag(&self, source: &str, target: &str) -> Result<()> {
        let _: serde_json::Value = self
            .post(
                "/v1/images/tag",
                &TagRequest {
                    source: source.into(),
                    target: target.into(),
                },
            )
            .await?;
        Ok(())
    }
    pub async fn image_remove(&self, image: &str) -> Result<Vec<String>> {
        self.post(
            "/v1/images/remove",
            &ImageRequest {
                image: image.into(),
            },
        )
        .await
    }
    pub async fn image_prune(&self) -> Result<PruneReport> {
        self.call("POST", "/v1/images/prune", None).await
    }
    /// Starts a pull; follow it with `job_events`.
    pub async fn image_pull(&self, image: &str) -> Result<JobView> {
        self.post(
            "/v1/images/pull",
            &ImageRequest {
                image: image.into(),
            },
        )
        .await
    }
    pub async fn image_push(&self, image: &str) -> Result<JobView> {
        self.post(
            "/v1/images/push",
            &ImageRequest {
                image: image.into(),
            },
        )
        .await
    }
    pub async fn rs_commit_push(&self, name: &str, image: &str, message: &str) -> Result<JobView> {
        self.post(
            &format!("/v1/replicasets/{}/commit-push", enc(name)),
            &CommitRequest {
                image: image.into(),
                message: message.into(),
            },
        )
        .await
    }
    pub async fn jobs(&self) -> Result<Vec<JobView>> {
        self.get("/v1/jobs").await
    }
    pub async fn job(&self, id: u64) -> Result<JobView> {
        self.get(&format!("/v1/jobs/{id}")).await
    }
    pub async fn job_cancel(&self, id: u64) -> Result<JobView> {
        self.call("POST", &format!("/v1/jobs/{id}/cancel"), None)
            .await
    }
    /// The job's views (at most 10 a second) until it ends; with `cancel_on_close`, dropping the
    /// stream before then cancels the job.
    pub async fn job_events(
        &self,
        id: u64,
        cancel_on_close: bool,
    ) -> Result<impl Stream<Item = Result<JobView>> + Send + Unpin> {
        Ok(self
            .events(&format!(
                "/v1/jobs/{id}/events?cancelOnClose={cancel_on_close}"
            ))
            .await?
            .map(|r| r.and_then(|(_, d)| serde_json::from_str(&d).map_err(io_err))))
    }

    pub async fn registries(&self) -> Result<Vec<Registry>> {
        self.get("/v1/registries").await
    }
    pub async fn registry_add(&self, r: &RegistryAdd) -> Result<Registry> {
        self.post("/v1/registries", r).await
    }
    pub async fn registry_remove(&self, name: &str) -> Result<()> {
        let _: serde_json::Value = self
            .call("DELETE", &format!("/v1/registries/{}", enc(name)), None)
            .await?;
        Ok(())
    }
    pub async fn registry_repositories(&self, name: &str) -> Result<Vec<String>> {
        self.get(&format!("/v1/registries/{}/repositories", enc(name)))
            .await
    }
    pub async fn registry_tags(&self, name: &str, repository: &str) -> Result<Vec<String>> {
        self.get(&format!(
            "/v1/registries/{}/tags?repository={}",
            enc(name),
            enc(repository)
        ))
        .await
    }
    pub async fn registry_info(&self, name: &str, image: &str) -> Result<RemoteImageInfo> {
        self.get(&format!(
            "/v1/registries/{}/info?image={}",
            enc(name),
            enc(image)
        ))
        .await
    }
    pub async fn registry_delete(&self, name: &str, image: &str) -> Result<RemoteDeleted> {
        self.post(
            &format!("/v1/registries/{}/delete", enc(name)),
            &ImageRequest {
                image: image.into(),
            },
        )
        .await
    }

    pub async fn tokens(&self) -> Result<Vec<TokenInfo>> {
        self.get("/v1/tokens").await
    }
    pub async fn token_create(&self, user: &str, name: &str) -> Result<NewToken> {
        self.post(
            "/v1/tokens",
            &TokenRequest {
                user: user.into(),
                name: name.into(),
            },
        )
        .await
    }
    pub async fn token_remove(&self, id: i64) -> Result<()> {
        let _: serde_json::Value = self
            .call("DELETE", &format!("/v1/tokens/{id}"), None)
            .await?;
        Ok(())
    }

    pub async fn catalog(&self, filter: Option<&str>) -> Result<Vec<CatalogItem>> {
        match filter {
            Some(f) => self.get(&format!("/v1/catalog?filter={}", enc(f))).await,
            None => self.get("/v1/catalog").await,
        }
    }
    pub async fn catalog_show(&self, name: &str) -> Result<CatalogItem> {
        self.get(&format!("/v1/catalog/{}", enc(name))).await
    }
    pub async fn catalog_import(&self, format: ImportFormat, text: &str) -> Result<Vec<Imported>> {
        self.post(
            "/v1/catalog/import",
            &CatalogImportRequest {
                format,
                text: text.into(),
            },
        )
        .await
    }
    pub async fn catalog_export(&self, names: &[String], yaml: bool) -> Result<String> {
        self.post(
            "/v1/catalog/export",
            &CatalogExportRequest {
                names: names.to_vec(),
                yaml,
            },
        )
        .await
    }
    pub async fn catalog_remove(&self, name: &str) -> Result<()> {
        let _: serde_json::Value = self
            .call("DELETE", &format!("/v1/catalog/{}", enc(name)), None)
            .await?;
        Ok(())
    }
    pub async fn catalog_render(
        &self,
        name: &str,
        values: std::collections::BTreeMap<String, String>,
    ) -> Result<Rendered> {
        self.post(
            &format!("/v1/catalog/{}/render", enc(name)),
            &CatalogRenderRequest { values },
        )
        .await
    }
    pub async fn catalog_launch(&self, name: &str, r: &CatalogLaunchRequest) -> Result<RsInfo> {
        self.post(&format!("/v1/catalog/{}/launch", enc(name)), r)
            .await
    }
}
