//! ReplicaSet and port commands: each builds the core service for one call and runs it.

use std::time::Duration;

use gpudeck_core::alloc::PortMap;
use gpudeck_core::docker::ExecOutput;
use gpudeck_core::replicaset::{Bind, RsInfo, RsSpec};
use gpudeck_core::store::VersionRecord;
use gpudeck_core::CoreError;
use tauri::State;

use crate::AppState;

type R<T> = Result<T, CoreError>;

/// Runs `$body` with `$svc` bound to a `ReplicaSets` for this call.
macro_rules! with_rs {
    ($state:expr, |$svc:ident| $body:expr) => {{
        let docker = $state.docker_adapter().await?;
        let settings = $state.settings();
        let $svc = $state.replicasets(&docker, &settings)?;
        $body
    }};
}

#[tauri::command]
pub async fn rs_list(state: State<'_, AppState>) -> R<Vec<RsInfo>> {
    with_rs!(state, |svc| svc.list().await)
}

#[tauri::command]
pub async fn rs_history(state: State<'_, AppState>, name: String) -> R<Vec<VersionRecord>> {
    with_rs!(state, |svc| svc.history(&name))
}

#[tauri::command]
pub async fn rs_run(state: State<'_, AppState>, name: String, spec: RsSpec) -> R<RsInfo> {
    with_rs!(state, |svc| svc.run(&name, spec).await)
}

/// A new version with another GPU count and/or one bind swapped for another.
#[tauri::command]
pub async fn rs_patch(
    state: State<'_, AppState>,
    name: String,
    gpus: Option<u32>,
    swap: Option<(Bind, Bind)>,
) -> R<RsInfo> {
    with_rs!(state, |svc| svc.patch(&name, gpus, swap).await)
}

#[tauri::command]
pub async fn rs_rollback(
    state: State<'_, AppState>,
    name: String,
    version: u32,
    config_only: Option<bool>,
) -> R<RsInfo> {
    with_rs!(state, |svc| svc
        .rollback(&name, version, config_only.unwrap_or(false))
        .await)
}

/// Bytes every replicaSet's version files take (the System page's total).
#[tauri::command]
pub async fn rs_files_bytes(state: State<'_, AppState>) -> R<u64> {
    with_rs!(state, |svc| svc.files_bytes())
}

/// Keeps the files of only the newest `keep` replaced versions; returns the versions pruned.
#[tauri::command]
pub async fn rs_prune(state: State<'_, AppState>, name: String, keep: u32) -> R<Vec<u32>> {
    with_rs!(state, |svc| svc.prune(&name, keep).await)
}

/// stop | pause | continue | restart | delete.
#[tauri::command]
pub async fn rs_action(
    state: State<'_, AppState>,
    name: String,
    action: String,
) -> R<Option<RsInfo>> {
    with_rs!(state, |svc| match action.as_str() {
        "stop" => svc.stop(&name).await.map(Some),
        "pause" => svc.pause(&name).await.map(Some),
        "continue" => svc.resume(&name).await.map(Some),
        "restart" => svc.restart(&name).await.map(Some),
        "delete" => svc.delete(&name).await.map(|()| None),
        other => Err(CoreError::InvalidInput {
            what: "action".into(),
            reason: format!("unknown action \"{other}\"")
        }),
    })
}

#[tauri::command]
pub async fn rs_commit(
    state: State<'_, AppState>,
    name: String,
    image: String,
    message: String,
) -> R<String> {
    with_rs!(state, |svc| svc.commit(&name, &image, &message).await)
}

#[tauri::command]
pub async fn rs_exec(
    state: State<'_, AppState>,
    name: String,
    command: Vec<String>,
    timeout_s: u64,
) -> R<ExecOutput> {
    with_rs!(state, |svc| svc
        .exec(
            &name,
            &command,
            Duration::from_secs(timeout_s.clamp(1, 3600))
        )
        .await)
}

#[tauri::command]
pub async fn images_local(state: State<'_, AppState>) -> R<Vec<String>> {
    state.docker_adapter().await?.image_tags().await
}

#[tauri::command]
pub async fn ports_map(state: State<'_, AppState>) -> R<PortMap> {
    let docker = state.docker_adapter().await?;
    let claims = state
        .store()?
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .port_claims()?;
    let published = docker.published_ports().await?;
    Ok(gpudeck_core::alloc::port_map(
        state.settings().port_range,
        &gpudeck_core::alloc::host_listening_ports(),
        &published,
        &claims,
    ))
}
