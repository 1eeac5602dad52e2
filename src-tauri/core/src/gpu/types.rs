use serde::Serialize;
use ts_rs::TS;

/// One reading of every GPU. Each field may be `None` on its own ("N/A" in the UI): a board that
/// lacks a sensor, or a driver that lacks a call, never fails the whole sample.
#[derive(Debug, Clone, Serialize, serde::Deserialize, TS, schemars::JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct GpuSnapshot {
    /// Milliseconds since the Unix epoch.
    #[ts(type = "number")]
    pub at_ms: u64,
    pub nvml: NvmlState,
    pub driver_version: Option<String>,
    /// As NVML reports it, e.g. "12.4".
    pub cuda_driver_version: Option<String>,
    pub gpus: Vec<GpuReading>,
}

#[derive(Debug, Clone, Serialize, serde::Deserialize, TS, schemars::JsonSchema, PartialEq)]
#[serde(tag = "state", rename_all = "camelCase")]
pub enum NvmlState {
    /// NVML loaded and answered.
    Ok,
    /// No NVIDIA driver (or the library failed): the reason, shown in the empty state.
    Unavailable { reason: String },
}

#[derive(Debug, Clone, Serialize, serde::Deserialize, TS, schemars::JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct GpuReading {
    pub index: u32,
    pub uuid: Option<String>,
    pub name: Option<String>,
    /// "8.0" for an A100.
    pub compute_capability: Option<String>,
    #[ts(type = "number | null")]
    pub memory_used_bytes: Option<u64>,
    #[ts(type = "number | null")]
    pub memory_total_bytes: Option<u64>,
    pub utilization_gpu_pct: Option<u32>,
    pub utilization_memory_pct: Option<u32>,
    pub temperature_c: Option<u32>,
    pub power_draw_mw: Option<u32>,
    pub power_limit_mw: Option<u32>,
    pub fan_pct: Option<u32>,
    pub clock_graphics_mhz: Option<u32>,
    pub clock_sm_mhz: Option<u32>,
    pub clock_memory_mhz: Option<u32>,
    /// `None` when the driver cannot list processes.
    pub processes: Option<Vec<GpuProcess>>,
    /// Containers whose Docker device requests name this GPU (running or paused).
    pub held_by: Vec<ContainerRef>,
}

#[derive(Debug, Clone, Serialize, serde::Deserialize, TS, schemars::JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct GpuProcess {
    pub pid: u32,
    #[ts(type = "number | null")]
    pub used_memory_bytes: Option<u64>,
    /// The container the process runs in, found through `/proc/<pid>/cgroup`.
    pub container: Option<ContainerRef>,
}

#[derive(
    Debug,
    Clone,
    Serialize,
    serde::Deserialize,
    TS,
    schemars::JsonSchema,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
)]
#[serde(rename_all = "camelCase")]
pub struct ContainerRef {
    pub id: String,
    /// Empty while the Docker engine is unreachable (only the id is known then).
    pub name: String,
    /// The replicaSet it is a version of, when GPU Deck made it.
    pub replicaset: Option<String>,
}
