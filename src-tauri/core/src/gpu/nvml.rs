//! The NVML adapter: the only place that talks to nvml-wrapper. Loads the driver's
//! `libnvidia-ml.so.1` by default, or the library named by `$GPUDECK_NVML_LIB` (tests).

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use nvml_wrapper::enum_wrappers::device::{Clock, TemperatureSensor};
use nvml_wrapper::Nvml;

use super::{GpuProcess, GpuReading};
use crate::{CoreError, Result};

pub struct NvmlSource {
    nvml: Nvml,
    lib: Option<PathBuf>,
}

/// What one pass over the driver returns, before attribution to containers.
pub struct RawSample {
    pub driver_version: Option<String>,
    pub cuda_driver_version: Option<String>,
    pub gpus: Vec<GpuReading>,
}

impl NvmlSource {
    pub fn open(lib: Option<&Path>) -> Result<NvmlSource> {
        let mut builder = Nvml::builder();
        if let Some(path) = lib {
            builder.lib_path(OsStr::new(path));
        }
        let nvml = builder
            .init()
            .map_err(|e| CoreError::NvmlUnavailable(describe(lib, &e)))?;
        Ok(NvmlSource {
            nvml,
            lib: lib.map(Path::to_path_buf),
        })
    }

    /// The library in use, for `doctor`.
    pub fn library(&self) -> String {
        self.lib
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "libnvidia-ml.so.1".into())
    }

    pub fn sample(&self) -> Result<RawSample> {
        let count = self
            .nvml
            .device_count()
            .map_err(|e| CoreError::NvmlUnavailable(e.to_string()))?;
        let gpus = (0..count).map(|i| self.read_device(i)).collect();
        Ok(RawSample {
            driver_version: self.nvml.sys_driver_version().ok(),
            cuda_driver_version: self.nvml.sys_cuda_driver_version().ok().map(|v| {
                format!(
                    "{}.{}",
                    nvml_wrapper::cuda_driver_version_major(v),
                    nvml_wrapper::cuda_driver_version_minor(v)
                )
            }),
            gpus,
        })
    }

    fn read_device(&self, index: u32) -> GpuReading {
        let mut r = GpuReading {
            index,
            uuid: None,
            name: None,
            compute_capability: None,
            memory_used_bytes: None,
            memory_total_bytes: None,
            utilization_gpu_pct: None,
            utilization_memory_pct: None,
            temperature_c: None,
            power_draw_mw: None,
            power_limit_mw: None,
            fan_pct: None,
            clock_graphics_mhz: None,
            clock_sm_mhz: None,
            clock_memory_mhz: None,
            processes: None,
            held_by: vec![],
        };
        // A device we cannot even open still shows up, with every field N/A.
        let Ok(d) = self.nvml.device_by_index(index) else {
            return r;
        };
        r.uuid = d.uuid().ok();
        r.name = d.name().ok();
        r.compute_capability = d
            .cuda_compute_capability()
            .ok()
            .map(|c| format!("{}.{}", c.major, c.minor));
        if let Ok(m) = d.memory_info() {
            r.memory_used_bytes = Some(m.used);
            r.memory_total_bytes = Some(m.total);
        }
        if let Ok(u) = d.utilization_rates() {
            r.utilization_gpu_pct = Some(u.gpu);
            r.utilization_memory_pct = Some(u.memory);
        }
        r.temperature_c = d.temperature(TemperatureSensor::Gpu).ok();
        r.power_draw_mw = d.power_usage().ok();
        r.power_limit_mw = d.enforced_power_limit().ok();
        r.fan_pct = d.fan_speed(0).ok();
        r.clock_graphics_mhz = d.clock_info(Clock::Graphics).ok();
        r.clock_sm_mhz = d.clock_info(Clock::SM).ok();
        r.clock_memory_mhz = d.clock_info(Clock::Memory).ok();
        r.processes = d.running_compute_processes().ok().map(|ps| {
            ps.into_iter()
                .map(|p| GpuProcess {
                    pid: p.pid,
                    used_memory_bytes: match p.used_gpu_memory {
                        nvml_wrapper::enums::device::UsedGpuMemory::Used(b) => Some(b),
                        nvml_wrapper::enums::device::UsedGpuMemory::Unavailable => None,
                    },
                    container: None,
                })
                .collect()
        });
        r
    }
}

fn describe(lib: Option<&Path>, e: &nvml_wrapper::error::NvmlError) -> String {
    use nvml_wrapper::error::NvmlError as E;
    let what = lib
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "libnvidia-ml.so.1".into());
    match e {
        E::LibloadingError(inner) => format!("{what} not found or not loadable: {inner}"),
        E::DriverNotLoaded => "the NVIDIA kernel driver is not loaded".into(),
        E::NoPermission => "no permission to talk to the NVIDIA driver".into(),
        other => format!("{what}: {other}"),
    }
}
