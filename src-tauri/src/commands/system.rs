use gpudeck_api::{PolicyUpdate, PolicyView};
use gpudeck_core::docker::DockerStatus;
use gpudeck_core::doctor::DoctorCheck;
use gpudeck_core::policy::store::AuditEntry;
use gpudeck_core::policy::PolicyRow;
use gpudeck_core::CoreError;
use tauri::State;

use crate::AppState;

type R<T> = Result<T, CoreError>;

#[tauri::command]
pub async fn docker_status(state: State<'_, AppState>) -> R<DockerStatus> {
    state.client.docker_status().await
}

#[tauri::command]
pub async fn doctor(state: State<'_, AppState>) -> R<Vec<DoctorCheck>> {
    state.client.doctor().await
}

#[tauri::command]
pub async fn policy_get(state: State<'_, AppState>) -> R<PolicyView> {
    state.client.policy().await
}

#[tauri::command]
pub async fn policy_set(
    state: State<'_, AppState>,
    user: String,
    update: PolicyUpdate,
) -> R<PolicyRow> {
    state.client.policy_set(&user, &update).await
}

#[tauri::command]
pub async fn audit(state: State<'_, AppState>) -> R<Vec<AuditEntry>> {
    state.client.audit().await
}

/// The UI calls this once its first page shows data; the startup time goes to the log (the
/// benchmark reads it).
#[tauri::command]
pub fn ui_ready() {
    if let Some(t) = crate::STARTED.get() {
        tracing::info!("ui-ready after {} ms", t.elapsed().as_millis());
    }
}
