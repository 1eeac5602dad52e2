//! User settings: typed and validated here, persisted by the app through tauri-plugin-store
//! (`settings.json` in the data folder, key `settings`), which the CLI reads as plain JSON.

use serde::{Deserialize, Serialize};
use ts_rs::TS;

use crate::{CoreError, Result};

pub const STORE_KEY: &str = "settings";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, TS, schemars::JsonSchema)]
pub enum Language {
    #[serde(rename = "en")]
    En,
    #[serde(rename = "zh-CN")]
    ZhCn,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, TS, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Theme {
    System,
    Light,
    Dark,
}

/// How containers are given GPUs. `Auto`: through the NVIDIA runtime or hook where the engine has
/// one, else through CDI (`nvidia.com/gpu=…`) where the engine reads a CDI spec for NVIDIA GPUs.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, TS, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum GpuRequests {
    #[default]
    Auto,
    /// The nvidia driver's device requests (`docker run --gpus`).
    Nvidia,
    /// CDI device requests (`docker run --device nvidia.com/gpu=…`, Docker 25+ with CDI on).
    Cdi,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, TS, schemars::JsonSchema)]
pub struct PortRange {
    pub start: u16,
    pub end: u16,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS, schemars::JsonSchema)]
#[serde(default, rename_all = "camelCase")]
pub struct Settings {
    pub language: Language,
    pub theme: Theme,
    /// How often the GPU sampler reads every GPU, in milliseconds.
    pub sample_interval_ms: u32,
    /// `unix:///path`, `tcp://host:port` or `http://host:port`; `None` means `$DOCKER_HOST` or the
    /// default socket.
    pub docker_endpoint: Option<String>,
    /// Host ports handed to containers.
    pub port_range: PortRange,
    /// An admin's choice: allow replicaSets to bind system paths (`/etc`, `/proc`, the Docker
    /// socket, …). Off by default.
    pub allow_system_binds: bool,
    /// Seconds a stop (and the stop before a new version) waits for the workload to exit after
    /// SIGTERM before it is killed.
    pub stop_timeout_s: u32,
    /// Keep the files of only this many replaced versions per replicaSet (older ones roll back
    /// as configuration only); `None` keeps all.
    pub keep_versions: Option<u32>,
    /// The host address published container ports bind to; `None`: every interface (what labs
    /// expect). `127.0.0.1` keeps them on this machine (Docker's rules bypass ufw).
    pub publish_address: Option<String>,
    /// How containers are given GPUs (see `GpuRequests`).
    pub gpu_requests: GpuRequests,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            language: Language::En,
            theme: Theme::System,
            sample_interval_ms: 1000,
            docker_endpoint: None,
            port_range: PortRange {
                start: 40000,
                end: 65535,
            },
            allow_system_binds: false,
            stop_timeout_s: 10,
            keep_versions: None,
            publish_address: None,
            gpu_requests: GpuRequests::Auto,
        }
    }
}

pub const MIN_INTERVAL_MS: u32 = 250;
pub const MAX_INTERVAL_MS: u32 = 60_000;
/// Below the engine client's per-request timeout (300 s), so a slow stop is never cut off.
pub const MAX_STOP_TIMEOUT_S: u32 = 240;

impl Settings {
    /// Checks every field; the first problem is returned as a sentence that says what is allowed.
    pub fn validate(&self) -> Result<()> {
        if !(MIN_INTERVAL_MS..=MAX_INTERVAL_MS).contains(&self.sample_interval_ms) {
            return Err(CoreError::invalid_setting(
                "sampleIntervalMs",
                format!(
                    "must be between {MIN_INTERVAL_MS} and {MAX_INTERVAL_MS} milliseconds, got {}",
                    self.sample_interval_ms
                ),
            ));
        }
        if let Some(ep) = &self.docker_endpoint {
            validate_endpoint(ep)?;
        }
        let PortRange { start, end } = self.port_range;
        if start < 1024 || start > end {
            return Err(CoreError::invalid_setting(
                "portRange",
                format!("must be START-END with 1024 ≤ START ≤ END ≤ 65535, got {start}-{end}"),
            ));
        }
        if let Some(a) = &self.publish_address {
            if a.parse::<std::net::IpAddr>().is_err() {
                return Err(CoreError::invalid_setting(
                    "publishAddress",
                    format!("must be an IP address such as 127.0.0.1 or 0.0.0.0, got \"{a}\""),
                ));
            }
        }
        if self.stop_timeout_s > MAX_STOP_TIMEOUT_S {
            return Err(CoreError::invalid_setting(
                "stopTimeoutS",
                format!(
                    "must be at most {MAX_STOP_TIMEOUT_S} seconds, got {}",
                    self.stop_timeout_s
                ),
            ));
        }
        Ok(())
    }

    /// Reads the settings the app saved; a missing file gives the defaults. An invalid saved value
    /// is an error, never silently replaced.
    pub fn load_file(path: &std::path::Path) -> Result<Settings> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Settings::default()),
            Err(e) => return Err(CoreError::io(path, e)),
        };
        let mut doc: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| CoreError::Io {
                path: path.display().to_string(),
                reason: format!("not valid JSON ({e})"),
            })?;
        match doc.get_mut(STORE_KEY).map(serde_json::Value::take) {
            None | Some(serde_json::Value::Null) => Ok(Settings::default()),
            Some(v) => Settings::from_value(v),
        }
    }

    pub fn from_value(v: serde_json::Value) -> Result<Settings> {
        let s: Settings = serde_json::from_value(v)
            .map_err(|e| CoreError::invalid_setting("settings", e.to_string()))?;
        s.validate()?;
        Ok(s)
    }
}

fn validate_endpoint(ep: &str) -> Result<()> {
    let ok = if let Some(path) = ep.strip_prefix("unix://") {
        path.starts_with('/') && path.len() > 1
    } else if let Some(rest) = ep
        .strip_prefix("tcp://")
        .or_else(|| ep.strip_prefix("http://"))
    {
        match rest.rsplit_once(':') {
            Some((host, port)) => !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0),
            None => false,
        }
    } else {
        false
    };
    if ok {
        Ok(())
    } else {
        Err(CoreError::invalid_setting(
            "dockerEndpoint",
            format!(
                "\"{ep}\" is not unix:///path/to/docker.sock, tcp://HOST:PORT or http://HOST:PORT"
            ),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        assert!(Settings::default().validate().is_ok());
    }

    #[test]
    fn bad_values_name_the_field() {
        let mut s = Settings {
            sample_interval_ms: 10,
            ..Settings::default()
        };
        let e = s
            .validate()
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("sampleIntervalMs"), "{e}");
        s.sample_interval_ms = 1000;
        s.port_range = PortRange {
            start: 50000,
            end: 40000,
        };
        assert!(s.validate().is_err());
        s.port_range = PortRange { start: 80, end: 90 };
        assert!(s.validate().is_err());
        s.port_range = PortRange {
            start: 40000,
            end: 40000,
        };
        assert!(s.validate().is_ok());
        for bad in [
            "docker.sock",
            "unix://",
            "tcp://host",
            "tcp://:1",
            "http://h:99999",
        ] {
            s.docker_endpoint = Some(bad.into());
            assert!(s.validate().is_err(), "{bad}");
        }
        for good in ["unix:///var/run/docker.sock", "tcp://127.0.0.1:2375"] {
            s.docker_endpoint = Some(good.into());
            assert!(s.validate().is_ok(), "{good}");
        }
    }

    #[test]
    fn load_file_reads_store_layout_and_refuses_bad_values() {
        let dir = tempfile::tempdir().ok();
        let Some(dir) = dir else { return };
        let p = dir.path().join("settings.json");
        assert_eq!(Settings::load_file(&p).ok(), Some(Settings::default()));
        let _ = std::fs::write(
            &p,
            r#"{"settings":{"language":"zh-CN","sampleIntervalMs":500}}"#,
        );
        let s = Settings::load_file(&p).ok();
        assert_eq!(s.as_ref().map(|s| s.language), Some(Language::ZhCn));
        assert_eq!(s.map(|s| s.sample_interval_ms), Some(500));
        let _ = std::fs::write(&p, r#"{"settings":{"language":"fr"}}"#);
        assert!(Settings::load_file(&p).is_err());
    }
}
