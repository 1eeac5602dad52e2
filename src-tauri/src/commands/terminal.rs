//! Interactive terminals (xterm.js in the UI) over the service's WebSocket, and followed logs,
//! streamed to the UI over channels.

use std::collections::HashMap;

use futures_util::{SinkExt, StreamExt};
use gpudeck_core::CoreError;
use tauri::ipc::Channel;
use tauri::State;
use tokio_tungstenite::tungstenite::Message;

use crate::AppState;

/// Where keystrokes and resizes go: a queue drained in order into the WebSocket by one task (the
/// UI sends each key as its own command; concurrent writes could reorder them).
type Sink = tokio::sync::mpsc::UnboundedSender<Message>;

/// An open terminal: where to type, and the tasks reading its output and writing its input.
struct Open {
    input: Sink,
    task: tauri::async_runtime::JoinHandle<()>,
    writer: tauri::async_runtime::JoinHandle<()>,
}

/// Open terminals by id.
#[derive(Default)]
pub struct Terminals {
    inner: std::sync::Mutex<(u32, HashMap<u32, Open>)>,
}

impl Terminals {
    fn get(&self, id: u32) -> Option<Sink> {
        let g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        g.1.get(&id).map(|o| o.input.clone())
    }
}

fn closed() -> CoreError {
    CoreError::InvalidInput {
        what: "terminal".into(),
        reason: "it is closed".into(),
    }
}

/// Opens a shell in the replicaSet's container; its output (bytes as text) comes over `on_output`.
#[tauri::command]
pub async fn rs_terminal_open(
    state: State<'_, AppState>,
    name: String,
    on_output: Channel<String>,
) -> Result<u32, CoreError> {
    let ws = state.client.rs_terminal(&name).await?;
    let (mut sink, mut output) = ws.split();
    let (input, mut queue) = tokio::sync::mpsc::unbounded_channel::<Message>();
    let writer = tauri::async_runtime::spawn(async move {
        while let Some(m) = queue.recv().await {
            if sink.send(m).await.is_err() {
                break;
            }
        }
        let _ = sink.close().await;
    });
    let task = tauri::async_runtime::spawn(async move {
        while let Some(Ok(msg)) = output.next().await {
            let text = match msg {
                Message::Binary(b) => String::from_utf8_lossy(&b).into_owned(),
                Message::Text(t) => t.to_string(),
                Message::Close(_) => break,
                _ => continue,
            };
            if on_output.send(text).is_err() {
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
            input,
            task,
            writer,
        },
    );
    Ok(tid)
}

/// Synchronous on purpose: commands that are not async run one after the other, in the order
/// the keys were typed.
#[tauri::command]
pub fn rs_terminal_input(
    state: State<'_, AppState>,
    id: u32,
    data: String,
) -> Result<(), CoreError> {
    let sink = state.terminals.get(id).ok_or_else(closed)?;
    sink.send(Message::Binary(data.into_bytes().into()))
        .map_err(|_| closed())
}

#[tauri::command]
pub fn rs_terminal_resize(state: State<'_, AppState>, id: u32, cols: u16, rows: u16) {
    if let Some(sink) = state.terminals.get(id) {
        let msg = serde_json::json!({ "resize": [cols, rows] }).to_string();
        let _ = sink.send(Message::Text(msg.into()));
    }
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
        // Dropping the queue ends the writer, which closes the WebSocket (and the shell).
        drop(open.input);
        drop(open.writer);
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
    let mut logs = state.client.rs_logs(&name, true).await?;
    let task = tauri::async_runtime::spawn(async move {
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
