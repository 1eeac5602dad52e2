//! The Docker adapter: the only place that talks to bollard. It connects to `$DOCKER_HOST`, the
//! default socket or the endpoint in Settings; `ping`s before anyone calls it connected; and keeps a
//! directory of containers (names, and the GPUs their device requests claim) fresh from events.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use bollard::models::{ContainerSummaryStateEnum, DeviceRequest};
use bollard::query_parameters::{EventsOptions, InspectContainerOptions, ListContainersOptions};
use bollard::{Docker, API_DEFAULT_VERSION};
use futures_util::StreamExt;
use serde::Serialize;
use tokio::sync::watch;
use ts_rs::TS;

use crate::gpu::ContainerRef;
use crate::{CoreError, Result};

/// Per request; a stop waits up to 10 s for the container, a commit copies its changes.
const TIMEOUT_S: u64 = 300;
const DEFAULT_SOCKET: &str = "unix:///var/run/docker.sock";

/// What the engine says about itself, for the status indicator and `doctor`.
#[derive(
    Debug, Clone, Default, Serialize, serde::Deserialize, TS, schemars::JsonSchema, PartialEq,
)]
#[serde(rename_all = "camelCase")]
pub struct EngineInfo {
    pub endpoint: String,
    pub server_version: Option<String>,
    pub api_version: String,
    pub storage_driver: Option<String>,
    pub docker_root_dir: Option<String>,
    pub runtimes: Vec<String>,
    pub default_runtime: Option<String>,
    /// The engine keeps images in containerd (the image store of fresh Docker 29 installs).
    pub containerd_store: bool,
    /// Where the engine reads CDI specs (Docker 25+): GPUs can be given as `nvidia.com/gpu=…`.
    pub cdi_spec_dirs: Vec<String>,
}

/// The connection as the UI shows it.
#[derive(Debug, Clone, Serialize, serde::Deserialize, TS, schemars::JsonSchema, PartialEq)]
#[serde(tag = "state", rename_all = "camelCase")]
pub enum DockerStatus {
    Connecting {
        endpoint: String,
    },
    Connected {
        info: EngineInfo,
    },
    /// `reason` is the engine's or the OS's words; the UI adds how to fix it.
    Unreachable {
        endpoint: String,
        reason: String,
    },
}

/// What a Docker `local` volume is made of.
#[derive(Debug, Clone, Copy)]
pub enum LocalSource<'a> {
    /// An ext4 block device (`type=ext4,device=/dev/loopN`).
    Ext4Device(&'a str),
    /// A host folder bind-mounted (`type=none,o=bind,device=DIR`).
    BindDir(&'a str),
}

#[derive(Clone)]
pub struct DockerAdapter {
    docker: Docker,
    endpoint: String,
}

/// The endpoint used when Settings names none: `$DOCKER_HOST`, else the default socket.
pub fn default_endpoint() -> String {
    std::env::var("DOCKER_HOST")
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| DEFAULT_SOCKET.to_string())
}

impl DockerAdapter {
    /// Builds a client (no I/O yet); `ping` tells whether anything answers.
    pub fn new(endpoint: Option<&str>) -> Result<DockerAdapter> {
        let endpoint = endpoint
            .map(str::to_string)
            .unwrap_or_else(default_endpoint);
        let docker = if endpoint.starts_with("unix://") || endpoint.starts_with('/') {
            Docker::connect_with_unix(&endpoint, TIMEOUT_S, API_DEFAULT_VERSION)
        } else {
            Docker::connect_with_http(&endpoint, TIMEOUT_S, API_DEFAULT_VERSION)
        }
        .map_err(|e| CoreError::DockerUnreachable {
            endpoint: endpoint.clone(),
            reason: e.to_string(),
        })?;
        Ok(DockerAdapter { docker, endpoint })
    }

    /// The engine client, for the domains' own engine calls (e.g. `replicaset::files`).
    pub(crate) fn client(&self) -> &Docker {
        &self.docker
    }

    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    fn unreachable(&self, e: impl ToString) -> CoreError {
        CoreError::DockerUnreachable {
            endpoint: self.endpoint.clone(),
            reason: e.to_string(),
        }
    }

    /// A plain connection to the engine (its Unix socket, or TCP), for the streams bollard does
    /// not serve well: an import streamed from a tar, pull and push progress read as sent.
    pub(crate) async fn raw_connection(&self) -> Result<Box<dyn RawConn>> {
        let endpoint = self.endpoint();
        let path = endpoint
            .strip_prefix("unix://")
            .or_else(|| endpoint.starts_with('/').then_some(endpoint));
        Ok(match path {
            Some(p) => Box::new(
                tokio::net::UnixStream::connect(p)
                    .await
                    .map_err(|e| self.unreachable(e))?,
            ),
            None => {
                let addr = endpoint
                    .trim_start_matches("tcp://")
                    .trim_start_matches("http://")
                    .trim_end_matches('/');
                Box::new(
                    tokio::net::TcpStream::connect(addr)
                        .await
                        .map_err(|e| self.unreachable(e))?,
                )
            }
        })
    }

    /// Pings, agrees on an API version both sides speak, and reads the engine's facts.
    pub async fn connect(self) -> Result<DockerAdapter> {
        self.docker.ping().await.map_err(|e| self.unreachable(e))?;
        let endpoint = self.endpoint;
        let docker =
            self.docker
                .negotiate_version()
                .await
                .map_err(|e| CoreError::DockerUnreachable {
                    endpoint: endpoint.clone(),
                    reason: e.to_string(),
                })?;
        Ok(DockerAdapter { docker, endpoint })
    }

    pub async fn info(&self) -> Result<EngineInfo> {
        let info = self.docker.info().await.map_err(|e| self.unreachable(e))?;
        let mut runtimes: Vec<String> = info.runtimes.unwrap_or_default().into_keys().collect();
        runtimes.sort();
        Ok(EngineInfo {
            endpoint: self.endpoint.clone(),
            server_version: info.server_version,
            api_version: self.docker.client_version().to_string(),
            storage_driver: info.driver,
            docker_root_dir: info.docker_root_dir,
            runtimes,
            default_runtime: info.default_runtime,
            containerd_store: info
                .driver_status
                .unwrap_or_default()
                .iter()
                .any(|kv| kv.len() == 2 && kv[0] == "driver-type" && kv[1].contains("snapshotter")),
            cdi_spec_dirs: info.cdi_spec_dirs.unwrap_or_default(),
        })
    }

    /// Every container's name, and what the running and paused ones claim of the GPUs.
    pub async fn directory(&self) -> Result<ContainerDirectory> {
        let list = self.containers(true, None).await?;
        let mut dir = ContainerDirectory::default();
        for c in list {
            let Some(id) = c.id else { continue };
            let name = summary_name(c.names);
            if let Some(rs) = c
                .labels
                .as_ref()
                .and_then(|l| l.get(crate::replicaset::LABEL_RS))
            {
                dir.managed.insert(id.clone(), rs.clone());
            }
            let holds = matches!(
                c.state,
                Some(ContainerSummaryStateEnum::RUNNING | ContainerSummaryStateEnum::PAUSED)
            );
            if holds {
                // Device requests are only in the full inspect; a container gone meanwhile is skipped.
                if let Ok(full) = self
                    .docker
                    .inspect_container(&id, None::<InspectContainerOptions>)
                    .await
                {
                    let (requests, runtime) = full
                        .host_config
                        .map(|h| (h.device_requests.unwrap_or_default(), h.runtime))
                        .unwrap_or_default();
                    let env = full.config.and_then(|c| c.env).unwrap_or_default();
                    let claim = GpuClaim::union(
                        GpuClaim::from_requests(&requests),
                        GpuClaim::from_env(runtime.as_deref(), &env),
                    );
                    if let Some(claim) = claim {
                        let replicaset = dir.managed.get(&id).cloned();
                        dir.claims.push((
                            ContainerRef {
                                id: id.clone(),
                                name: name.clone(),
                                replicaset,
                            },
                            claim,
                        ));
                    }
                }
            }
            dir.names.insert(id, name);
        }
        Ok(dir)
    }

    /// A stream that yields once per container or engine event that may change the directory.
    pub fn changes(&self) -> impl futures_util::Stream<Item = Result<()>> + '_ {
        let mut filters = HashMap::new();
        filters.insert("type".to_string(), vec!["container".to_string()]);
        self.docker
            .events(Some(EventsOptions {
                filters: Some(filters),
                ..Default::default()
            }))
            .map(|r| r.map(|_| ()).map_err(CoreError::from))
    }
}

/// A container as the replicaSet service needs it.
#[derive(Debug, Clone)]
pub struct ContainerState {
    pub id: String,
    pub name: String,
    /// "created", "running", "paused", "exited", …
    pub status: String,
    /// The image id it was created from.
    pub image: String,
    pub labels: HashMap<String, String>,
    /// Its overlay2 upper directory, where the engine says (overlay2 only).
    pub upper_dir: Option<String>,
    /// The host PID of its first process, while it runs.
    pub pid: Option<u32>,
    /// The signal a graceful stop sends, where its config names one (else SIGTERM).
    pub stop_signal: Option<String>,
}

/// What `exec` returns: each stream's first `EXEC_CAP` bytes (the rest is read and dropped as
/// it flows, so a command that prints gigabytes costs the service no more memory than that).
#[derive(Debug, Clone, Serialize, serde::Deserialize, TS, schemars::JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ExecOutput {
    pub exit_code: i64,
    pub stdout: String,
    pub stderr: String,
    /// Bytes each stream really printed (more than kept when `truncated`).
    #[serde(default)]
    #[ts(type = "number")]
    pub stdout_bytes: u64,
    #[serde(default)]
    #[ts(type = "number")]
    pub stderr_bytes: u64,
    /// Some output was past the cap and dropped.
    #[serde(default)]
    pub truncated: bool,
}

/// What a commit's env is (`commit_env`): `image`'s own entries, then each other key of
/// `container` with no value. Pure; unit-tested.
pub fn scrub_env(container: &[String], image: &[String]) -> Vec<String> {
    let key = |e: &str| {
        e.split_once('=')
            .map(|(k, _)| k.to_string())
            .unwrap_or(e.to_string())
    };
    let mut out: Vec<String> = image.to_vec();
    for e in container {
        let k = key(e);
        if !out.iter().any(|o| key(o) == k) {
            out.push(format!("{k}="));
        }
    }
    out
}

/// One piece of a streamed `exec` (one JSON line each on the wire).
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum ExecFrame {
    Stdout(String),
    Stderr(String),
    Exit(i64),
    Error(String),
}

/// The most of each stream `exec` keeps.
pub const EXEC_CAP: usize = 8 << 20;

/// Appends what still fits under `EXEC_CAP` of `message` to `kept`; counts all of it.
fn keep_capped(kept: &mut String, count: &mut u64, truncated: &mut bool, message: &[u8]) {
    *count += message.len() as u64;
    let room = EXEC_CAP.saturating_sub(kept.len());
    if message.len() > room {
        *truncated = true;
    }
    if room > 0 {
        kept.push_str(&String::from_utf8_lossy(
            &message[..message.len().min(room)],
        ));
    }
}

/// An interactive shell in a container: what it prints, and where to type.
pub struct Terminal {
    pub exec_id: String,
    pub output: std::pin::Pin<Box<dyn futures_util::Stream<Item = Result<Vec<u8>>> + Send>>,
    pub input: std::pin::Pin<Box<dyn tokio::io::AsyncWrite + Send>>,
}

/// Everything `create` needs beyond the spec.
pub struct CreateArgs<'a> {
    pub container_name: &'a str,
    pub replicaset: &'a str,
    pub version: u32,
    pub spec: &'a crate::replicaset::RsSpec,
    /// The image id to create it from (the recorded base image, or a version's snapshot).
    pub image: &'a str,
    /// The spec's binds the engine is given as they are (`SRC:DEST[:ro]`).
    pub binds: Vec<String>,
    /// Named volumes for the image's `VOLUME` paths, and the pinned binds' stages.
    pub mounts: Vec<bollard::models::Mount>,
    /// The `gpudeck.pins` label (`replicaset::pin`; `""`: none, over any an image carries).
    pub pins: String,
    /// The GPUs' UUIDs, and the requests for them (`gpu::requests::device_requests`).
    pub gpus: &'a [String],
    pub device_requests: Option<Vec<DeviceRequest>>,
    /// (container port, host port).
    pub ports: &'a [(u16, u16)],
    /// The host address the ports bind to (`None`: every interface).
    pub publish_address: Option<&'a str>,
}

/// The engine's refusal of a GPU request it has nothing to serve with, as a sentence that says
/// what to do (pure).
fn gpu_refusal(engine_said: &str) -> Option<CoreError> {
    let at = engine_said.find("could not select device driver")?;
    let said = &engine_said[at..];
    Some(CoreError::GpuRequests(if said.contains("\"cdi\"") {
        format!("this Docker engine has CDI off ({said}). Turn it on (Docker 25+: \"features\": {{\"cdi\": true}} in /etc/docker/daemon.json, then restart it), or set GPU requests to Automatic in Settings")
    } else {
        format!("nothing on this host serves the Docker engine's GPU requests ({said}). Install the NVIDIA Container Toolkit (`sudo nvidia-ctk runtime configure --runtime=docker`, then restart Docker); where the engine reads a CDI spec for NVIDIA GPUs, set GPU requests to Automatic or CDI in Settings")
    }))
}

/// A container's name from a list entry (`/foo-1` → `foo-1`).
fn summary_name(names: Option<Vec<String>>) -> String {
    names
        .and_then(|n| n.into_iter().next())
        .map(|n| n.trim_start_matches('/').to_string())
        .unwrap_or_default()
}

/// `Ok(None)` when the engine answers `status` (already done, or not there), else the answer.
/// A byte stream to the engine (Unix socket or TCP).
pub(crate) trait RawConn:
    tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send
{
}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> RawConn for T {}

pub(crate) fn tolerate<T>(
    r: std::result::Result<T, bollard::errors::Error>,
    status: u16,
) -> Result<Option<T>> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(bollard::errors::Error::DockerResponseServerError { status_code, .. })
            if status_code == status =>
        {
            Ok(None)
        }
        Err(e) => Err(e.into()),
    }
}

impl DockerAdapter {
    /// Containers, all states or running only, optionally filtered (`label=…`, `volume=…`).
    async fn containers(
        &self,
        all: bool,
        filter: Option<(&str, String)>,
    ) -> Result<Vec<bollard::models::ContainerSummary>> {
        let filters = filter.map(|(k, v)| HashMap::from([(k.to_string(), vec![v])]));
        Ok(self
            .docker
            .list_containers(Some(ListContainersOptions {
                all,
                filters,
                ..Default::default()
            }))
            .await?)
    }

    pub async fn image_exists(&self, image: &str) -> Result<bool> {
        Ok(tolerate(self.docker.inspect_image(image).await, 404)?.is_some())
    }

    /// Creates (does not start) a version's container: labels, `CONTAINER_VERSION`, GPUs as
    /// device requests by UUID, and `NVIDIA_VISIBLE_DEVICES=void` when it gets none.
    pub async fn create(&self, a: &CreateArgs<'_>) -> Result<String> {
        use bollard::models::{ContainerCreateBody, HostConfig, PortBinding};
        // The GPUs given are said once: a NVIDIA_VISIBLE_DEVICES in the spec would sit beside
        // ours, and which of the two the NVIDIA hook honours is up to it.
        let mut env: Vec<String> = a
            .spec
            .env
            .iter()
            .filter(|e| !e.starts_with("NVIDIA_VISIBLE_DEVICES="))
            .cloned()
            .collect();
        env.push(format!("CONTAINER_VERSION={}", a.version));
        if a.gpus.is_empty() {
            // CUDA images set NVIDIA_VISIBLE_DEVICES=all; with the nvidia runtime as default that
            // would hand every GPU to a container given none.
            env.push("NVIDIA_VISIBLE_DEVICES=void".into());
        } else {
            // What the engine's nvidia driver adds for the device request, said explicitly so
            // that a value inherited from a snapshot image (an earlier version's) never wins.
            env.push(format!("NVIDIA_VISIBLE_DEVICES={}", a.gpus.join(",")));
        }
        let mut labels = HashMap::from([
            (
                crate::replicaset::LABEL_RS.to_string(),
                a.replicaset.to_string(),
            ),
            (
                crate::replicaset::LABEL_VERSION.to_string(),
                a.version.to_string(),
            ),
        ]);
        if let Some(owner) = &a.spec.owner {
            labels.insert(crate::replicaset::LABEL_OWNER.to_string(), owner.clone());
        }
        labels.insert(crate::replicaset::LABEL_PINS.to_string(), a.pins.clone());
        // A member's container runs as the member: their uid, gid and groups, no way to gain
        // privileges (setuid files, file capabilities) and no capabilities at all.
        let run_as = a.spec.run_as.as_ref();
        let bindings: HashMap<String, Option<Vec<PortBinding>>> = a
            .ports
            .iter()
            .map(|(c, h)| {
                (
                    format!("{c}/tcp"),
                    Some(vec![PortBinding {
                        host_ip: a.publish_address.map(str::to_string),
                        host_port: Some(h.to_string()),
                    }]),
                )
            })
            .collect();
        let body = ContainerCreateBody {
            image: Some(a.image.to_string()),
            cmd: (!a.spec.command.is_empty()).then(|| a.spec.command.clone()),
            user: run_as.map(|r| r.user()),
            env: Some(env),
            labels: Some(labels),
            exposed_ports: Some(a.ports.iter().map(|(c, _)| format!("{c}/tcp")).collect()),
            host_config: Some(HostConfig {
                binds: Some(a.binds.clone()),
                port_bindings: Some(bindings),
                mounts: (!a.mounts.is_empty()).then(|| a.mounts.clone()),
                device_requests: a.device_requests.clone(),
                // docker-init as PID 1: signals reach the workload (stop takes a moment, not
                // the 10 s kill timeout) and zombies are reaped.
                init: Some(true),
                group_add: run_as.map(|r| r.groups.iter().map(u32::to_string).collect()),
                security_opt: run_as.map(|_| vec!["no-new-privileges".to_string()]),
                cap_drop: run_as.map(|_| vec!["ALL".to_string()]),
                pids_limit: a.spec.pids_limit,
                memory: a.spec.memory_bytes.map(|m| m as i64),
                nano_cpus: a.spec.cpus_milli.map(|c| i64::from(c) * 1_000_000),
                ..Default::default()
            }),
            ..Default::default()
        };
        let r = self
            .docker
            .create_container(
                Some(bollard::query_parameters::CreateContainerOptions {
                    name: Some(a.container_name.to_string()),
                    ..Default::default()
                }),
                body,
            )
            .await?;
        Ok(r.id)
    }

    pub async fn start(&self, id: &str) -> Result<()> {
        self.docker
            .start_container(id, None::<bollard::query_parameters::StartContainerOptions>)
            .await
            .map_err(|e| gpu_refusal(&e.to_string()).unwrap_or_else(|| e.into()))
    }

    /// Stops, killing after `timeout_s` seconds; a container already stopped is not an error.
    pub async fn stop(&self, id: &str, timeout_s: u32) -> Result<()> {
        let r = self
            .docker
            .stop_container(
                id,
                Some(bollard::query_parameters::StopContainerOptions {
                    t: Some(timeout_s as i32),
                    signal: None,
                }),
            )
            .await;
        tolerate(r, 304).map(|_| ())
    }

    /// SIGKILL (a paused container too); returns once it has ended.
    pub async fn kill(&self, id: &str) -> Result<()> {
        let r = self
            .docker
            .kill_container(
                id,
                Some(bollard::query_parameters::KillContainerOptions {
                    signal: "SIGKILL".into(),
                }),
            )
            .await;
        tolerate(r, 409)?;
        // The engine's answer may come before it has torn the container down (its ports).
        use futures_util::StreamExt;
        let mut wait = self.docker.wait_container(
            id,
            Some(bollard::query_parameters::WaitContainerOptions {
                condition: "not-running".into(),
            }),
        );
        match wait.next().await {
            None | Some(Ok(_)) => Ok(()),
            // Its exit status (137) is no error here.
            Some(Err(bollard::errors::Error::DockerContainerWaitError { .. })) => Ok(()),
            Some(Err(e)) => tolerate::<()>(Err(e), 404).map(|_| ()),
        }
    }

    pub async fn pause(&self, id: &str) -> Result<()> {
        Ok(self.docker.pause_container(id).await?)
    }

    pub async fn unpause(&self, id: &str) -> Result<()> {
        Ok(self.docker.unpause_container(id).await?)
    }

    /// Removes (forcefully); a container already gone is not an error.
    pub async fn remove(&self, id: &str) -> Result<()> {
        let r = self
            .docker
            .remove_container(
                id,
                Some(bollard::query_parameters::RemoveContainerOptions {
                    force: true,
                    v: false,
                    link: false,
                }),
            )
            .await;
        tolerate(r, 404).map(|_| ())
    }

    /// The container named `name`, or `None` when there is none.
    pub async fn state(&self, name: &str) -> Result<Option<ContainerState>> {
        let c = tolerate(
            self.docker
                .inspect_container(name, None::<InspectContainerOptions>)
                .await,
            404,
        )?;
        Ok(c.map(|c| ContainerState {
            pid: c
                .state
                .as_ref()
                .and_then(|s| s.pid)
                .and_then(|p| u32::try_from(p).ok())
                .filter(|p| *p > 0),
            stop_signal: c.config.as_ref().and_then(|c| c.stop_signal.clone()),
            id: c.id.unwrap_or_default(),
            name: c
                .name
                .unwrap_or_default()
                .trim_start_matches('/')
                .to_string(),
            status: c
                .state
                .and_then(|s| s.status)
                .map(|s| s.to_string())
                .unwrap_or_default(),
            image: c.image.unwrap_or_default(),
            labels: c.config.and_then(|c| c.labels).unwrap_or_default(),
            upper_dir: c
                .graph_driver
                .filter(|g| g.name == "overlay2")
                .and_then(|g| g.data.get("UpperDir").cloned()),
        }))
    }

    /// The bytes container `id` changed and the bytes its whole file system holds (`docker ps
    /// --size`; the engine walks the files to count them); `None` where the engine does not say.
    pub async fn sizes(&self, id: &str) -> Result<Option<(u64, u64)>> {
        let c = self
            .docker
            .inspect_container(id, Some(InspectContainerOptions { size: true }))
            .await?;
        Ok(match (c.size_rw, c.size_root_fs) {
            (Some(rw), Some(root)) => Some((rw.max(0) as u64, root.max(0) as u64)),
            _ => None,
        })
    }

    /// Every container (any state) that carries `label`: its name → its state ("running", …).
    pub async fn states_by_label(&self, label: &str) -> Result<HashMap<String, String>> {
        Ok(self
            .containers(true, Some(("label", label.to_string())))
            .await?
            .into_iter()
            .map(|c| {
                let state = c.state.map(|s| s.to_string()).unwrap_or_default();
                (summary_name(c.names), state)
            })
            .collect())
    }

    /// Every container (any state) labelled as belonging to `replicaset`.
    pub async fn containers_of(&self, replicaset: &str) -> Result<Vec<String>> {
        let list = self
            .containers(
                true,
                Some((
                    "label",
                    format!("{}={replicaset}", crate::replicaset::LABEL_RS),
                )),
            )
            .await?;
        Ok(list.into_iter().filter_map(|c| c.id).collect())
    }

    /// Host ports published by containers, with the container's name.
    pub async fn published_ports(&self) -> Result<Vec<(u16, String)>> {
        let list = self.containers(false, None).await?;
        let mut out = Vec::new();
        for c in list {
            let name = summary_name(c.names);
            for p in c.ports.unwrap_or_default() {
                if let Some(h) = p.public_port {
                    out.push((h, name.clone()));
                }
            }
        }
        out.sort();
        out.dedup();
        Ok(out)
    }

    /// A command made ready in container `id`, stdout and stderr attached (not started).
    async fn create_exec_attached(&self, id: &str, cmd: &[String]) -> Result<String> {
        Ok(self
            .docker
            .create_exec(
                id,
                bollard::exec::CreateExecOptions {
                    cmd: Some(cmd.to_vec()),
                    attach_stdout: Some(true),
                    attach_stderr: Some(true),
                    ..Default::default()
                },
            )
            .await?
            .id)
    }

    /// Runs `cmd` in the container; exit code, stdout and stderr apart. Past `timeout` the wait is
    /// abandoned with an error.
    pub async fn exec(&self, id: &str, cmd: &[String], timeout: Duration) -> Result<ExecOutput> {
        use bollard::container::LogOutput;
        use bollard::exec::StartExecResults;
        let exec = self.create_exec_attached(id, cmd).await?;
        let run = async {
            let mut out = ExecOutput {
                exit_code: -1,
                stdout: String::new(),
                stderr: String::new(),
                stdout_bytes: 0,
                stderr_bytes: 0,
                truncated: false,
            };
            if let StartExecResults::Attached { mut output, .. } =
                self.docker.start_exec(&exec, None).await?
            {
                while let Some(chunk) = output.next().await {
                    match chunk? {
                        LogOutput::StdOut { message } => keep_capped(
                            &mut out.stdout,
                            &mut out.stdout_bytes,
                            &mut out.truncated,
                            &message,
                        ),
                        LogOutput::StdErr { message } => keep_capped(
                            &mut out.stderr,
                            &mut out.stderr_bytes,
                            &mut out.truncated,
                            &message,
                        ),
                        _ => {}
                    }
                }
            }
            out.exit_code = self
                .docker
                .inspect_exec(&exec)
                .await?
                .exit_code
                .unwrap_or(-1);
            Ok::<_, CoreError>(out)
        };
        match tokio::time::timeout(timeout, run).await {
            Ok(r) => r,
            Err(_) => Err(CoreError::InvalidInput {
                what: "exec".into(),
                reason: format!("the command did not finish within {} s", timeout.as_secs()),
            }),
        }
    }

    /// Starts `cmd` in container `id` and streams what it prints as it comes (nothing is kept):
    /// `ExecFrame`s, the exit code last. `timeout` ends the stream with an error frame.
    pub async fn exec_stream(
        &self,
        id: &str,
        cmd: &[String],
        timeout: Duration,
    ) -> Result<tokio::sync::mpsc::Receiver<ExecFrame>> {
        use bollard::container::LogOutput;
        use bollard::exec::StartExecResults;
        let exec = self.create_exec_attached(id, cmd).await?;
        let StartExecResults::Attached { mut output, .. } =
            self.docker.start_exec(&exec, None).await?
        else {
            return Err(CoreError::Docker(
                "the engine did not attach to the command".into(),
            ));
        };
        let (tx, rx) = tokio::sync::mpsc::channel::<ExecFrame>(16);
        let docker = self.docker.clone();
        tokio::spawn(async move {
            let run = async {
                let (mut out, mut err) = (Utf8Joiner::default(), Utf8Joiner::default());
                while let Some(chunk) = output.next().await {
                    let frame = match chunk {
                        Ok(LogOutput::StdOut { message }) => ExecFrame::Stdout(out.push(&message)),
                        Ok(LogOutput::StdErr { message }) => ExecFrame::Stderr(err.push(&message)),
                        Ok(_) => continue,
                        Err(e) => ExecFrame::Error(e.to_string()),
                    };
                    // A caller that went away ends the stream (the command runs on).
                    if tx.send(frame).await.is_err() {
                        return;
                    }
                }
                let code = docker
                    .inspect_exec(&exec)
                    .await
                    .ok()
                    .and_then(|i| i.exit_code)
                    .unwrap_or(-1);
                let _ = tx.send(ExecFrame::Exit(code)).await;
            };
            if tokio::time::timeout(timeout, run).await.is_err() {
                let _ = tx
                    .send(ExecFrame::Error(format!(
                        "the command did not finish within {} s",
                        timeout.as_secs()
                    )))
                    .await;
            }
        });
        Ok(rx)
    }

    /// Local images by tag (`repo:tag`), for the image picker.
    pub async fn image_tags(&self) -> Result<Vec<String>> {
        let list = self
            .docker
            .list_images(Some(bollard::query_parameters::ListImagesOptions {
                all: false,
                ..Default::default()
            }))
            .await?;
        let mut tags: Vec<String> = list
            .into_iter()
            .flat_map(|i| i.repo_tags)
            .filter(|t| t != "<none>:<none>")
            .collect();
        tags.sort();
        Ok(tags)
    }

    /// Opens an interactive shell (bash when the image has it, else sh) on a TTY in the container.
    pub async fn terminal(&self, id: &str) -> Result<Terminal> {
        use bollard::exec::{CreateExecOptions, StartExecOptions, StartExecResults};
        let cmd = vec![
            "/bin/sh".to_string(),
            "-c".into(),
            "command -v bash >/dev/null && exec bash || exec sh".into(),
        ];
        let exec = self
            .docker
            .create_exec(
                id,
                CreateExecOptions {
                    cmd: Some(cmd),
                    attach_stdin: Some(true),
                    attach_stdout: Some(true),
                    attach_stderr: Some(true),
                    tty: Some(true),
                    env: Some(vec!["TERM=xterm-256color".to_string()]),
                    ..Default::default()
                },
            )
            .await?;
        match self
            .docker
            .start_exec(
                &exec.id,
                Some(StartExecOptions {
                    detach: false,
                    tty: true,
                    output_capacity: None,
                }),
            )
            .await?
        {
            StartExecResults::Attached { output, input } => Ok(Terminal {
                exec_id: exec.id,
                output: Box::pin(
                    output.map(|r| r.map(|o| o.into_bytes().to_vec()).map_err(CoreError::from)),
                ),
                input,
            }),
            StartExecResults::Detached => Err(CoreError::Docker(
                "the engine did not attach the terminal".into(),
            )),
        }
    }

    pub async fn resize_terminal(&self, exec_id: &str, cols: u16, rows: u16) -> Result<()> {
        Ok(self
            .docker
            .resize_exec(
                exec_id,
                bollard::query_parameters::ResizeExecOptions {
                    h: i32::from(rows),
                    w: i32::from(cols),
                },
            )
            .await?)
    }

    /// Creates a local-driver volume on an ext4 loop device or a bind-mounted folder, labelled as
    /// version `version` of GPU Deck volume `volume`.
    pub async fn create_local_volume(
        &self,
        name: &str,
        source: LocalSource<'_>,
        volume: &str,
        version: u32,
    ) -> Result<()> {
        let labels = HashMap::from([
            ("gpudeck.volume".to_string(), volume.to_string()),
            ("gpudeck.version".to_string(), version.to_string()),
        ]);
        let (kind, device, o) = match source {
            LocalSource::Ext4Device(d) => ("ext4", d, None),
            LocalSource::BindDir(d) => ("none", d, Some("bind")),
        };
        let mut opts = HashMap::from([
            ("type".to_string(), kind.to_string()),
            ("device".to_string(), device.to_string()),
        ]);
        if let Some(o) = o {
            opts.insert("o".to_string(), o.to_string());
        }
        self.docker
            .create_volume(bollard::models::VolumeCreateRequest {
                name: Some(name.to_string()),
                driver: Some("local".into()),
                driver_opts: Some(opts),
                labels: Some(labels),
                ..Default::default()
            })
            .await?;
        Ok(())
    }

    /// The device a volume was created on, or `None` when there is no such volume.
    pub async fn volume_device(&self, name: &str) -> Result<Option<String>> {
        let v = tolerate(self.docker.inspect_volume(name).await, 404)?;
        Ok(v.map(|v| v.options.get("device").cloned().unwrap_or_default()))
    }

    /// Removes a volume; one already gone is not an error.
    pub async fn remove_volume(&self, name: &str) -> Result<()> {
        let r = self
            .docker
            .remove_volume(name, None::<bollard::query_parameters::RemoveVolumeOptions>)
            .await;
        tolerate(r, 404).map(|_| ())
    }

    /// Containers (any state) that mount `volume`: (id, name, running, replicaSet label).
    pub async fn volume_users(
        &self,
        volume: &str,
    ) -> Result<Vec<(String, String, bool, Option<String>)>> {
        let list = self
            .containers(true, Some(("volume", volume.to_string())))
            .await?;
        Ok(list
            .into_iter()
            .map(|c| {
                let name = summary_name(c.names);
                let running = matches!(
                    c.state,
                    Some(ContainerSummaryStateEnum::RUNNING | ContainerSummaryStateEnum::PAUSED)
                );
                let rs = c
                    .labels
                    .and_then(|l| l.get(crate::replicaset::LABEL_RS).cloned());
                (c.id.unwrap_or_default(), name, running, rs)
            })
            .collect())
    }

    /// The env a commit of container `id` is given: its image's own, and every other key the
    /// container was run with, blank. The engine merges the container's env into a commit's
    /// config key by key, so naming each key is the only way to keep a value given at run (a
    /// member's token, a catalog secret) out of the image.
    pub async fn commit_env(&self, id: &str) -> Result<Vec<String>> {
        let c = self.docker.inspect_container(id, None).await?;
        let ran = c.config.and_then(|x| x.env).unwrap_or_default();
        let own = match c.image {
            Some(img) => self
                .docker
                .inspect_image(&img)
                .await?
                .config
                .and_then(|x| x.env)
                .unwrap_or_default(),
            None => vec![],
        };
        Ok(scrub_env(&ran, &own))
    }

    /// Commits a container to `repo:tag` (its run-time env blanked: `commit_env`).
    pub async fn commit(&self, id: &str, repo: &str, tag: &str, comment: &str) -> Result<String> {
        let env = self.commit_env(id).await?;
        let r = self
            .docker
            .commit_container(
                bollard::query_parameters::CommitContainerOptions {
                    container: Some(id.to_string()),
                    repo: Some(repo.to_string()),
                    tag: Some(tag.to_string()),
                    comment: Some(comment.to_string()),
                    pause: true,
                    ..Default::default()
                },
                // The replicaSet's labels are blanked, so a container run from this image is
                // never taken for one of the replicaSet's own.
                bollard::models::ContainerConfig {
                    labels: Some(HashMap::from([
                        (crate::replicaset::LABEL_RS.to_string(), String::new()),
                        (crate::replicaset::LABEL_VERSION.to_string(), String::new()),
                    ])),
                    env: Some(env),
                    ..Default::default()
                },
            )
            .await?;
        Ok(r.id)
    }

    /// The container's log, stdout and stderr interleaved as written, from its last
    /// `LOG_TAIL_LINES` lines; `follow` keeps streaming. A character split between two chunks
    /// of the engine's stream is joined, never shown as two broken ones.
    pub fn logs(
        &self,
        id: &str,
        follow: bool,
    ) -> impl futures_util::Stream<Item = Result<String>> + '_ {
        use bollard::container::LogOutput;
        self.docker
            .logs(
                id,
                Some(bollard::query_parameters::LogsOptions {
                    stdout: true,
                    stderr: true,
                    follow,
                    tail: LOG_TAIL_LINES.to_string(),
                    ..Default::default()
                }),
            )
            .scan(
                (Utf8Joiner::default(), Utf8Joiner::default()),
                |(out, err), r| {
                    let item = r.map_err(CoreError::from).map(|l| match l {
                        LogOutput::StdErr { message } => err.push(&message),
                        LogOutput::StdOut { message }
                        | LogOutput::Console { message }
                        | LogOutput::StdIn { message } => out.push(&message),
                    });
                    std::future::ready(Some(item))
                },
            )
            .filter(|r| std::future::ready(!matches!(r, Ok(s) if s.is_empty())))
    }
}

/// How far back a log starts: its last this many lines.
pub const LOG_TAIL_LINES: u32 = 1000;

/// Turns a stream of byte chunks into text without splitting a UTF-8 character that straddles
/// two chunks (its first bytes wait for the rest); invalid bytes become U+FFFD.
#[derive(Debug, Default)]
pub struct Utf8Joiner {
    carry: Vec<u8>,
}

impl Utf8Joiner {
    pub fn push(&mut self, bytes: &[u8]) -> String {
        self.carry.extend_from_slice(bytes);
        let mut out = String::new();
        loop {
            match std::str::from_utf8(&self.carry) {
                Ok(s) => {
                    out.push_str(s);
                    self.carry.clear();
                    return out;
                }
                Err(e) => {
                    let valid = e.valid_up_to();
                    out.push_str(&String::from_utf8_lossy(&self.carry[..valid]));
                    match e.error_len() {
                        // An unfinished character at the end: keep it for the next chunk.
                        None => {
                            self.carry.drain(..valid);
                            return out;
                        }
                        Some(n) => {
                            out.push('\u{FFFD}');
                            self.carry.drain(..valid + n);
                        }
                    }
                }
            }
        }
    }
}

/// What a container's device requests claim of the GPUs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GpuClaim {
    /// `--gpus all` (count -1).
    All,
    /// `--gpus N`: the engine hands out the first N.
    Count(u32),
    /// `--gpus device=…`: UUIDs or indexes.
    Devices(Vec<String>),
}

impl GpuClaim {
    /// What a container of the nvidia runtime gets from its environment
    /// (`NVIDIA_VISIBLE_DEVICES=0,1`, `=GPU-…`, `=all`); other runtimes ignore it.
    pub fn from_env(runtime: Option<&str>, env: &[String]) -> Option<GpuClaim> {
        if runtime != Some("nvidia") {
            return None;
        }
        let v = env
            .iter()
            .rev()
            .find_map(|e| e.strip_prefix("NVIDIA_VISIBLE_DEVICES="))?
            .trim();
        match v {
            "" | "void" | "none" => None,
            "all" => Some(GpuClaim::All),
            list => Some(GpuClaim::Devices(
                list.split(',')
                    .map(|d| d.trim().to_string())
                    .filter(|d| !d.is_empty())
                    .collect(),
            )),
        }
    }

    /// Both claims together.
    pub fn union(a: Option<GpuClaim>, b: Option<GpuClaim>) -> Option<GpuClaim> {
        match (a, b) {
            (Some(GpuClaim::All), _) | (_, Some(GpuClaim::All)) => Some(GpuClaim::All),
            (Some(GpuClaim::Devices(mut x)), Some(GpuClaim::Devices(y))) => {
                x.extend(y);
                Some(GpuClaim::Devices(x))
            }
            (Some(GpuClaim::Count(n)), Some(GpuClaim::Count(m))) => Some(GpuClaim::Count(n.max(m))),
            // A count and a list: the list names devices, the count the first n; both held.
            (Some(GpuClaim::Count(n)), Some(GpuClaim::Devices(mut d)))
            | (Some(GpuClaim::Devices(mut d)), Some(GpuClaim::Count(n))) => {
                d.extend((0..n).map(|i| i.to_string()));
                Some(GpuClaim::Devices(d))
            }
            (a, None) => a,
            (None, b) => b,
        }
    }

    /// The union of the NVIDIA requests among `requests` (the nvidia driver's, and CDI's
    /// `nvidia.com/gpu=…` devices), or `None` if it claims no GPU.
    pub fn from_requests(requests: &[DeviceRequest]) -> Option<GpuClaim> {
        let mut cdi = Vec::new();
        for r in requests
            .iter()
            .filter(|r| r.driver.as_deref() == Some("cdi"))
        {
            for id in r.device_ids.iter().flatten() {
                match id.strip_prefix("nvidia.com/gpu=") {
                    Some("all") => return Some(GpuClaim::All),
                    Some(dev) => cdi.push(dev.to_string()),
                    None => {}
                }
            }
        }
        let cdi = (!cdi.is_empty()).then_some(GpuClaim::Devices(cdi));
        GpuClaim::union(cdi, Self::from_nvidia_requests(requests))
    }

    fn from_nvidia_requests(requests: &[DeviceRequest]) -> Option<GpuClaim> {
        let nvidia = requests
            .iter()
            .filter(|r| r.driver.as_deref() != Some("cdi"))
            .filter(|r| {
                r.driver.as_deref() == Some("nvidia")
                    || r.capabilities
                        .iter()
                        .flatten()
                        .any(|set| set.iter().any(|c| c == "gpu"))
            });
        let mut devices = Vec::new();
        let mut count = 0u32;
        for r in nvidia {
            match (&r.device_ids, r.count) {
                (Some(ids), _) if !ids.is_empty() => devices.extend(ids.iter().cloned()),
                (_, Some(-1)) => return Some(GpuClaim::All),
                (_, Some(n)) if n > 0 => count = count.max(n as u32),
                _ => {}
            }
        }
        if !devices.is_empty() {
            Some(GpuClaim::Devices(devices))
        } else if count > 0 {
            Some(GpuClaim::Count(count))
        } else {
            None
        }
    }

    pub fn covers(&self, index: u32, uuid: Option<&str>) -> bool {
        match self {
            GpuClaim::All => true,
            GpuClaim::Count(n) => index < *n,
            GpuClaim::Devices(ids) => ids
                .iter()
                .any(|d| Some(d.as_str()) == uuid || d.parse::<u32>().ok() == Some(index)),
        }
    }
}

/// Container names by id, and who claims which GPU. Rebuilt from the engine on start and events.
#[derive(Debug, Clone, Default)]
pub struct ContainerDirectory {
    names: HashMap<String, String>,
    claims: Vec<(ContainerRef, GpuClaim)>,
    /// Container id → the replicaSet it belongs to (label `gpudeck.replicaset`).
    managed: HashMap<String, String>,
}

impl ContainerDirectory {
    pub fn container_ref(&self, id: &str) -> ContainerRef {
        ContainerRef {
            id: id.to_string(),
            name: self.names.get(id).cloned().unwrap_or_default(),
            replicaset: self.managed.get(id).cloned(),
        }
    }

    /// The containers whose device requests name this GPU, sorted by name.
    pub fn holders_of(&self, index: u32, uuid: Option<&str>) -> Vec<ContainerRef> {
        let set: BTreeSet<&ContainerRef> = self
            .claims
            .iter()
            .filter(|(_, c)| c.covers(index, uuid))
            .map(|(r, _)| r)
            .collect();
        let mut v: Vec<ContainerRef> = set.into_iter().cloned().collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }

    /// GPUs (by UUID, among `gpus`) that running or paused containers hold outside `owner`'s
    /// own containers: other replicaSets' and unmanaged containers'.
    pub fn held_outside(
        &self,
        owner: &str,
        gpus: &[crate::alloc::GpuCandidate],
    ) -> std::collections::HashSet<String> {
        self.claims
            .iter()
            .filter(|(r, _)| self.managed.get(&r.id).map(String::as_str) != Some(owner))
            .flat_map(|(_, c)| {
                gpus.iter()
                    .filter(|g| c.covers(g.index, Some(&g.uuid)))
                    .map(|g| g.uuid.clone())
            })
            .collect()
    }

    /// The replicaSet a container belongs to, if any.
    pub fn replicaset_of(&self, id: &str) -> Option<&str> {
        self.managed.get(id).map(String::as_str)
    }

    #[cfg(test)]
    pub fn with(names: &[(&str, &str)], claims: Vec<(&str, GpuClaim)>) -> Self {
        let names: HashMap<String, String> = names
            .iter()
            .map(|(i, n)| (i.to_string(), n.to_string()))
            .collect();
        let claims = claims
            .into_iter()
            .map(|(id, c)| {
                (
                    ContainerRef {
                        id: id.into(),
                        name: names.get(id).cloned().unwrap_or_default(),
                        replicaset: None,
                    },
                    c,
                )
            })
            .collect();
        ContainerDirectory {
            names,
            claims,
            managed: HashMap::new(),
        }
    }
}

/// Keeps the connection and the directory alive: connects, reconnects after a failure (every
/// `retry`), refreshes the directory on every container event, and publishes the status.
/// `changes` counts the refreshes (a container started, stopped, removed…). Runs until the
/// endpoint sender is dropped; a new endpoint reconnects at once.
pub async fn monitor(
    mut endpoint: watch::Receiver<Option<String>>,
    status: watch::Sender<DockerStatus>,
    directory: Arc<RwLock<ContainerDirectory>>,
    changes: watch::Sender<u64>,
    retry: Duration,
) {
    loop {
        let ep = endpoint.borrow_and_update().clone();
        let shown = ep.clone().unwrap_or_else(default_endpoint);
        status.send_replace(DockerStatus::Connecting {
            endpoint: shown.clone(),
        });
        let outcome = match DockerAdapter::new(ep.as_deref()) {
            Ok(a) => match a.connect().await {
                Ok(a) => {
                    let err = watch_engine(&a, &status, &directory, &changes, &mut endpoint).await;
                    err.map(|e| e.to_string())
                }
                Err(e) => Some(reason_of(e)),
            },
            Err(e) => Some(reason_of(e)),
        };
        if let Some(reason) = outcome {
            status.send_replace(DockerStatus::Unreachable {
                endpoint: shown,
                reason,
            });
            *directory.write().unwrap_or_else(|e| e.into_inner()) = ContainerDirectory::default();
            // Wait for the retry, or reconnect at once when the endpoint setting changes.
            tokio::select! {
                _ = tokio::time::sleep(retry) => {}
                changed = endpoint.changed() => if changed.is_err() { return },
            }
        } else if endpoint.has_changed().is_err() {
            return;
        }
    }
}

fn reason_of(e: CoreError) -> String {
    match e {
        CoreError::DockerUnreachable { reason, .. } => reason,
        other => other.to_string(),
    }
}

/// Serves a connected engine until it fails (`Some(error)`) or the endpoint changes (`None`).
async fn watch_engine(
    a: &DockerAdapter,
    status: &watch::Sender<DockerStatus>,
    directory: &RwLock<ContainerDirectory>,
    changes: &watch::Sender<u64>,
    endpoint: &mut watch::Receiver<Option<String>>,
) -> Option<CoreError> {
    let info = match a.info().await {
        Ok(i) => i,
        Err(e) => return Some(e),
    };
    status.send_replace(DockerStatus::Connected { info });
    let mut events = Box::pin(a.changes());
    loop {
        match a.directory().await {
            Ok(d) => {
                *directory.write().unwrap_or_else(|e| e.into_inner()) = d;
                // Tells the pages that list containers to look again.
                changes.send_modify(|n| *n += 1);
            }
            Err(e) => return Some(e),
        }
        tokio::select! {
            ev = events.next() => match ev {
                Some(Ok(())) => {}
                Some(Err(e)) => return Some(e),
                None => return Some(CoreError::Docker("the engine closed its event stream".into())),
            },
            changed = endpoint.changed() => {
                let _ = changed;
                return None;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_commit_keeps_the_images_env_and_blanks_what_the_run_added() {
        let image = vec!["PATH=/usr/bin".to_string(), "LANG=C".to_string()];
        let ran = vec![
            "PATH=/custom".to_string(),
            "HF_TOKEN=hf_secret".to_string(),
            "LANG=C".to_string(),
            "CONTAINER_VERSION=2".to_string(),
        ];
        let env = scrub_env(&ran, &image);
        assert_eq!(
            env,
            vec!["PATH=/usr/bin", "LANG=C", "HF_TOKEN=", "CONTAINER_VERSION="]
        );
        assert!(!env.join(" ").contains("hf_secret"));
    }

    use super::*;

    fn req(driver: &str, count: Option<i64>, ids: Option<Vec<&str>>) -> DeviceRequest {
        DeviceRequest {
            driver: Some(driver.into()),
            count,
            device_ids: ids.map(|v| v.into_iter().map(String::from).collect()),
            capabilities: Some(vec![vec!["gpu".into()]]),
            options: None,
        }
    }

    #[test]
    fn characters_split_between_chunks_are_joined() {
        let text = "GPU 温度 ok ✓\n";
        let bytes = text.as_bytes();
        for cut in 1..bytes.len() {
            let mut j = Utf8Joiner::default();
            let joined = j.push(&bytes[..cut]) + &j.push(&bytes[cut..]);
            assert_eq!(joined, text, "cut at {cut}");
        }
        let mut j = Utf8Joiner::default();
        assert_eq!(j.push(b"a\xffb"), "a\u{FFFD}b");
    }

    #[test]
    fn a_gpu_request_nothing_serves_is_said_with_what_to_do() {
        let nvidia = super::gpu_refusal("Docker responded with status code 500: could not select device driver \"nvidia\" with capabilities: [[gpu]]").unwrap().to_string();
        assert!(
            nvidia.starts_with(
                "Containers cannot be given GPUs this way: nothing on this host serves"
            ),
            "{nvidia}"
        );
        assert!(
            nvidia.contains("could not select device driver \"nvidia\"")
                && nvidia.contains("NVIDIA Container Toolkit"),
            "{nvidia}"
        );
        let cdi =
            super::gpu_refusal("could not select device driver \"cdi\" with capabilities: []")
                .unwrap()
                .to_string();
        assert!(
            cdi.contains("CDI off") && cdi.contains("daemon.json"),
            "{cdi}"
        );
        assert!(super::gpu_refusal("No such container: x").is_none());
    }

    #[test]
    fn claims_from_device_requests() {
        assert_eq!(GpuClaim::from_requests(&[]), None);
        assert_eq!(
            GpuClaim::from_requests(&[req("nvidia", Some(-1), None)]),
            Some(GpuClaim::All)
        );
        assert_eq!(
            GpuClaim::from_requests(&[req("nvidia", Some(2), None)]),
            Some(GpuClaim::Count(2))
        );
        assert_eq!(
            GpuClaim::from_requests(&[req("", None, Some(vec!["GPU-a", "3"]))]),
            Some(GpuClaim::Devices(vec!["GPU-a".into(), "3".into()]))
        );
        let other = DeviceRequest {
            driver: Some("cdi".into()),
            count: Some(1),
            ..Default::default()
        };
        assert_eq!(GpuClaim::from_requests(&[other]), None);
    }

    #[test]
    fn cdi_devices_and_the_nvidia_runtime_environment_count_as_held() {
        let cdi = |ids: &[&str]| DeviceRequest {
            driver: Some("cdi".into()),
            device_ids: Some(ids.iter().map(|s| s.to_string()).collect()),
            ..Default::default()
        };
        assert_eq!(
            GpuClaim::from_requests(&[cdi(&["nvidia.com/gpu=0", "nvidia.com/gpu=GPU-b"])]),
            Some(GpuClaim::Devices(vec!["0".into(), "GPU-b".into()]))
        );
        assert_eq!(
            GpuClaim::from_requests(&[cdi(&["nvidia.com/gpu=all"])]),
            Some(GpuClaim::All)
        );
        assert_eq!(
            GpuClaim::from_requests(&[cdi(&["vendor.com/fpga=0"])]),
            None
        );
        let env = |v: &str| {
            vec![
                "PATH=/bin".to_string(),
                format!("NVIDIA_VISIBLE_DEVICES={v}"),
            ]
        };
        assert_eq!(
            GpuClaim::from_env(Some("nvidia"), &env("all")),
            Some(GpuClaim::All)
        );
        assert_eq!(
            GpuClaim::from_env(Some("nvidia"), &env("1,GPU-c")),
            Some(GpuClaim::Devices(vec!["1".into(), "GPU-c".into()]))
        );
        assert_eq!(GpuClaim::from_env(Some("nvidia"), &env("void")), None);
        assert_eq!(GpuClaim::from_env(Some("nvidia"), &env("none")), None);
        // runc ignores the variable: a CUDA image's NVIDIA_VISIBLE_DEVICES=all holds nothing there.
        assert_eq!(GpuClaim::from_env(Some("runc"), &env("all")), None);
        let both = GpuClaim::union(
            GpuClaim::from_requests(&[req("nvidia", None, Some(vec!["GPU-a"]))]),
            GpuClaim::from_env(Some("nvidia"), &env("2")),
        )
        .unwrap();
        assert!(
            both.covers(0, Some("GPU-a")) && both.covers(2, None) && !both.covers(1, Some("GPU-x"))
        );
    }

    #[test]
    fn holders_by_uuid_index_count_and_all() {
        let dir = ContainerDirectory::with(
            &[
                ("a", "alpha"),
                ("b", "beta"),
                ("c", "gamma"),
                ("d", "delta"),
            ],
            vec![
                ("a", GpuClaim::Devices(vec!["GPU-1".into()])),
                ("b", GpuClaim::Devices(vec!["2".into()])),
                ("c", GpuClaim::Count(1)),
                ("d", GpuClaim::All),
            ],
        );
        let names =
            |i, u| -> Vec<String> { dir.holders_of(i, u).into_iter().map(|r| r.name).collect() };
        assert_eq!(names(0, Some("GPU-0")), vec!["delta", "gamma"]);
        assert_eq!(names(1, Some("GPU-1")), vec!["alpha", "delta"]);
        assert_eq!(names(2, Some("GPU-2")), vec!["beta", "delta"]);
        assert_eq!(dir.container_ref("zz").name, "");
    }
}
