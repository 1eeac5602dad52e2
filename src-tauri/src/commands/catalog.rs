//! Catalog commands: each one call of the service.

use std::collections::BTreeMap;

use gpudeck_api::CatalogLaunchRequest;
use gpudeck_core::catalog::entry::Rendered;
use gpudeck_core::catalog::{CatalogItem, ImportFormat, Imported};
use gpudeck_core::replicaset::RsInfo;
use gpudeck_core::CoreError;
use tauri::State;

use crate::AppState;

type R<T> = Result<T, CoreError>;

#[tauri::command]
pub async fn catalog_list(
    state: State<'_, AppState>,
    filter: Option<String>,
) -> R<Vec<CatalogItem>> {
    state.client.catalog(filter.as_deref()).await
}

#[tauri::command]
pub async fn catalog_import(
    state: State<'_, AppState>,
    format: ImportFormat,
    text: String,
) -> R<Vec<Imported>> {
    state.client.catalog_import(format, &text).await
}

#[tauri::command]
pub async fn catalog_remove(state: State<'_, AppState>, name: String) -> R<()> {
    state.client.catalog_remove(&name).await
}

#[tauri::command]
pub async fn catalog_render(
    state: State<'_, AppState>,
    name: String,
    values: BTreeMap<String, String>,
) -> R<Rendered> {
    state.client.catalog_render(&name, values).await
}

#[tauri::command]
pub async fn catalog_launch(
    state: State<'_, AppState>,
    name: String,
    replicaset: String,
    gpus: Option<u32>,
    values: BTreeMap<String, String>,
) -> R<RsInfo> {
    state
        .client
        .catalog_launch(
            &name,
            &CatalogLaunchRequest {
                replicaset,
                gpus,
                values,
            },
        )
        .await
}
