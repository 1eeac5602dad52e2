use std::collections::HashMap;
use std::time::Duration;

use futures_util::StreamExt;
use gpudeck_core::gpu::{GpuSnapshot, HistoryPoint};
use gpudeck_core::CoreError;
use tauri::ipc::Channel;
use tauri::State;

use crate::AppState;

/// Streams every new GPU snapshot from the service to the UI over `on_sample` (the latest one
/// first) until `gpu_unsubscribe` with the id returned here; reconnects if the service restarts.
#[tauri::command]
pub fn gpu_subscribe(state: State<'_, AppState>, on_sample: Channel<GpuSnapshot>) -> u32 {
    let client = state.client.clone();
    let task = tauri::async_runtime::spawn(async move {
        loop {
            if let Ok(mut samples) = client.gpu_stream().await {
                while let Some(Ok(snap)) = samples.next().await {
                    if on_sample.send(snap).is_err() {
                        return;
                    }
                }
            }
            tokio::time::sleep(Duration::from_secs(2)).await;
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
pub async fn gpu_history(
    state: State<'_, AppState>,
) -> Result<HashMap<u32, Vec<HistoryPoint>>, CoreError> {
    state.client.gpu_history().await
}
