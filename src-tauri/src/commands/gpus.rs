use std::collections::HashMap;
use std::sync::Arc;

use gpudeck_core::gpu::{GpuSnapshot, HistoryPoint};
use tauri::ipc::Channel;
use tauri::State;

use crate::AppState;

/// Streams every new GPU snapshot to the UI over `on_sample` (the latest one first) until
/// `gpu_unsubscribe` with the id returned here.
#[tauri::command]
pub fn gpu_subscribe(state: State<'_, AppState>, on_sample: Channel<Arc<GpuSnapshot>>) -> u32 {
    let mut rx = state.sampler.subscribe();
    let task = tauri::async_runtime::spawn(async move {
        let first = rx.borrow_and_update().clone();
        if on_sample.send(first).is_err() {
            return;
        }
        while rx.changed().await.is_ok() {
            let snap = rx.borrow_and_update().clone();
            if on_sample.send(snap).is_err() {
                return;
            }
        }
    });
    state.streams.add(task)
}

#[tauri::command]
pub fn gpu_unsubscribe(state: State<'_, AppState>, id: u32) {
    state.streams.remove(id);
}

/// The last 10 minutes of every GPU, by index.
#[tauri::command]
pub fn gpu_history(state: State<'_, AppState>) -> HashMap<u32, Vec<HistoryPoint>> {
    state.sampler.history()
}
