//! The Tauri shell: a client of gpudeckd (the app runs as the user), with thin command handlers
//! (one module per domain under `commands/`), each one call of the service.

pub mod cli;
pub(crate) mod commands;
mod state;

use tauri::Manager;

pub use state::AppState;

/// When the process started the app, for the startup figure `ui_ready` logs.
static STARTED: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();

/// Launches the desktop app.
pub fn run() -> Result<(), String> {
    let _ = STARTED.set(std::time::Instant::now());
    // Logs go to stderr; RUST_LOG=debug for more.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .try_init();
    tauri::Builder::default()
        .plugin(tauri_plugin_store::Builder::new().build())
        .setup(|app| {
            let state = AppState::start(app.handle())?;
            app.manage(state);
            Ok(())
        })
        .invoke_handler(tauri::generate_handler![
            commands::gpus::gpu_subscribe,
            commands::gpus::gpu_unsubscribe,
            commands::gpus::gpu_history,
            commands::settings::get_settings,
            commands::settings::set_settings,
            commands::settings::whoami,
            commands::settings::os_user,
            commands::system::policy_get,
            commands::system::policy_set,
            commands::system::audit,
            commands::system::docker_status,
            commands::system::doctor,
            commands::system::ui_ready,
            commands::replicasets::rs_list,
            commands::replicasets::rs_history,
            commands::replicasets::rs_run,
            commands::replicasets::rs_patch,
            commands::replicasets::rs_rollback,
            commands::replicasets::rs_prune,
            commands::replicasets::rs_files_bytes,
            commands::replicasets::rs_action,
            commands::replicasets::rs_commit,
            commands::replicasets::rs_exec,
            commands::replicasets::images_local,
            commands::replicasets::ports_map,
            commands::terminal::rs_terminal_open,
            commands::terminal::rs_terminal_input,
            commands::terminal::rs_terminal_resize,
            commands::terminal::rs_terminal_close,
            commands::terminal::rs_logs_follow,
            commands::terminal::stream_close,
            commands::volumes::vol_list,
            commands::volumes::vol_history,
            commands::volumes::vol_create,
            commands::volumes::vol_resize,
            commands::volumes::vol_delete,
            commands::images::image_list,
            commands::images::image_inspect,
            commands::images::image_tag,
            commands::images::image_remove,
            commands::images::image_prune,
            commands::images::image_pull,
            commands::images::image_push,
            commands::images::rs_commit_push,
            commands::images::job_list,
            commands::images::job_cancel,
            commands::images::registry_list,
            commands::images::registry_add,
            commands::images::registry_remove,
            commands::images::registry_repositories,
            commands::images::registry_tags,
            commands::images::registry_info,
            commands::images::registry_delete,
            commands::catalog::catalog_list,
            commands::catalog::catalog_import,
            commands::catalog::catalog_remove,
            commands::catalog::catalog_render,
            commands::catalog::catalog_launch,
        ])
        .run(tauri::generate_context!())
        .map_err(|e| e.to_string())
}
