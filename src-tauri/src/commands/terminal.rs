//! Interactive terminals (xterm.js in the UI) and followed logs, streamed over channels.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::Arc;

use futures_util::StreamExt;
use gpudeck_core::CoreError;
use tauri::ipc::Channel;
use tauri::State;
use tokio::io::{AsyncWrite, AsyncWriteExt};

use crate::AppState;

type Input = Arc<tokio::sync::Mutex<Pin<Box<dyn AsyncWrite + Send>>>>;

/// An open terminal: its exec id (for resizing), where to type, and the task reading its output.
struct Open {
    exec_id: String,
    input: Input,
    task: tauri::async_runtime::JoinHandle<()>,
}

/// Open terminals by id.
#[derive(Default)]
pub struct Terminals {
    inner: std::sync::Mutex<(u32, HashMap<u32, Open>)>,
}

impl Terminals {
    fn get(&self, id: u32) -> Option<(String, Input)> {
        let g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        g.1.get(&id).map(|o| (o.exec_id.clone(), o.input.clone()))
    }
}

/// Opens a shell in the replicaSet's container; its output (bytes as text) comes over `on_output`.
#[tauri::command]
pub async fn rs_terminal_open(
    state: State<'_, AppState>,
    name: String,
    on_output: Channel<String>,
) -> Result<u32, CoreError> {
    let (docker, id) = state.rs_container(&name).await?;
    let term = docker.terminal(&id).await?;
    let mut output = term.output;
    let task = tauri::async_runtime::spawn(async move {
        while let Some(Ok(bytes)) = output.next().await {
            if on_output
                .send(String::from_utf8_lossy(&bytes).into_owned())
                .is_err()
            {
                break;
            }
        }
        let _ = on_output.send("\r\n[session ended]\r\n".into());
    });
    let mut g = state
        .terminals
        .inner
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    g.0 = g.0.wrapping_add(1);
    let tid = g.0;
    g.1.insert(
        tid,
        Open {
            exec_id: term.exec_id,
            input: Arc::new(tokio::sync::Mutex::new(term.input)),
            task,
        },
    );
    Ok(tid)
}

#[tauri::command]
pub async fn rs_terminal_input(
    state: State<'_, AppState>,
    id: u32,
    data: String,
) -> Result<(), CoreError> {
    let (_, input) = state
        .terminals
        .get(id)
        .ok_or_else(|| CoreError::InvalidInput {
            what: "terminal".into(),
            reason: "it is closed".into(),
        })?;
    let mut w = input.lock().await;
    w.write_all(data.as_bytes())
        .await
        .map_err(|e| CoreError::io("terminal", e))?;
    w.flush().await.map_err(|e| CoreError::io("terminal", e))
}

#[tauri::command]
pub async fn rs_terminal_resize(
    state: State<'_, AppState>,
    id: u32,
    cols: u16,
    rows: u16,
) -> Result<(), CoreError> {
    let Some((exec_id, _)) = state.terminals.get(id) else {
        return Ok(());
    };
    state
        .docker_adapter()
        .await?
        .resize_terminal(&exec_id, cols, rows)
        .await
}

#[tauri::command]
pub fn rs_terminal_close(state: State<'_, AppState>, id: u32) {
    if let Some(open) = state
        .terminals
        .inner
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .1
        .remove(&id)
    {
        open.task.abort();
    }
}

/// Follows the container's log: what it printed so far, then every new line, over `on_chunk`,
/// until `stream_close` with the returned id.
#[tauri::command]
pub async fn rs_logs_follow(
    state: State<'_, AppState>,
    name: String,
    on_chunk: Channel<String>,
) -> Result<u32, CoreError> {
    let (docker, id) = state.rs_container(&name).await?;
    let task = tauri::async_runtime::spawn(async move {
        let mut logs = Box::pin(docker.logs(&id, true));
        while let Some(Ok(chunk)) = logs.next().await {
            if on_chunk.send(chunk).is_err() {
                break;
            }
        }
    });
    Ok(state.streams.add(task))
}

#[tauri::command]
pub fn stream_close(state: State<'_, AppState>, id: u32) {
    state.streams.remove(id);
}
