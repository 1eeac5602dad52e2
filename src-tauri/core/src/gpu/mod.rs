//! GPUs, live: readings from NVML, attributed to containers, kept for 10 minutes.

mod history;
mod nvml;
pub mod requests;
mod sampler;
mod types;

pub use history::{GpuHistory, HistoryPoint, HISTORY_WINDOW_MS};
pub use nvml::NvmlSource;
pub use sampler::{now_ms, read_snapshot, unavailable, GpuSampler, SamplerHandle};
pub use types::*;
