//! GPU Deck's local API: HTTP/JSON on gpudeckd's Unix socket. The request and reply types here
//! (and the core's domain types they carry) are the contract; `client::Client` is the one typed
//! client the app and the CLI both use. Routes are listed in `routes()` (the OpenAPI document
//! the service serves at `/v1/openapi.json` is built from it).

pub mod client;

use gpudeck_core::replicaset::{Bind, RsSpec};
use serde::{Deserialize, Serialize};

pub use client::{Client, Transport};

/// Where the service listens unless told otherwise (`GPUDECK_SOCKET`, `--socket`).
pub const DEFAULT_SOCKET: &str = "/run/gpudeck/gpudeck.sock";
pub const SOCKET_ENV: &str = "GPUDECK_SOCKET";

/// The socket a client should use: `--socket`, else `$GPUDECK_SOCKET`, else the default.
pub fn socket_path(flag: Option<&str>) -> String {
    flag.map(str::to_string)
        .or_else(|| std::env::var(SOCKET_ENV).ok().filter(|s| !s.is_empty()))
        .unwrap_or_else(|| DEFAULT_SOCKET.to_string())
}

#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RunRequest {
    pub name: String,
    pub spec: RsSpec,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PatchRequest {
    #[serde(default)]
    pub gpus: Option<u32>,
    /// One bind swapped for another.
    #[serde(default)]
    pub swap: Option<(Bind, Bind)>,
}

#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RollbackRequest {
    pub version: u32,
    #[serde(default)]
    pub config_only: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PruneRequest {
    pub keep: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PruneReply {
    pub name: String,
    pub pruned: Vec<u32>,
}

#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CommitRequest {
    pub image: String,
    #[serde(default)]
    pub message: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CommitReply {
    pub image: String,
    pub id: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExecRequest {
    pub command: Vec<String>,
    #[serde(default = "default_timeout")]
    pub timeout_s: u64,
}

fn default_timeout() -> u64 {
    60
}

#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VolCreateRequest {
    pub name: String,
    /// `512MB`, `20GB`, `64GiB` or bytes.
    pub size: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VolResizeRequest {
    pub size: String,
    #[serde(default)]
    pub move_users: bool,
}

/// `PUT /v1/policy/{user}` (`*`: the default row): the fields to set; absent ones keep their value,
/// `clear` names fields to reset to the fallback.
#[derive(Debug, Clone, Default, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PolicyUpdate {
    #[serde(default)]
    pub max_gpus: Option<u32>,
    #[serde(default)]
    pub bind_roots: Option<Vec<String>>,
    #[serde(default)]
    pub root_in_container: Option<bool>,
    /// All their volumes together, as a size ("500GB", "1TiB").
    #[serde(default)]
    pub max_volume_size: Option<String>,
    /// Each of their containers' memory, as a size ("16GiB").
    #[serde(default)]
    pub memory: Option<String>,
    /// Each of their containers' CPUs ("2.5").
    #[serde(default)]
    pub cpus: Option<f64>,
    #[serde(default)]
    pub clear: Vec<String>,
}

/// `GET /v1/policy`: every row (admins), or only the caller's (members), and the caller's limits.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PolicyView {
    pub rows: Vec<gpudeck_core::policy::PolicyRow>,
    pub you: gpudeck_core::policy::Effective,
}

/// `POST /v1/images/pull` and `/v1/images/push`: the image, as typed.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ImageRequest {
    pub image: String,
}

/// `POST /v1/images/tag`.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TagRequest {
    pub source: String,
    pub target: String,
}

/// `POST /v1/tokens`: a token for `user` (admins: anyone; members: themselves).
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TokenRequest {
    pub user: String,
    #[serde(default)]
    pub name: String,
}

/// `POST /v1/catalog/import`: entries in one of the formats the catalog reads (admins).
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CatalogImportRequest {
    pub format: gpudeck_core::catalog::ImportFormat,
    pub text: String,
}

/// `POST /v1/catalog/export`: GPU Deck's file of the named entries (all when none).
#[derive(Debug, Clone, Default, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CatalogExportRequest {
    #[serde(default)]
    pub names: Vec<String>,
    #[serde(default)]
    pub yaml: bool,
}

/// `POST /v1/catalog/{name}/render`: the form's values, `KIND.NAME` → text.
#[derive(Debug, Clone, Default, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CatalogRenderRequest {
    #[serde(default)]
    pub values: std::collections::BTreeMap<String, String>,
}

/// `POST /v1/catalog/{name}/launch`: a replicaSet from the entry, as the caller.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CatalogLaunchRequest {
    pub replicaset: String,
    #[serde(default)]
    pub gpus: Option<u32>,
    #[serde(default)]
    pub values: std::collections::BTreeMap<String, String>,
}

/// A route: method, path, what it takes and gives, who may call it.
pub struct Route {
    pub method: &'static str,
    pub path: &'static str,
    pub summary: &'static str,
    pub request: Option<&'static str>,
    pub reply: &'static str,
}

macro_rules! route {
    ($m:literal, $p:literal, $s:literal, $req:expr, $rep:literal) => {
        Route {
            method: $m,
            path: $p,
            summary: $s,
            request: $req,
            reply: $rep,
        }
    };
}

/// Every route of the local API.
pub fn routes() -> Vec<Route> {
    vec![
        route!(
            "get",
            "/v1/whoami",
            "The caller, as the socket's peer credentials say, and their role.",
            None,
            "Caller"
        ),
        route!(
            "get",
            "/v1/docker",
            "The Docker engine's status.",
            None,
            "DockerStatus"
        ),
        route!(
            "get",
            "/v1/doctor",
            "Checks of the host: engine, driver, hook, storage.",
            None,
            "DoctorCheck[]"
        ),
        route!(
            "get",
            "/v1/settings",
            "The service's settings.",
            None,
            "Settings"
        ),
        route!(
            "put",
            "/v1/settings",
            "Replaces the settings (admins).",
            Some("Settings"),
            "Settings"
        ),
        route!(
            "get",
            "/v1/gpus",
            "A fresh reading of every GPU.",
            None,
            "GpuSnapshot"
        ),
        route!(
            "get",
            "/v1/gpus/history",
            "The last 10 minutes of every GPU.",
            None,
            "Record<number, HistoryPoint[]>"
        ),
        route!(
            "get",
            "/v1/gpus/stream",
            "Server-sent events `sample`: every new GPU snapshot.",
            None,
            "text/event-stream"
        ),
        route!(
            "get",
            "/v1/events",
            "Server-sent events `docker-status`, `containers-changed`, `progress` (every step of a journaled operation) and `job` (pulls and pushes; members see their own).",
            None,
            "text/event-stream"
        ),
        route!(
            "get",
            "/v1/ports",
            "The host port range: used, free, by whom.",
            None,
            "PortMap"
        ),
        route!("get", "/v1/images", "Local image tags.", None, "string[]"),
        route!(
            "get",
            "/v1/images/local",
            "Local images with the replicaSet versions that use them (snapshots left out).",
            None,
            "LocalImage[]"
        ),
        route!(
            "get",
            "/v1/images/inspect",
            "One image (`?image=REF or id`): config, layers with sizes, users.",
            None,
            "ImageDetail"
        ),
        route!(
            "post",
            "/v1/images/tag",
            "Names an image anew (members: under their own name).",
            Some("TagRequest"),
            "null"
        ),
        route!(
            "post",
            "/v1/images/remove",
            "Removes a tag, or the image at its last tag; refused while replicaSet versions use it.",
            Some("ImageRequest"),
            "string[]"
        ),
        route!(
            "post",
            "/v1/images/prune",
            "Removes dangling images no version uses (admins).",
            None,
            "PruneReport"
        ),
        route!(
            "post",
            "/v1/images/pull",
            "Starts a pull job, with the credentials of the registry of that host.",
            Some("ImageRequest"),
            "JobView"
        ),
        route!(
            "post",
            "/v1/images/push",
            "Starts a push job (members: images under their own name).",
            Some("ImageRequest"),
            "JobView"
        ),
        route!(
            "get",
            "/v1/jobs",
            "Pulls and pushes under way or recently ended (members: their own), newest first.",
            None,
            "JobView[]"
        ),
        route!("get", "/v1/jobs/{id}", "One job.", None, "JobView"),
        route!(
            "get",
            "/v1/jobs/{id}/events",
            "Server-sent events `job` (at most 10 a second) until it ends; `?cancelOnClose=true` cancels the job when the stream closes first.",
            None,
            "text/event-stream"
        ),
        route!(
            "post",
            "/v1/jobs/{id}/cancel",
            "Cancels a job (its owner or an admin); the engine's transfer stops.",
            None,
            "JobView"
        ),
        route!(
            "get",
            "/v1/registries",
            "The registries GPU Deck knows (never their passwords).",
            None,
            "Registry[]"
        ),
        route!(
            "post",
            "/v1/registries",
            "Adds a registry after its login worked (admins); the password is write-only.",
            Some("RegistryAdd"),
            "Registry"
        ),
        route!(
            "delete",
            "/v1/registries/{name}",
            "Forgets a registry and its password (admins).",
            None,
            "null"
        ),
        route!(
            "get",
            "/v1/registries/{name}/repositories",
            "Every repository (needs the catalog scope).",
            None,
            "string[]"
        ),
        route!(
            "get",
            "/v1/registries/{name}/tags",
            "The tags of `?repository=REPO`.",
            None,
            "string[]"
        ),
        route!(
            "get",
            "/v1/registries/{name}/info",
            "Digest, compressed size, created and platforms of `?image=REPO:TAG`.",
            None,
            "RemoteImageInfo"
        ),
        route!(
            "post",
            "/v1/registries/{name}/delete",
            "Deletes `image` (REPO:TAG) by digest, with every tag of that digest (admins).",
            Some("ImageRequest"),
            "RemoteDeleted"
        ),
        route!(
            "get",
            "/v1/replicasets",
            "Every replicaSet (others' env hidden).",
            None,
            "RsInfo[]"
        ),
        route!(
            "post",
            "/v1/replicasets",
            "Creates NAME-1, owned by the caller.",
            Some("RunRequest"),
            "RsInfo"
        ),
        route!(
            "get",
            "/v1/replicasets/{name}",
            "One replicaSet.",
            None,
            "RsInfo"
        ),
        route!(
            "delete",
            "/v1/replicasets/{name}",
            "Deletes it (owner or admin).",
            None,
            "null"
        ),
        route!(
            "get",
            "/v1/replicasets/{name}/history",
            "Every version.",
            None,
            "VersionRecord[]"
        ),
        route!(
            "post",
            "/v1/replicasets/{name}/patch",
            "A new version: GPUs and/or a bind.",
            Some("PatchRequest"),
            "RsInfo"
        ),
        route!(
            "post",
            "/v1/replicasets/{name}/rollback",
            "A new version from an earlier one.",
            Some("RollbackRequest"),
            "RsInfo"
        ),
        route!(
            "post",
            "/v1/replicasets/{name}/prune",
            "Drops old versions' files.",
            Some("PruneRequest"),
            "PruneReply"
        ),
        route!(
            "post",
            "/v1/replicasets/{name}/commit",
            "Commits to an image (members: under their name).",
            Some("CommitRequest"),
            "CommitReply"
        ),
        route!(
            "post",
            "/v1/replicasets/{name}/exec",
            "Runs a command in it (each stream's first 8 MiB are kept).",
            Some("ExecRequest"),
            "ExecOutput"
        ),
        route!(
            "post",
            "/v1/replicasets/{name}/exec-stream",
            "Runs a command in it, streamed as it prints: one JSON ExecFrame a line, the exit code last.",
            Some("ExecRequest"),
            "application/x-ndjson"
        ),
        route!(
            "post",
            "/v1/replicasets/{name}/stop",
            "Stops it; frees GPUs and ports.",
            None,
            "RsInfo"
        ),
        route!(
            "post",
            "/v1/replicasets/{name}/pause",
            "Freezes it; GPUs and ports kept.",
            None,
            "RsInfo"
        ),
        route!(
            "post",
            "/v1/replicasets/{name}/continue",
            "Continues or starts it.",
            None,
            "RsInfo"
        ),
        route!(
            "post",
            "/v1/replicasets/{name}/restart",
            "A new version on fresh GPUs and ports.",
            None,
            "RsInfo"
        ),
        route!(
            "get",
            "/v1/replicasets/{name}/logs",
            "Its output (`?follow=true` streams).",
            None,
            "text/plain"
        ),
        route!(
            "get",
            "/v1/replicasets/{name}/terminal",
            "A shell in it, over a WebSocket (text in, binary out; `{\"resize\":[cols,rows]}`).",
            None,
            "websocket"
        ),
        route!(
            "get",
            "/v1/files-bytes",
            "Bytes every version's files take.",
            None,
            "number"
        ),
        route!("get", "/v1/volumes", "Every volume.", None, "VolumeInfo[]"),
        route!(
            "post",
            "/v1/volumes",
            "Creates NAME-1, owned by the caller.",
            Some("VolCreateRequest"),
            "VolumeInfo"
        ),
        route!(
            "get",
            "/v1/volumes/{name}",
            "One volume.",
            None,
            "VolumeInfo"
        ),
        route!(
            "delete",
            "/v1/volumes/{name}",
            "Deletes it (owner or admin).",
            None,
            "null"
        ),
        route!(
            "get",
            "/v1/volumes/{name}/history",
            "Every version.",
            None,
            "VolumeVersion[]"
        ),
        route!(
            "post",
            "/v1/volumes/{name}/resize",
            "A new version of another size.",
            Some("VolResizeRequest"),
            "VolumeInfo"
        ),
        route!(
            "get",
            "/v1/policy",
            "Limits: every row (admins) or your own.",
            None,
            "PolicyView"
        ),
        route!(
            "put",
            "/v1/policy/{user}",
            "Sets a user's limits (`*`: the default; admins).",
            Some("PolicyUpdate"),
            "PolicyRow"
        ),
        route!(
            "get",
            "/v1/audit",
            "Who did what, newest first (admins).",
            None,
            "AuditEntry[]"
        ),
        route!(
            "post",
            "/v1/replicasets/{name}/commit-push",
            "Commits the replicaSet to an image and pushes it: one job, two phases.",
            Some("CommitRequest"),
            "JobView"
        ),
        route!(
            "get",
            "/v1/tokens",
            "Tokens of the gpu-docker-api REST API (members: their own; never the secret).",
            None,
            "TokenInfo[]"
        ),
        route!(
            "post",
            "/v1/tokens",
            "Makes a token for a user (admins: anyone; members: themselves); the secret is shown only here.",
            Some("TokenRequest"),
            "NewToken"
        ),
        route!(
            "delete",
            "/v1/tokens/{id}",
            "Removes a token.",
            None,
            "null"
        ),
        route!(
            "get",
            "/v1/catalog",
            "Catalog entries with their compatibility here; `?filter=` takes UFDL's filter specification (JSON).",
            None,
            "CatalogItem[]"
        ),
        route!(
            "post",
            "/v1/catalog/import",
            "Imports entries (GPU Deck's file, Argon's payload, UFDL's JSON); an edit makes a new revision (admins).",
            Some("CatalogImportRequest"),
            "Imported[]"
        ),
        route!(
            "post",
            "/v1/catalog/export",
            "GPU Deck's file of the named entries (JSON, or YAML).",
            Some("CatalogExportRequest"),
            "string"
        ),
        route!("get", "/v1/catalog/{name}", "One entry, with its compatibility here.", None, "CatalogItem"),
        route!(
            "delete",
            "/v1/catalog/{name}",
            "Deletes an entry (soft), refused while a replicaSet launched from it exists (admins).",
            None,
            "null"
        ),
        route!(
            "post",
            "/v1/catalog/{name}/render",
            "The argv, env (secrets masked) and binds a launch with these values would run.",
            Some("CatalogRenderRequest"),
            "Rendered"
        ),
        route!(
            "post",
            "/v1/catalog/{name}/launch",
            "Launches a replicaSet from the entry, as the caller.",
            Some("CatalogLaunchRequest"),
            "RsInfo"
        ),
        route!("get", "/v1/openapi.json", "This document.", None, "OpenAPI"),
    ]
}

/// The JSON schema of a type named in the route table (`X[]`: an array of X), its definitions
/// collected in `g`; `None` for what is not JSON (streams, plain text).
fn schema_of(name: &str, g: &mut schemars::SchemaGenerator) -> Option<schemars::Schema> {
    use gpudeck_core as c;
    if let Some(item) = name.strip_suffix("[]") {
        let item = schema_of(item, g)?;
        return Some(schemars::json_schema!({ "type": "array", "items": item }));
    }
    Some(match name {
        "Caller" => g.subschema_for::<c::policy::Caller>(),
        "DockerStatus" => g.subschema_for::<c::docker::DockerStatus>(),
        "DoctorCheck" => g.subschema_for::<c::doctor::DoctorCheck>(),
        "Settings" => g.subschema_for::<c::settings::Settings>(),
        "GpuSnapshot" => g.subschema_for::<c::gpu::GpuSnapshot>(),
        "Record<number, HistoryPoint[]>" => {
            g.subschema_for::<std::collections::HashMap<u32, Vec<c::gpu::HistoryPoint>>>()
        }
        "PortMap" => g.subschema_for::<c::alloc::PortMap>(),
        "string" => g.subschema_for::<String>(),
        "number" => g.subschema_for::<u64>(),
        "null" => g.subschema_for::<()>(),
        "RsInfo" => g.subschema_for::<c::replicaset::RsInfo>(),
        "VersionRecord" => g.subschema_for::<c::store::VersionRecord>(),
        "ExecOutput" => g.subschema_for::<c::docker::ExecOutput>(),
        "VolumeInfo" => g.subschema_for::<c::volume::VolumeInfo>(),
        "VolumeVersion" => g.subschema_for::<c::store::VolumeVersion>(),
        "PolicyRow" => g.subschema_for::<c::policy::PolicyRow>(),
        "AuditEntry" => g.subschema_for::<c::policy::store::AuditEntry>(),
        "RunRequest" => g.subschema_for::<RunRequest>(),
        "PatchRequest" => g.subschema_for::<PatchRequest>(),
        "RollbackRequest" => g.subschema_for::<RollbackRequest>(),
        "PruneRequest" => g.subschema_for::<PruneRequest>(),
        "PruneReply" => g.subschema_for::<PruneReply>(),
        "CommitRequest" => g.subschema_for::<CommitRequest>(),
        "CommitReply" => g.subschema_for::<CommitReply>(),
        "ExecRequest" => g.subschema_for::<ExecRequest>(),
        "VolCreateRequest" => g.subschema_for::<VolCreateRequest>(),
        "VolResizeRequest" => g.subschema_for::<VolResizeRequest>(),
        "PolicyUpdate" => g.subschema_for::<PolicyUpdate>(),
        "PolicyView" => g.subschema_for::<PolicyView>(),
        "LocalImage" => g.subschema_for::<c::image::LocalImage>(),
        "ImageDetail" => g.subschema_for::<c::image::ImageDetail>(),
        "PruneReport" => g.subschema_for::<c::image::PruneReport>(),
        "JobView" => g.subschema_for::<c::image::jobs::JobView>(),
        "Registry" => g.subschema_for::<c::image::Registry>(),
        "RegistryAdd" => g.subschema_for::<c::image::RegistryAdd>(),
        "RemoteImageInfo" => g.subschema_for::<c::image::registry::RemoteImageInfo>(),
        "RemoteDeleted" => g.subschema_for::<c::image::registry::RemoteDeleted>(),
        "ImageRequest" => g.subschema_for::<ImageRequest>(),
        "TagRequest" => g.subschema_for::<TagRequest>(),
        "TokenRequest" => g.subschema_for::<TokenRequest>(),
        "CatalogItem" => g.subschema_for::<c::catalog::CatalogItem>(),
        "Imported" => g.subschema_for::<c::catalog::Imported>(),
        "Rendered" => g.subschema_for::<c::catalog::entry::Rendered>(),
        "CatalogImportRequest" => g.subschema_for::<CatalogImportRequest>(),
        "CatalogExportRequest" => g.subschema_for::<CatalogExportRequest>(),
        "CatalogRenderRequest" => g.subschema_for::<CatalogRenderRequest>(),
        "CatalogLaunchRequest" => g.subschema_for::<CatalogLaunchRequest>(),
        "TokenInfo" => g.subschema_for::<c::policy::tokens::TokenInfo>(),
        "NewToken" => g.subschema_for::<c::policy::tokens::NewToken>(),
        _ => return None,
    })
}

/// The OpenAPI 3.1 document of `routes()`: paths and methods, and the JSON schemas of every
/// request and reply, generated from the Rust types (the same ones the TypeScript bindings in
/// `ui/src/bindings` come from).
pub fn openapi() -> serde_json::Value {
    let mut settings = schemars::generate::SchemaSettings::draft2020_12();
    settings.definitions_path = "/components/schemas".into();
    let mut g = settings.into_generator();
    let error = g.subschema_for::<gpudeck_core::ErrorPayload>();
    let mut paths = serde_json::Map::new();
    for r in routes() {
        let entry = paths
            .entry(r.path.to_string())
            .or_insert_with(|| serde_json::json!({}));
        let reply = match schema_of(r.reply, &mut g) {
            Some(schema) => {
                serde_json::json!({ "description": r.reply, "content": { "application/json": { "schema": schema } } })
            }
            None => {
                let mime = if r.reply.contains('/') {
                    r.reply
                } else {
                    "application/octet-stream"
                };
                serde_json::json!({ "description": r.reply, "content": { mime: {} } })
            }
        };
        let mut op = serde_json::json!({
            "summary": r.summary,
            "responses": {
                "200": reply,
                "default": { "description": "An error: {code, message}", "content": { "application/json": { "schema": error } } }
            }
        });
        if let Some(schema) = r.request.and_then(|req| schema_of(req, &mut g)) {
            op["requestBody"] = serde_json::json!({
                "required": true,
                "content": { "application/json": { "schema": schema } }
            });
        }
        let params: Vec<serde_json::Value> = r
            .path
            .split('/')
            .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .map(|p| serde_json::json!({ "name": p, "in": "path", "required": true, "schema": { "type": "string" } }))
            .collect();
        if !params.is_empty() {
            op["parameters"] = serde_json::Value::Array(params);
        }
        entry[r.method] = op;
    }
    let schemas: serde_json::Map<String, serde_json::Value> =
        g.take_definitions(true).into_iter().collect();
    serde_json::json!({
        "openapi": "3.1.0",
        "info": { "title": "GPU Deck local API", "version": env!("CARGO_PKG_VERSION"),
                  "description": "Served by gpudeckd on its Unix socket. The caller is who the socket's peer credentials say." },
        "paths": paths,
        "components": { "schemas": schemas }
    })
}

#[cfg(test)]
mod tests {
    /// Every JSON route names a schema, and every `$ref` in the document resolves.
    #[test]
    fn the_openapi_document_is_whole() {
        let doc = super::openapi();
        let text = doc.to_string();
        for r in super::routes() {
            let json = !r.reply.contains('/') && !matches!(r.reply, "websocket" | "OpenAPI");
            let op = &doc["paths"][r.path][r.method];
            assert!(op.is_object(), "{} {}", r.method, r.path);
            if json {
                assert!(
                    op["responses"]["200"]["content"]["application/json"]["schema"].is_object(),
                    "{} {} has no reply schema",
                    r.method,
                    r.path
                );
            }
            if r.request.is_some() {
                assert!(op["requestBody"].is_object(), "{} {}", r.method, r.path);
            }
        }
        for (i, _) in text.match_indices("#/components/schemas/") {
            let name: String = text[i + 21..].chars().take_while(|c| *c != '"').collect();
            assert!(
                doc["components"]["schemas"][&name].is_object(),
                "unresolved $ref {name}"
            );
        }
        assert!(doc["components"]["schemas"]["RsSpec"]["properties"]["gpus"].is_object());
    }
}
