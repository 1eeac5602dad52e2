//! Typed errors. Each has a stable `code` the UI translates, and an English sentence that says
//! what to do, used by the CLI and as the UI's fallback.

use serde::Serialize;
use ts_rs::TS;

pub type Result<T, E = CoreError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    #[error("The Docker engine at {endpoint} is unreachable ({reason}). Start it (`sudo systemctl start docker`) or set the Docker endpoint in Settings.")]
    DockerUnreachable { endpoint: String, reason: String },

    #[error(
        "The Docker engine answered with an error: {0}. Check `journalctl -u docker` for details."
    )]
    Docker(String),

    #[error("The NVIDIA driver library could not be loaded ({0}). Install the NVIDIA driver, or set GPUDECK_NVML_LIB to the path of libnvidia-ml.so.1.")]
    NvmlUnavailable(String),

    #[error("{requested} GPU(s) requested, {free} free. Stop a replicaSet that holds GPUs (pausing keeps them), or ask for fewer.")]
    NotEnoughGpus { requested: u32, free: u32 },

    #[error("{requested} host port(s) requested, {free} free in the configured range. Widen the port range in Settings, or free ports.")]
    NotEnoughPorts { requested: u32, free: u32 },

    #[error("Invalid {what}: {reason}. Nothing was changed.")]
    InvalidInput { what: String, reason: String },

    #[error("No replicaSet is named \"{0}\". `gpudeck rs ls` lists them.")]
    RsNotFound(String),

    #[error("A replicaSet named \"{0}\" already exists. Pick another name, or delete it first.")]
    RsExists(String),

    #[error("The image \"{0}\" is not on this machine. Pull or build it first (`docker images` lists what is here).")]
    ImageMissing(String),

    #[error("The replicaSet \"{name}\" is {state}; {hint}")]
    RsState {
        name: String,
        state: String,
        hint: String,
    },

    #[error("The setting \"{field}\" is invalid: {reason}")]
    InvalidSetting { field: String, reason: String },

    #[error("The database {path} was written by a newer GPU Deck (schema {found}, this build knows {supported}). Update GPU Deck, or point GPUDECK_DATA_DIR at another folder.")]
    DatabaseTooNew {
        path: String,
        found: i64,
        supported: i64,
    },

    #[error("The database could not be used ({0}). Check that the data folder is writable and not full.")]
    Database(#[from] rusqlite::Error),

    #[error("Could not access {path}: {reason}. Check that the folder exists and is writable.")]
    Io { path: String, reason: String },

    #[error("The files of version {version} of \"{name}\" are no longer kept (pruned, or their image was removed outside GPU Deck). Nothing was changed. To start version {version}'s configuration from its clean image instead, roll back with --config-only (in the app: \"configuration only\").")]
    FilesGone { name: String, version: u32 },

    /// What a caller may not do, said with whose it is and who may.
    #[error("{0}")]
    Forbidden(String),

    #[error("Containers cannot be given GPUs this way: {0}. Nothing was changed.")]
    GpuRequests(String),

    #[error("{user} may hold at most {limit} GPU(s) at once and holds {held}; {requested} more would pass that. Stop one of your replicaSets, or ask an admin to raise your limit (`gpudeck policy set {user} --max-gpus N`).")]
    GpuLimit {
        user: String,
        limit: u32,
        held: u32,
        requested: u32,
    },

    #[error("Your account ({user}) is not in the group \"gpudeck\", whose members may use GPU Deck. Ask an admin to add you: `sudo usermod -aG gpudeck {user}`, then log in again (or run `newgrp gpudeck`).")]
    NotInGroup { user: String },

    #[error("GPU Deck's service is not answering at {socket} ({reason}). Start it: `sudo systemctl start gpudeck` (where no systemd runs: `sudo gpudeckd &`).")]
    ServiceUnreachable { socket: String, reason: String },

    #[error("You may not use GPU Deck's service at {socket}: your account is not in the group \"gpudeck\". Ask an admin: `sudo usermod -aG gpudeck $USER`, then log in again (or run `newgrp gpudeck`).")]
    ServiceDenied { socket: String },

    #[error("Another GPU Deck process (pid {pid}) holds the data folder {path}. Use the service it runs (drop --local), or stop it first.")]
    DataDirBusy { path: String, pid: String },

    #[error("Could not {action} {image}: {reason}.{hint}")]
    Transfer {
        action: String,
        image: String,
        reason: String,
        hint: String,
    },

    #[error("The image {image} is used by {users}. Delete those replicaSets, or prune those versions (`gpudeck rs prune`), first. Nothing was removed.")]
    ImageInUse { image: String, users: String },

    #[error("No registry is named \"{0}\". `gpudeck registry ls` lists them; an admin adds one with `gpudeck registry add`.")]
    RegistryNotFound(String),

    #[error("A registry named \"{0}\" already exists. Pick another name, or remove it first (`gpudeck registry rm`).")]
    RegistryExists(String),

    #[error("The registry {registry} refused the user name and password ({reason}). Check them and try again; nothing was saved.")]
    RegistryAuth { registry: String, reason: String },

    #[error("The registry {registry} answered: {reason}")]
    Registry { registry: String, reason: String },

    #[error("The {0} was cancelled; nothing more was transferred.")]
    Cancelled(String),

    /// An error the service sent, as it said it.
    #[error("{message}")]
    Remote { code: String, message: String },
}

impl CoreError {
    /// A stable, machine-readable code; the UI keys its translations on it.
    pub fn code(&self) -> &str {
        match self {
            CoreError::DockerUnreachable { .. } => "docker_unreachable",
            CoreError::Docker(_) => "docker_error",
            CoreError::NvmlUnavailable(_) => "nvml_unavailable",
            CoreError::NotEnoughGpus { .. } => "not_enough_gpus",
            CoreError::NotEnoughPorts { .. } => "not_enough_ports",
            CoreError::InvalidInput { .. } => "invalid_input",
            CoreError::RsNotFound(_) => "rs_not_found",
            CoreError::RsExists(_) => "rs_exists",
            CoreError::ImageMissing(_) => "image_missing",
            CoreError::RsState { .. } => "rs_state",
            CoreError::InvalidSetting { .. } => "invalid_setting",
            CoreError::DatabaseTooNew { .. } => "database_too_new",
            CoreError::Database(_) => "database_error",
            CoreError::Io { .. } => "io_error",
            CoreError::FilesGone { .. } => "files_gone",
            CoreError::Forbidden(_) => "forbidden",
            CoreError::GpuRequests(_) => "gpu_requests",
            CoreError::GpuLimit { .. } => "gpu_limit",
            CoreError::NotInGroup { .. } => "not_in_group",
            CoreError::ServiceUnreachable { .. } => "service_unreachable",
            CoreError::ServiceDenied { .. } => "service_denied",
            CoreError::DataDirBusy { .. } => "data_dir_busy",
            CoreError::Transfer { .. } => "transfer_failed",
            CoreError::ImageInUse { .. } => "image_in_use",
            CoreError::RegistryNotFound(_) => "registry_not_found",
            CoreError::RegistryExists(_) => "registry_exists",
            CoreError::RegistryAuth { .. } => "registry_auth",
            CoreError::Registry { .. } => "registry_error",
            CoreError::Cancelled(_) => "cancelled",
            CoreError::Remote { code, .. } => code,
        }
    }

    pub fn io(path: impl AsRef<std::path::Path>, err: std::io::Error) -> Self {
        CoreError::Io {
            path: path.as_ref().display().to_string(),
            reason: err.to_string(),
        }
    }

    pub fn invalid_setting(field: &str, reason: impl Into<String>) -> Self {
        CoreError::InvalidSetting {
            field: field.to_string(),
            reason: reason.into(),
        }
    }

    pub fn payload(&self) -> ErrorPayload {
        ErrorPayload {
            code: self.code().to_string(),
            message: self.to_string(),
        }
    }
}

impl From<ErrorPayload> for CoreError {
    fn from(p: ErrorPayload) -> Self {
        CoreError::Remote {
            code: p.code,
            message: p.message,
        }
    }
}

impl CoreError {
    /// The HTTP status the service answers this error with.
    pub fn http_status(&self) -> u16 {
        match self.code() {
            "invalid_input" | "invalid_setting" | "files_gone" => 400,
            "forbidden" | "not_in_group" | "gpu_limit" => 403,
            "rs_not_found" | "registry_not_found" => 404,
            "rs_exists" | "rs_state" | "image_in_use" | "registry_exists" | "cancelled" => 409,
            "not_enough_gpus" | "not_enough_ports" | "image_missing" | "registry_auth"
            | "gpu_requests" => 422,
            "transfer_failed" | "registry_error" => 502,
            "docker_unreachable" | "nvml_unavailable" => 503,
            _ => 500,
        }
    }
}

impl From<bollard::errors::Error> for CoreError {
    fn from(e: bollard::errors::Error) -> Self {
        CoreError::Docker(e.to_string())
    }
}

/// What reaches the UI for any failed command: `{code, message}`.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize, TS, schemars::JsonSchema)]
pub struct ErrorPayload {
    pub code: String,
    pub message: String,
}

impl Serialize for CoreError {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        self.payload().serialize(s)
    }
}
