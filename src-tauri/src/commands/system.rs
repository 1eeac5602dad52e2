use gpudeck_core::docker::DockerStatus;
use gpudeck_core::doctor::{self, DoctorCheck};
use gpudeck_core::paths::nvml_lib_from_env;
use tauri::State;

use crate::AppState;

#[tauri::command]
pub fn docker_status(state: State<'_, AppState>) -> DockerStatus {
    state.docker.borrow().clone()
}

#[tauri::command]
pub async fn doctor(state: State<'_, AppState>) -> Result<Vec<DoctorCheck>, ()> {
    let s = state.settings();
    Ok(doctor::run(
        s.docker_endpoint.as_deref(),
        nvml_lib_from_env().as_deref(),
        s.publish_address.as_deref(),
    )
    .await)
}

/// The UI calls this once its first page shows data; the startup time goes to the log (the
/// benchmark reads it).
#[tauri::command]
pub fn ui_ready() {
    if let Some(t) = crate::STARTED.get() {
        tracing::info!("ui-ready after {} ms", t.elapsed().as_millis());
    }
}
