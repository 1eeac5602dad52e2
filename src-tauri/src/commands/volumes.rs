//! Volume commands.

use gpudeck_core::store::VolumeVersion;
use gpudeck_core::volume::{parse_size, VolumeInfo};
use gpudeck_core::CoreError;
use tauri::State;

use crate::AppState;

type R<T> = Result<T, CoreError>;

#[tauri::command]
pub async fn vol_list(state: State<'_, AppState>) -> R<Vec<VolumeInfo>> {
    let docker = state.docker_adapter().await?;
    state.volumes(&docker)?.list().await
}

#[tauri::command]
pub async fn vol_history(state: State<'_, AppState>, name: String) -> R<Vec<VolumeVersion>> {
    let docker = state.docker_adapter().await?;
    state.volumes(&docker)?.history(&name)
}

#[tauri::command]
pub async fn vol_create(state: State<'_, AppState>, name: String, size: String) -> R<VolumeInfo> {
    let docker = state.docker_adapter().await?;
    state
        .volumes(&docker)?
        .create(&name, parse_size(&size)?)
        .await
}

/// Resizes; with `move_users` the replicaSets that bind it move to the new version.
#[tauri::command]
pub async fn vol_resize(
    state: State<'_, AppState>,
    name: String,
    size: String,
    move_users: bool,
) -> R<VolumeInfo> {
    let docker = state.docker_adapter().await?;
    let settings = state.settings();
    let rs = state.replicasets(&docker, &settings)?;
    state
        .volumes(&docker)?
        .resize(&name, parse_size(&size)?, move_users.then_some(&rs))
        .await
}

#[tauri::command]
pub async fn vol_delete(state: State<'_, AppState>, name: String) -> R<()> {
    let docker = state.docker_adapter().await?;
    state.volumes(&docker)?.delete(&name).await
}
