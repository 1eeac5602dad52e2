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
}

impl CoreError {
    /// A stable, machine-readable code; the UI keys its translations on it.
    pub fn code(&self) -> &'static str {
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

impl From<bollard::errors::Error> for CoreError {
    fn from(e: bollard::errors::Error) -> Self {
        CoreError::Docker(e.to_string())
    }
}

/// What reaches the UI for any failed command: `{code, message}`.
#[derive(Debug, Clone, Serialize, TS)]
pub struct ErrorPayload {
    pub code: String,
    pub message: String,
}

impl Serialize for CoreError {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        self.payload().serialize(s)
    }
}
