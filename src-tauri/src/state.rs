//! The app's state: the service's client, and the streams it forwards to the UI. The app runs as
//! the user; everything privileged happens in gpudeckd.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use futures_util::StreamExt;
use gpudeck_api::Client;
use gpudeck_core::settings::{Settings, STORE_KEY};
use gpudeck_core::{CoreError, Result};
use tauri::{AppHandle, Emitter, Runtime};
use tauri_plugin_store::StoreExt;

/// The user's own UI preferences (language, theme), kept with tauri-plugin-store in their config
/// folder; the rest of the settings are the service's.
const UI_STORE: &str = "ui-settings.json";

pub struct AppState {
    pub client: Client,
    /// The tasks streaming to the UI (GPU snapshots, followed logs), by subscription id.
    pub streams: Subscriptions,
    pub terminals: crate::commands::terminal::Terminals,
}

impl AppState {
    pub fn start<R: Runtime>(
        app: &AppHandle<R>,
    ) -> std::result::Result<AppState, Box<dyn std::error::Error>> {
        let client = Client::unix(gpudeck_api::socket_path(None));
        // The service's events reach the UI as `docker-status` and `containers-changed`; the
        // stream is opened again whenever it ends (the service restarted), and `service-status`
        // says whether the service answers.
        let (c, handle) = (client.clone(), app.clone());
        tauri::async_runtime::spawn(async move {
            loop {
                match c.events("/v1/events").await {
                    Ok(mut events) => {
                        let _ = handle.emit("service-status", true);
                        while let Some(Ok((ev, data))) = events.next().await {
                            let payload: serde_json::Value =
                                serde_json::from_str(&data).unwrap_or(serde_json::Value::Null);
                            let _ = handle.emit(&ev, payload);
                        }
                    }
                    Err(_) => {
                        let _ = handle.emit("service-status", false);
                    }
                }
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
        });
        Ok(AppState {
            client,
            streams: Subscriptions::default(),
            terminals: Default::default(),
        })
    }

    /// The service's settings (the defaults while it cannot be asked, so that the screen that
    /// says so is in the user's language) with this user's language and theme.
    pub async fn settings<R: Runtime>(&self, app: &AppHandle<R>) -> Result<Settings> {
        let mut s = self.client.settings().await.unwrap_or_default();
        if let Some(ui) = app.store(UI_STORE).ok().and_then(|st| st.get(STORE_KEY)) {
            if let Ok(mine) = serde_json::from_value::<Settings>(ui) {
                s.language = mine.language;
                s.theme = mine.theme;
            }
        }
        Ok(s)
    }

    /// Saves language and theme for this user; sends the rest to the service when it changed
    /// (which only an admin may do: a member is told so).
    pub async fn update_settings<R: Runtime>(
        &self,
        app: &AppHandle<R>,
        new: Settings,
    ) -> Result<Settings> {
        new.validate()?;
        let current = self.client.settings().await?;
        let service_part = Settings {
            language: current.language,
            theme: current.theme,
            ..new.clone()
        };
        if service_part != current {
            self.client.set_settings(&service_part).await?;
        }
        let store = app.store(UI_STORE).map_err(|e| CoreError::Io {
            path: UI_STORE.into(),
            reason: e.to_string(),
        })?;
        let ui = serde_json::to_value(&new)
            .map_err(|e| CoreError::invalid_setting("settings", e.to_string()))?;
        store.set(STORE_KEY, ui);
        store.save().map_err(|e| CoreError::Io {
            path: UI_STORE.into(),
            reason: e.to_string(),
        })?;
        self.settings(app).await
    }
}

/// Streaming tasks by id; removing one stops it.
#[derive(Default)]
pub struct Subscriptions {
    tasks: Mutex<(u32, HashMap<u32, tauri::async_runtime::JoinHandle<()>>)>,
}

impl Subscriptions {
    pub fn add(&self, task: tauri::async_runtime::JoinHandle<()>) -> u32 {
        let mut g = self.tasks.lock().unwrap_or_else(|e| e.into_inner());
        g.0 = g.0.wrapping_add(1);
        let id = g.0;
        g.1.retain(|_, t| !t.inner().is_finished());
        g.1.insert(id, task);
        id
    }

    pub fn remove(&self, id: u32) {
        if let Some(t) = self
            .tasks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .1
            .remove(&id)
        {
            t.abort();
        }
    }
}
