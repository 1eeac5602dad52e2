//! ReplicaSet and port commands: each one call of the service.

use std::time::Duration;

use gpudeck_api::PatchRequest;
use gpudeck_core::alloc::PortMap;
use gpudeck_core::docker::ExecOutput;
use gpudeck_core::replicaset::{Bind, RsInfo, RsSpec};
use gpudeck_core::store::VersionRecord;
use gpudeck_core::CoreError;
use tauri::State;

use crate::AppState;

type R<T> = Result<T, CoreError>;

#[tauri::command]
pub async fn rs_list(state: State<'_, AppState>) -> R<Vec<RsInfo>> {
    state.client.rs_list().await
}

#[tauri::command]
pub async fn rs_history(state: State<'_, AppState>, name: String) -> R<Vec<VersionRecord>> {
    state.client.rs_history(&name).await
}

#[tauri::command]
pub async fn rs_run(state: State<'_, AppState>, name: String, spec: RsSpec) -> R<RsInfo> {
    state.client.rs_run(&name, spec).await
}

/// A new version with another GPU count and/or one bind swapped for another.
#[tauri::command]
pub async fn rs_patch(
    state: State<'_, AppState>,
    name: String,
    gpus: Option<u32>,
    swap: Option<(Bind, Bind)>,
) -> R<RsInfo> {
    state
        .client
        .rs_patch(&name, &PatchRequest { gpus, swap })
        .await
}

#[tauri::command]
pub async fn rs_rollback(
    state: State<'_, AppState>,
    name: String,
    version: u32,
    config_only: Option<bool>,
) -> R<RsInfo> {
    state
        .client
        .rs_rollback(&name, version, config_only.unwrap_or(false))
        .await
}

/// Bytes every replicaSet's version files take (the System page's total).
#[tauri::command]
pub async fn rs_files_bytes(state: State<'_, AppState>) -> R<u64> {
    state.client.files_bytes().await
}

/// Keeps the files of only the newest `keep` replaced versions; returns the versions pruned.
#[tauri::command]
pub async fn rs_prune(state: State<'_, AppState>, name: String, keep: u32) -> R<Vec<u32>> {
    Ok(state.client.rs_prune(&name, keep).await?.pruned)
}

/// stop | pause | continue | restart | delete.
#[tauri::command]
pub async fn rs_action(
    state: State<'_, AppState>,
    name: String,
    action: String,
) -> R<Option<RsInfo>> {
    match action.as_str() {
        "delete" => state.client.rs_delete(&name).await.map(|()| None),
        a => state.client.rs_action(&name, a).await.map(Some),
    }
}

#[tauri::command]
pub async fn rs_commit(
    state: State<'_, AppState>,
    name: String,
    image: String,
    message: String,
) -> R<String> {
    Ok(state.client.rs_commit(&name, &image, &message).await?.id)
}

#[tauri::command]
pub async fn rs_exec(
    state: State<'_, AppState>,
    name: String,
    command: Vec<String>,
    timeout_s: u64,
) -> R<ExecOutput> {
    state
        .client
        .rs_exec(
            &name,
            &command,
            Duration::from_secs(timeout_s.clamp(1, 3600)),
        )
        .await
}

#[tauri::command]
pub async fn images_local(state: State<'_, AppState>) -> R<Vec<String>> {
    state.client.images().await
}

#[tauri::command]
pub async fn ports_map(state: State<'_, AppState>) -> R<PortMap> {
    state.client.ports().await
}
