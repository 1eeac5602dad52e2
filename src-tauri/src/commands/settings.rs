use gpudeck_core::policy::Caller;
use gpudeck_core::settings::Settings;
use gpudeck_core::CoreError;
use tauri::{AppHandle, State};

use crate::AppState;

#[tauri::command]
pub async fn get_settings(
    app: AppHandle,
    state: State<'_, AppState>,
) -> Result<Settings, CoreError> {
    state.settings(&app).await
}

#[tauri::command]
pub async fn set_settings(
    app: AppHandle,
    state: State<'_, AppState>,
    settings: Settings,
) -> Result<Settings, CoreError> {
    state.update_settings(&app, settings).await
}

/// Who the service says this user is; an error says why the service cannot be used (not running,
/// not in the group), which the UI shows as a screen of its own.
#[tauri::command]
pub async fn whoami(state: State<'_, AppState>) -> Result<Caller, CoreError> {
    state.client.whoami().await
}

/// The Linux user this app runs as (the screen that says which group to join names them, even
/// when the service cannot be asked).
#[tauri::command]
pub fn os_user() -> String {
    let uid = nix::unistd::getuid();
    nix::unistd::User::from_uid(uid)
        .ok()
        .flatten()
        .map(|u| u.name)
        .unwrap_or_else(|| uid.to_string())
}
