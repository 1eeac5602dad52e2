//! Pull and push through the engine, reading its progress stream on its own socket (bollard's
//! push info has no layer id and drops the final digest), with a correct `X-Registry-Auth`:
//! base64 **URL-safe** JSON, which is what the engine decodes (bollard's standard alphabet turns a
//! password whose encoding holds `+` or `/` into an anonymous request, without a word).
//! Dropping the stream closes the connection, which cancels the engine's pull or push.

use base64::Engine as _;
use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use http_body_util::{BodyExt, Empty};
use serde::Serialize;

use super::progress::{Direction, EngineEvent, TransferProgress};
use super::reference::ImageRef;
use crate::docker::DockerAdapter;
use crate::{CoreError, Result};

/// What the engine hands to the registry.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RegistryAuth {
    pub username: String,
    pub password: String,
    pub serveraddress: String,
}

/// The header value: URL-safe base64 of the JSON (`{}` when anonymous).
pub fn auth_header(auth: Option<&RegistryAuth>) -> String {
    let json = match auth {
        Some(a) => serde_json::to_vec(a).unwrap_or_default(),
        None => b"{}".to_vec(),
    };
    base64::engine::general_purpose::URL_SAFE.encode(json)
}

fn enc(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// `POST path` to the engine; the objects of its streamed answer, one at a time.
async fn engine_stream(
    d: &DockerAdapter,
    path: &str,
    auth: &str,
) -> Result<impl Stream<Item = Result<EngineEvent>> + Send + Unpin> {
    let conn = d.raw_connection().await?;
    let io = hyper_util::rt::TokioIo::new(conn);
    let lost = |e: hyper::Error| CoreError::Docker(format!("the engine's stream broke: {e}"));
    let (mut sender, connection) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(lost)?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    let req = hyper::Request::builder()
        .method("POST")
        .uri(path)
        .header("host", "docker")
        .header("x-registry-auth", auth)
        .body(Empty::<Bytes>::new())
        .map_err(|e| CoreError::Docker(e.to_string()))?;
    let resp = sender.send_request(req).await.map_err(lost)?;
    let status = resp.status();
    if !status.is_success() {
        let body = resp
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        let msg = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| {
                v.get("message")
                    .and_then(|m| m.as_str())
                    .map(str::to_string)
            })
            .unwrap_or_else(|| String::from_utf8_lossy(&body).trim().to_string());
        return Err(match status.as_u16() {
            404 => CoreError::ImageMissing(msg),
            _ => CoreError::Docker(msg),
        });
    }
    let body = resp.into_body().into_data_stream();
    Ok(Box::pin(futures_util::stream::unfold(
        (body, Vec::<u8>::new(), false),
        |(mut body, mut buf, ended)| async move {
            loop {
                if let Some(i) = buf.iter().position(|b| *b == b'\n') {
                    let line: Vec<u8> = buf.drain(..=i).collect();
                    let text = String::from_utf8_lossy(&line);
                    let text = text.trim();
                    if text.is_empty() {
                        continue;
                    }
                    let ev = serde_json::from_str::<EngineEvent>(text).map_err(|e| {
                        CoreError::Docker(format!("the engine sent what is not JSON ({e}): {text}"))
                    });
                    return Some((ev, (body, buf, ended)));
                }
                if ended {
                    if buf.iter().all(u8::is_ascii_whitespace) {
                        return None;
                    }
                    buf.push(b'\n');
                    continue;
                }
                match body.next().await {
                    Some(Ok(b)) => buf.extend_from_slice(&b),
                    Some(Err(e)) => {
                        return Some((
                            Err(CoreError::Docker(format!("the engine's stream broke: {e}"))),
                            (body, Vec::new(), true),
                        ))
                    }
                    None => {
                        if buf.is_empty() {
                            return None;
                        }
                        // The last object may lack its newline.
                        buf.push(b'\n');
                        return Some((Ok(EngineEvent::default()), (body, buf, true)));
                    }
                }
            }
        },
    )))
}

/// Runs a transfer to its end, calling `on_progress` after every event (the caller throttles what
/// it forwards). Returns the final progress (with the digest where the engine said it). An
/// event with an error fails it, even though the HTTP call succeeded.
pub async fn run(
    d: &DockerAdapter,
    direction: Direction,
    image: &ImageRef,
    auth: Option<&RegistryAuth>,
    mut on_progress: impl FnMut(&TransferProgress) + Send,
) -> Result<TransferProgress> {
    let header = auth_header(auth);
    let path = match direction {
        Direction::Pull => {
            let mut p = format!("/images/create?fromImage={}", enc(&image.name()));
            p.push_str(&format!("&tag={}", enc(&image.selector())));
            p
        }
        Direction::Push => format!(
            "/images/{}/push?tag={}",
            enc(&image.name()),
            enc(image.tag_or_latest())
        ),
    };
    // The containerd image store unpacks each layer as it arrives: no extract phase follows.
    let single_phase =
        direction == Direction::Pull && d.info().await.is_ok_and(|i| i.containerd_store);
    let mut stream = engine_stream(d, &path, &header).await?;
    let mut p = TransferProgress::new(direction).single_phase(single_phase);
    on_progress(&p);
    while let Some(ev) = stream.next().await {
        let ev = ev?;
        p.apply(&ev)
            .map_err(|msg| transfer_error(direction, image, &msg))?;
        on_progress(&p);
    }
    p.finish();
    on_progress(&p);
    Ok(p)
}

/// An engine's or registry's refusal, as a sentence with what to do.
pub fn transfer_error(direction: Direction, image: &ImageRef, msg: &str) -> CoreError {
    let what = match direction {
        Direction::Pull => "pull",
        Direction::Push => "push",
    };
    let lower = msg.to_lowercase();
    let hint = if lower.contains("unauthorized")
        || lower.contains("authentication required")
        || lower.contains("denied")
        || lower.contains("no basic auth credentials")
    {
        format!(
            " The registry {} refused the credentials GPU Deck has for it: add it with a user that may {what} there (`gpudeck registry add`).",
            image.registry()
        )
    } else if lower.contains("no space left") {
        " The disk is full: free space (`gpudeck image prune`, remove unused images) and try again."
            .to_string()
    } else if lower.contains("not found") || lower.contains("manifest unknown") {
        format!(
            " Check the name and tag (`gpudeck registry tags` lists what {} has).",
            image.registry()
        )
    } else if lower.contains("connection refused")
        || lower.contains("no such host")
        || lower.contains("timeout")
    {
        format!(
            " Check that {} is reachable from this machine.",
            image.registry()
        )
    } else {
        String::new()
    };
    CoreError::Transfer {
        action: what.into(),
        image: image.to_string(),
        reason: msg.to_string(),
        hint,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_auth_header_is_url_safe_base64_the_engine_decodes() {
        // A password chosen so that the standard alphabet would hold '+' and '/'.
        let a = RegistryAuth {
            username: "lab".into(),
            password: "?>>?>>~~~".into(),
            serveraddress: "127.0.0.1:5000".into(),
        };
        let std = base64::engine::general_purpose::STANDARD.encode(serde_json::to_vec(&a).unwrap());
        assert!(std.contains('+') || std.contains('/'), "{std}");
        let h = auth_header(Some(&a));
        assert!(!h.contains('+') && !h.contains('/'), "{h}");
        let back = base64::engine::general_purpose::URL_SAFE
            .decode(&h)
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&back).unwrap();
        assert_eq!(v["password"], "?>>?>>~~~");
        assert_eq!(
            auth_header(None),
            base64::engine::general_purpose::URL_SAFE.encode("{}")
        );
    }
}
