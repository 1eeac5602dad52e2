use std::collections::{HashMap, VecDeque};

use serde::Serialize;
use ts_rs::TS;

use super::GpuSnapshot;

pub const HISTORY_WINDOW_MS: u64 = 10 * 60 * 1000;

/// One point of a GPU's chart.
#[derive(
    Debug, Clone, Copy, Serialize, serde::Deserialize, TS, schemars::JsonSchema, PartialEq,
)]
#[serde(rename_all = "camelCase")]
pub struct HistoryPoint {
    #[ts(type = "number")]
    pub at_ms: u64,
    pub utilization_gpu_pct: Option<u32>,
    /// Memory used as a percentage of total.
    pub memory_pct: Option<f32>,
    pub temperature_c: Option<u32>,
    pub power_draw_w: Option<f32>,
}

/// The last 10 minutes of every GPU (by index), so a page opened late still draws full charts.
#[derive(Debug, Default)]
pub struct GpuHistory {
    series: HashMap<u32, VecDeque<HistoryPoint>>,
}

impl GpuHistory {
    pub fn record(&mut self, snap: &GpuSnapshot) {
        let horizon = snap.at_ms.saturating_sub(HISTORY_WINDOW_MS);
        for g in &snap.gpus {
            let memory_pct = match (g.memory_used_bytes, g.memory_total_bytes) {
                (Some(u), Some(t)) if t > 0 => Some((u as f64 * 100.0 / t as f64) as f32),
                _ => None,
            };
            let s = self.series.entry(g.index).or_default();
            s.push_back(HistoryPoint {
                at_ms: snap.at_ms,
                utilization_gpu_pct: g.utilization_gpu_pct,
                memory_pct,
                temperature_c: g.temperature_c,
                power_draw_w: g.power_draw_mw.map(|mw| mw as f32 / 1000.0),
            });
            while s.front().is_some_and(|p| p.at_ms < horizon) {
                s.pop_front();
            }
        }
        let live: Vec<u32> = snap.gpus.iter().map(|g| g.index).collect();
        self.series.retain(|i, _| live.contains(i));
    }

    pub fn series(&self) -> HashMap<u32, Vec<HistoryPoint>> {
        self.series
            .iter()
            .map(|(i, s)| (*i, s.iter().copied().collect()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gpu::{GpuReading, NvmlState};

    fn snap(at_ms: u64, n: u32) -> GpuSnapshot {
        GpuSnapshot {
            at_ms,
            nvml: NvmlState::Ok,
            driver_version: None,
            cuda_driver_version: None,
            gpus: (0..n)
                .map(|index| GpuReading {
                    index,
                    uuid: None,
                    name: None,
                    compute_capability: None,
                    memory_used_bytes: Some(25),
                    memory_total_bytes: Some(100),
                    utilization_gpu_pct: Some(index),
                    utilization_memory_pct: None,
                    temperature_c: None,
                    power_draw_mw: Some(1500),
                    power_limit_mw: None,
                    fan_pct: None,
                    clock_graphics_mhz: None,
                    clock_sm_mhz: None,
                    clock_memory_mhz: None,
                    processes: None,
                    held_by: vec![],
                })
                .collect(),
        }
    }

    #[test]
    fn keeps_ten_minutes_and_drops_vanished_gpus() {
        let mut h = GpuHistory::default();
        for s in 0..700u64 {
            h.record(&snap(s * 1000, 2));
        }
        let series = h.series();
        let s0 = &series[&0];
        assert_eq!(s0.len(), 601);
        assert_eq!(s0[0].at_ms, 99_000);
        assert_eq!(s0[0].memory_pct, Some(25.0));
        assert_eq!(s0[0].power_draw_w, Some(1.5));
        h.record(&snap(701_000, 1));
        assert!(!h.series().contains_key(&1));
    }
}
