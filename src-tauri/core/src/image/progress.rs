//! What the engine's pull and push streams say, folded into per-layer and overall progress. Pure
//! rules, fed one JSON object of the stream at a time.
//!
//! Traps it handles: `current` may pass `total`; "Already exists", "Layer already exists" and
//! "Mounted from …" mean a layer is done; a pull goes through two phases per layer (download, then
//! extract) so each counts half; the containerd image store sends fewer, different events; an
//! item carrying an error is a failure even though the HTTP call succeeded; a push's digest comes
//! in `aux` (and in a status line), a pull's in "Digest: …".

use serde::{Deserialize, Serialize};

/// One object of the engine's stream.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EngineEvent {
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub progress_detail: Option<Detail>,
    #[serde(default)]
    pub error: Option<String>,
    #[serde(default)]
    pub error_detail: Option<ErrorDetail>,
    #[serde(default)]
    pub aux: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct Detail {
    #[serde(default)]
    pub current: Option<i64>,
    #[serde(default)]
    pub total: Option<i64>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct ErrorDetail {
    #[serde(default)]
    pub message: Option<String>,
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema, ts_rs::TS,
)]
#[serde(rename_all = "camelCase")]
pub enum Direction {
    Pull,
    Push,
}

/// One layer's state.
#[derive(
    Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema, ts_rs::TS,
)]
#[serde(rename_all = "camelCase")]
pub struct LayerProgress {
    pub id: String,
    /// The engine's words ("Downloading", "Pushed", "Already exists", …).
    pub status: String,
    /// Bytes done of the phase under way (never more than `total`).
    #[ts(type = "number")]
    pub current: u64,
    #[ts(type = "number | null")]
    pub total: Option<u64>,
    /// A pull's second phase (extracting) has begun.
    pub extracting: bool,
    pub done: bool,
}

/// A whole transfer: its layers, and the sum (`current` of `total` bytes, a pull's two phases
/// counted half each) for the overall bar.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema, ts_rs::TS)]
#[serde(rename_all = "camelCase")]
pub struct TransferProgress {
    pub direction: Direction,
    pub layers: Vec<LayerProgress>,
    #[ts(type = "number")]
    pub current: u64,
    #[ts(type = "number")]
    pub total: u64,
    /// The last line that was not about one layer ("Pulling from …", "Status: …").
    pub message: String,
    pub digest: Option<String>,
    /// A pull on the containerd image store: each layer is unpacked as it arrives, so
    /// "Download complete" is its last word and the download counts in full.
    #[serde(skip)]
    #[ts(skip)]
    #[schemars(skip)]
    pub single_phase: bool,
}

const LAYER_STATUSES: &[&str] = &[
    "Pulling fs layer",
    "Waiting",
    "Downloading",
    "Verifying Checksum",
    "Download complete",
    "Extracting",
    "Pull complete",
    "Already exists",
    "Preparing",
    "Pushing",
    "Pushed",
    "Layer already exists",
    "Retrying",
];

fn is_layer_status(s: &str) -> bool {
    LAYER_STATUSES.iter().any(|k| s.starts_with(k)) || s.starts_with("Mounted from")
}

fn find_digest(s: &str) -> Option<String> {
    let i = s.find("sha256:")?;
    let d: String = s[i..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == ':')
        .collect();
    (d.len() == 71).then_some(d)
}

impl TransferProgress {
    pub fn new(direction: Direction) -> TransferProgress {
        TransferProgress {
            direction,
            layers: Vec::new(),
            current: 0,
            total: 0,
            message: String::new(),
            digest: None,
            single_phase: false,
        }
    }

    /// For a pull on the containerd image store (no extract phase follows the download).
    pub fn single_phase(mut self, yes: bool) -> Self {
        self.single_phase = yes;
        self
    }

    /// The stream ended with no error and the engine said the image is there (a digest, or its
    /// closing "Status: …"): every layer is done, whichever words its last event had (the
    /// containerd image store sends no "Pull complete", nothing at all for blobs it already has).
    pub fn finish(&mut self) {
        if self.digest.is_none() && !self.message.starts_with("Status:") {
            return;
        }
        for l in &mut self.layers {
            l.done = true;
            l.current = l.total.unwrap_or(l.current);
        }
        self.sum();
    }

    /// Folds one event in. An event that carries an error is returned as that error's words.
    pub fn apply(&mut self, ev: &EngineEvent) -> Result<(), String> {
        if let Some(msg) = ev
            .error_detail
            .as_ref()
            .and_then(|d| d.message.clone())
            .or_else(|| ev.error.clone())
            .filter(|m| !m.is_empty())
        {
            return Err(msg);
        }
        if let Some(d) = ev
            .aux
            .as_ref()
            .and_then(|a| a.get("Digest"))
            .and_then(|d| d.as_str())
        {
            self.digest = Some(d.to_string());
        }
        let status = ev.status.clone().unwrap_or_default();
        match ev.id.as_deref().filter(|_| is_layer_status(&status)) {
            Some(id) => self.layer(id, &status, ev.progress_detail.as_ref()),
            None if !status.is_empty() => {
                if status.starts_with("Digest:") || status.contains(": digest: ") {
                    if let Some(d) = find_digest(&status) {
                        self.digest = Some(d);
                    }
                }
                self.message = match ev.id.as_deref() {
                    Some(id) if !status.contains(id) => format!("{id}: {status}"),
                    _ => status,
                };
            }
            None => {}
        }
        self.sum();
        Ok(())
    }

    fn layer(&mut self, id: &str, status: &str, detail: Option<&Detail>) {
        let i = match self.layers.iter().position(|l| l.id == id) {
            Some(i) => i,
            None => {
                self.layers.push(LayerProgress {
                    id: id.to_string(),
                    ..Default::default()
                });
                self.layers.len() - 1
            }
        };
        let l = &mut self.layers[i];
        l.status = status.to_string();
        let total = detail.and_then(|d| d.total).filter(|t| *t > 0);
        let current = detail.and_then(|d| d.current).filter(|c| *c >= 0);
        if status.starts_with("Extracting") && !l.extracting {
            l.extracting = true;
            l.current = 0;
        }
        if let Some(t) = total {
            l.total = Some(t as u64);
        }
        if let Some(c) = current {
            l.current = match l.total {
                Some(t) => (c as u64).min(t),
                None => c as u64,
            };
        }
        let done_words = [
            "Pull complete",
            "Already exists",
            "Pushed",
            "Layer already exists",
        ];
        if done_words.iter().any(|w| status.starts_with(w)) || status.starts_with("Mounted from") {
            l.done = true;
            l.current = l.total.unwrap_or(0);
        } else if status.starts_with("Download complete") && !l.extracting {
            l.current = l.total.unwrap_or(l.current);
            l.done = self.single_phase;
        }
    }

    fn sum(&mut self) {
        let (mut cur, mut tot) = (0u64, 0u64);
        for l in &self.layers {
            let t = l.total.unwrap_or(0);
            tot += t;
            cur += match (self.direction, l.done) {
                (_, true) => t,
                (Direction::Push, false) => l.current,
                (Direction::Pull, false) if self.single_phase => l.current,
                (Direction::Pull, false) if l.extracting => t / 2 + l.current / 2,
                (Direction::Pull, false) => l.current / 2,
            };
        }
        self.current = cur.min(tot);
        self.total = tot;
    }

    /// Layers done, of all seen.
    pub fn layers_done(&self) -> (usize, usize) {
        (
            self.layers.iter().filter(|l| l.done).count(),
            self.layers.len(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(p: &mut TransferProgress, lines: &str) -> Result<(), String> {
        for l in lines.lines().filter(|l| !l.trim().is_empty()) {
            let ev: EngineEvent = serde_json::from_str(l).unwrap();
            p.apply(&ev)?;
        }
        Ok(())
    }

    #[test]
    fn a_pull_counts_download_and_extract_and_finds_the_digest() {
        let mut p = TransferProgress::new(Direction::Pull);
        feed(
            &mut p,
            r#"
{"status":"Pulling from team/img","id":"v1"}
{"status":"Pulling fs layer","progressDetail":{},"id":"aaa"}
{"status":"Already exists","progressDetail":{},"id":"bbb"}
{"status":"Downloading","progressDetail":{"current":50,"total":100},"progress":"[==>  ]","id":"aaa"}
"#,
        )
        .unwrap();
        assert_eq!((p.current, p.total), (25, 100));
        assert_eq!(p.layers_done(), (1, 2));
        assert_eq!(p.message, "v1: Pulling from team/img");
        feed(
            &mut p,
            r#"
{"status":"Downloading","progressDetail":{"current":130,"total":100},"id":"aaa"}
{"status":"Download complete","progressDetail":{},"id":"aaa"}
{"status":"Extracting","progressDetail":{"current":40,"total":100},"id":"aaa"}
"#,
        )
        .unwrap();
        assert_eq!(p.layers[0].current, 40);
        assert_eq!((p.current, p.total), (70, 100));
        feed(
            &mut p,
            r#"
{"status":"Pull complete","progressDetail":{},"id":"aaa"}
{"status":"Digest: sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"}
{"status":"Status: Downloaded newer image for localhost:5000/team/img:v1"}
"#,
        )
        .unwrap();
        assert_eq!((p.current, p.total), (100, 100));
        assert_eq!(p.layers_done(), (2, 2));
        assert_eq!(
            p.digest.as_deref(),
            Some("sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef")
        );
    }

    #[test]
    fn a_push_reads_the_digest_from_aux_and_counts_existing_layers_done() {
        let mut p = TransferProgress::new(Direction::Push);
        feed(
            &mut p,
            r#"
{"status":"The push refers to repository [localhost:5000/team/img]"}
{"status":"Preparing","progressDetail":{},"id":"l1"}
{"status":"Preparing","progressDetail":{},"id":"l2"}
{"status":"Preparing","progressDetail":{},"id":"l3"}
{"status":"Pushing","progressDetail":{"current":512,"total":2048},"id":"l1"}
{"status":"Layer already exists","progressDetail":{},"id":"l2"}
{"status":"Mounted from team/base","progressDetail":{},"id":"l3"}
"#,
        )
        .unwrap();
        assert_eq!((p.current, p.total), (512, 2048));
        assert_eq!(p.layers_done(), (2, 3));
        feed(&mut p, r#"
{"status":"Pushed","progressDetail":{},"id":"l1"}
{"status":"v1: digest: sha256:1111111111111111111111111111111111111111111111111111111111111111 size: 739"}
{"progressDetail":{},"aux":{"Tag":"v1","Digest":"sha256:2222222222222222222222222222222222222222222222222222222222222222","Size":739}}
"#).unwrap();
        assert_eq!(p.layers_done(), (3, 3));
        assert_eq!((p.current, p.total), (2048, 2048));
        // aux is what the engine says last; it wins.
        assert_eq!(
            p.digest.as_deref(),
            Some("sha256:2222222222222222222222222222222222222222222222222222222222222222")
        );
    }

    #[test]
    fn an_item_with_an_error_is_a_failure() {
        let mut p = TransferProgress::new(Direction::Pull);
        let e = feed(&mut p, r#"
{"status":"Pulling fs layer","progressDetail":{},"id":"aaa"}
{"errorDetail":{"message":"write /var/lib/docker/tmp/x: no space left on device"},"error":"write /var/lib/docker/tmp/x: no space left on device"}
"#).unwrap_err();
        assert!(e.contains("no space left"), "{e}");
        let e = feed(
            &mut TransferProgress::new(Direction::Push),
            r#"{"error":"denied: requested access to the resource is denied"}"#,
        )
        .unwrap_err();
        assert!(e.contains("denied"));
    }

    /// The containerd image store's pull stream, as Docker 26 sends it (captured from one):
    /// no extract phase, no "Pull complete"; and nothing per layer for blobs it already has.
    #[test]
    fn containerd_store_pulls_finish_on_download_complete() {
        let digest = "sha256:8f40739b3d9914a11418827a36736b51acde7c9b8cd9ac13ddd2b5dace6df9b0";
        let mut p = TransferProgress::new(Direction::Pull).single_phase(true);
        feed(
            &mut p,
            r#"
{"status":"Pulling from x/bb","id":"1"}
{"status":"Pulling fs layer","progressDetail":{},"id":"47483f229ac1"}
{"status":"Pulling fs layer","progressDetail":{},"id":"aaaaaaaaaaaa"}
{"status":"Downloading","progressDetail":{"current":500,"total":1000},"id":"47483f229ac1"}
{"status":"Downloading","progressDetail":{"current":100,"total":3000},"id":"aaaaaaaaaaaa"}
"#,
        )
        .unwrap();
        assert_eq!((p.current, p.total), (600, 4000), "downloads count in full");
        feed(
            &mut p,
            r#"
{"status":"Download complete","progressDetail":{"hidecounts":true},"id":"47483f229ac1"}
"#,
        )
        .unwrap();
        assert_eq!(p.layers_done(), (1, 2));
        assert_eq!(p.current, 1100);
        feed(
            &mut p,
            &format!(
                r#"
{{"status":"Download complete","progressDetail":{{"hidecounts":true}},"id":"aaaaaaaaaaaa"}}
{{"status":"Digest: {digest}"}}
{{"status":"Status: Downloaded newer image for 127.0.0.1:5055/x/bb:1"}}
"#
            ),
        )
        .unwrap();
        p.finish();
        assert_eq!(p.layers_done(), (2, 2));
        assert_eq!((p.current, p.total), (4000, 4000));
        assert_eq!(p.digest.as_deref(), Some(digest));

        // Blobs still in the content store (an image removed and pulled again): no layer events.
        let mut p = TransferProgress::new(Direction::Pull).single_phase(true);
        feed(
            &mut p,
            &format!(
                r#"
{{"status":"Pulling from x/bb","id":"1"}}
{{"status":"Digest: {digest}"}}
{{"status":"Status: Downloaded newer image for 127.0.0.1:5055/x/bb:1"}}
"#
            ),
        )
        .unwrap();
        p.finish();
        assert_eq!(p.layers_done(), (0, 0));
        assert_eq!(p.digest.as_deref(), Some(digest));
    }

    /// The graph drivers' two phases: a finished download is half the layer, and only the end
    /// of a stream the engine closed with its status finishes the layers still open.
    #[test]
    fn finish_needs_the_engines_closing_words() {
        let mut p = TransferProgress::new(Direction::Pull);
        feed(
            &mut p,
            r#"
{"status":"Pulling fs layer","progressDetail":{},"id":"aaa"}
{"status":"Downloading","progressDetail":{"current":1000,"total":1000},"id":"aaa"}
{"status":"Download complete","progressDetail":{},"id":"aaa"}
"#,
        )
        .unwrap();
        assert_eq!((p.current, p.layers_done()), (500, (0, 1)));
        p.finish();
        assert_eq!(
            (p.current, p.layers_done()),
            (500, (0, 1)),
            "no closing status yet"
        );
        feed(
            &mut p,
            r#"{"status":"Status: Image is up to date for x/bb:1"}"#,
        )
        .unwrap();
        p.finish();
        assert_eq!((p.current, p.layers_done()), (1000, (1, 1)));
    }
}
