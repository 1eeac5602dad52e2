use gpudeck_core::settings::Settings;
use gpudeck_core::CoreError;
use tauri::{AppHandle, State};

use crate::AppState;

#[tauri::command]
pub fn get_settings(state: State<'_, AppState>) -> Settings {
    state.settings()
}

#[tauri::command]
pub fn set_settings(
    app: AppHandle,
    state: State<'_, AppState>,
    settings: Settings,
) -> Result<Settings, CoreError> {
    state.update_settings(&app, settings)
}
