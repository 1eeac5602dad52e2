//! Volume commands: each one call of the service.

use gpudeck_core::store::VolumeVersion;
use gpudeck_core::volume::VolumeInfo;
use gpudeck_core::CoreError;
use tauri::State;

use crate::AppState;

type R<T> = Result<T, CoreError>;

#[tauri::command]
pub async fn vol_list(state: State<'_, AppState>) -> R<Vec<VolumeInfo>> {
    state.client.vol_list().await
}

#[tauri::command]
pub async fn vol_history(state: State<'_, AppState>, name: String) -> R<Vec<VolumeVersion>> {
    state.client.vol_history(&name).await
}

#[tauri::command]
pub async fn vol_create(state: State<'_, AppState>, name: String, size: String) -> R<VolumeInfo> {
    state.client.vol_create(&name, &size).await
}

/// Resizes; with `move_users` the replicaSets that bind it move to the new version.
#[tauri::command]
pub async fn vol_resize(
    state: State<'_, AppState>,
    name: String,
    size: String,
    move_users: bool,
) -> R<VolumeInfo> {
    state.client.vol_resize(&name, &size, move_users).await
}

#[tauri::command]
pub async fn vol_delete(state: State<'_, AppState>, name: String) -> R<()> {
    state.client.vol_delete(&name).await
}
