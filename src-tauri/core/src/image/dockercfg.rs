//! The caller's own Docker logins, for registries they already logged into with `docker login`:
//! `~/.docker/config.json` as Docker reads it — a `credHelpers` entry for the host, else the
//! `credsStore`, else the `auths` entry (`auth`: base64 of `user:password`).
//!
//! gpudeckd runs as root, so it reads the file only when it is a plain file the caller owns (opened
//! without following a symlink: a member's link to someone else's config gets nothing), and runs a
//! credential helper as the caller (`setpriv` to their uid, gid and groups, their HOME, their
//! session bus), never as root.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Config {
    #[serde(default)]
    auths: HashMap<String, AuthEntry>,
    #[serde(default)]
    cred_helpers: HashMap<String, String>,
    #[serde(default)]
    creds_store: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct AuthEntry {
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
}

#[derive(Deserialize)]
struct HelperReply {
    #[serde(rename = "Username")]
    username: String,
    #[serde(rename = "Secret")]
    secret: String,
}

/// Who asks: their uid, gid and home.
pub struct Owner<'a> {
    pub uid: u32,
    pub gid: u32,
    pub home: &'a str,
}

/// `https://host/v1/` and `host` name the same registry.
fn host_key(k: &str) -> &str {
    let k = k
        .strip_prefix("https://")
        .or_else(|| k.strip_prefix("http://"))
        .unwrap_or(k);
    k.split('/').next().unwrap_or(k)
}

fn same_registry(key: &str, host: &str) -> bool {
    let k = host_key(key);
    k == host || (host == "docker.io" && (k == "index.docker.io" || k == "registry-1.docker.io"))
}

/// The caller's config, when it is a plain file they own.
fn read_config(o: &Owner<'_>) -> Option<Config> {
    let path = Path::new(o.home).join(".docker/config.json");
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(&path)
        .ok()?;
    let m = f.metadata().ok()?;
    if !m.is_file() || m.uid() != o.uid || m.len() > 1 << 20 {
        tracing::warn!(
            "ignoring {}: not a plain file of uid {} (or too large)",
            path.display(),
            o.uid
        );
        return None;
    }
    let mut s = String::new();
    f.read_to_string(&mut s).ok()?;
    serde_json::from_str(&s).ok()
}

/// `docker-credential-NAME` on the service's PATH (NAME: letters, digits, `-_.` only).
fn helper_path(name: &str) -> Option<PathBuf> {
    if name.is_empty()
        || !name
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
    {
        return None;
    }
    let file = format!("docker-credential-{name}");
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .chain(["/usr/local/bin".into(), "/usr/bin".into(), "/bin".into()])
        .map(|d| d.join(&file))
        .find(|p| p.is_file())
}

/// Runs `docker-credential-NAME get` as the caller, with `host` on stdin (10 s at most).
fn run_helper(o: &Owner<'_>, name: &str, host: &str) -> Option<(String, String)> {
    let helper = helper_path(name)?;
    let mut child = Command::new("setpriv")
        .arg(format!("--reuid={}", o.uid))
        .arg(format!("--regid={}", o.gid))
        .arg("--init-groups")
        .arg("--")
        .arg(&helper)
        .arg("get")
        .env_clear()
        .env("HOME", o.home)
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .env("XDG_RUNTIME_DIR", format!("/run/user/{}", o.uid))
        .env(
            "DBUS_SESSION_BUS_ADDRESS",
            format!("unix:path=/run/user/{}/bus", o.uid),
        )
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    child.stdin.take()?.write_all(host.as_bytes()).ok()?;
    let t0 = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if t0.elapsed() < Duration::from_secs(10) => {
                std::thread::sleep(Duration::from_millis(20));
            }
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                tracing::warn!("docker-credential-{name} did not answer in 10 s");
                return None;
            }
        }
    }
    let mut out = String::new();
    child.stdout.take()?.read_to_string(&mut out).ok()?;
    let r: HelperReply = serde_json::from_str(out.trim()).ok()?;
    Some((r.username, r.secret))
}

fn from_entry(e: &AuthEntry) -> Option<(String, String)> {
    if let Some(a) = e.auth.as_deref().filter(|a| !a.is_empty()) {
        let raw = base64::engine::general_purpose::STANDARD.decode(a).ok()?;
        let s = String::from_utf8(raw).ok()?;
        let (u, p) = s.split_once(':')?;
        return Some((u.to_string(), p.to_string()));
    }
    Some((e.username.clone()?, e.password.clone()?))
}

/// The caller's login for `host`, as `docker` would use it; None when they have none.
pub fn login_for(o: &Owner<'_>, host: &str) -> Option<(String, String)> {
    let cfg = read_config(o)?;
    if let Some((_, helper)) = cfg
        .cred_helpers
        .iter()
        .find(|(k, _)| same_registry(k, host))
    {
        return run_helper(o, helper, host);
    }
    if let Some(store) = cfg.creds_store.as_deref().filter(|s| !s.is_empty()) {
        if let Some(l) = run_helper(o, store, host) {
            return Some(l);
        }
    }
    cfg.auths
        .iter()
        .find(|(k, _)| same_registry(k, host))
        .and_then(|(_, e)| from_entry(e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_and_hosts() {
        assert!(same_registry("https://index.docker.io/v1/", "docker.io"));
        assert!(same_registry("127.0.0.1:5000", "127.0.0.1:5000"));
        assert!(same_registry("http://127.0.0.1:5000", "127.0.0.1:5000"));
        assert!(!same_registry("127.0.0.1:5001", "127.0.0.1:5000"));
        let e = AuthEntry {
            auth: Some(base64::engine::general_purpose::STANDARD.encode("u:p:with:colons")),
            ..Default::default()
        };
        assert_eq!(from_entry(&e), Some(("u".into(), "p:with:colons".into())));
        assert!(helper_path("../../bin/sh").is_none());
        assert!(helper_path("").is_none());
    }

    #[test]
    fn a_config_not_owned_by_the_caller_or_a_link_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join(".docker")).unwrap();
        let cfg = r#"{"auths":{"r:1":{"auth":"dTpw"}}}"#;
        std::fs::write(dir.path().join("real.json"), cfg).unwrap();
        std::os::unix::fs::symlink(
            dir.path().join("real.json"),
            dir.path().join(".docker/config.json"),
        )
        .unwrap();
        let me = nix_uid();
        let o = Owner {
            uid: me,
            gid: 0,
            home: dir.path().to_str().unwrap(),
        };
        assert_eq!(login_for(&o, "r:1"), None, "a symlink is not followed");
        std::fs::remove_file(dir.path().join(".docker/config.json")).unwrap();
        std::fs::write(dir.path().join(".docker/config.json"), cfg).unwrap();
        assert_eq!(login_for(&o, "r:1"), Some(("u".into(), "p".into())));
        let other = Owner { uid: me + 1, ..o };
        assert_eq!(login_for(&other, "r:1"), None, "someone else's file");
    }

    fn nix_uid() -> u32 {
        std::fs::metadata("/proc/self")
            .map(|m| m.uid())
            .unwrap_or(0)
    }
}
