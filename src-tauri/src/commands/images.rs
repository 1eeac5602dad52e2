//! Image and registry commands: each one call of the service. Pulls and pushes return their job
//! at once; its progress reaches the UI as `job` events (forwarded from the service's stream).

use gpudeck_core::image::jobs::JobView;
use gpudeck_core::image::registry::{RemoteDeleted, RemoteImageInfo};
use gpudeck_core::image::{ImageDetail, LocalImage, PruneReport, Registry, RegistryAdd};
use gpudeck_core::CoreError;
use tauri::State;

use crate::AppState;

type R<T> = Result<T, CoreError>;

#[tauri::command]
pub async fn image_list(state: State<'_, AppState>) -> R<Vec<LocalImage>> {
    state.client.images_local().await
}

#[tauri::command]
pub async fn image_inspect(state: State<'_, AppState>, image: String) -> R<ImageDetail> {
    state.client.image_inspect(&image).await
}

#[tauri::command]
pub async fn image_tag(state: State<'_, AppState>, source: String, target: String) -> R<()> {
    state.client.image_tag(&source, &target).await
}

#[tauri::command]
pub async fn image_remove(state: State<'_, AppState>, image: String) -> R<Vec<String>> {
    state.client.image_remove(&image).await
}

#[tauri::command]
pub async fn image_prune(state: State<'_, AppState>) -> R<PruneReport> {
    state.client.image_prune().await
}

#[tauri::command]
pub async fn image_pull(state: State<'_, AppState>, image: String) -> R<JobView> {
    state.client.image_pull(&image).await
}

#[tauri::command]
pub async fn image_push(state: State<'_, AppState>, image: String) -> R<JobView> {
    state.client.image_push(&image).await
}

#[tauri::command]
pub async fn rs_commit_push(
    state: State<'_, AppState>,
    name: String,
    image: String,
    message: String,
) -> R<JobView> {
    state.client.rs_commit_push(&name, &image, &message).await
}

#[tauri::command]
pub async fn job_list(state: State<'_, AppState>) -> R<Vec<JobView>> {
    state.client.jobs().await
}

#[tauri::command]
pub async fn job_cancel(state: State<'_, AppState>, id: u64) -> R<JobView> {
    state.client.job_cancel(id).await
}

#[tauri::command]
pub async fn registry_list(state: State<'_, AppState>) -> R<Vec<Registry>> {
    state.client.registries().await
}

#[tauri::command]
pub async fn registry_add(state: State<'_, AppState>, registry: RegistryAdd) -> R<Registry> {
    state.client.registry_add(&registry).await
}

#[tauri::command]
pub async fn registry_remove(state: State<'_, AppState>, name: String) -> R<()> {
    state.client.registry_remove(&name).await
}

#[tauri::command]
pub async fn registry_repositories(state: State<'_, AppState>, name: String) -> R<Vec<String>> {
    state.client.registry_repositories(&name).await
}

#[tauri::command]
pub async fn registry_tags(
    state: State<'_, AppState>,
    name: String,
    repository: String,
) -> R<Vec<String>> {
    state.client.registry_tags(&name, &repository).await
}

#[tauri::command]
pub async fn registry_info(
    state: State<'_, AppState>,
    name: String,
    image: String,
) -> R<RemoteImageInfo> {
    state.client.registry_info(&name, &image).await
}

#[tauri::command]
pub async fn registry_delete(
    state: State<'_, AppState>,
    name: String,
    image: String,
) -> R<RemoteDeleted> {
    state.client.registry_delete(&name, &image).await
}
