//! ReplicaSet names, specs and their rules: pure functions, checked before anything is created.

use serde::{Deserialize, Serialize};
use ts_rs::TS;

use crate::{CoreError, Result};

pub const LABEL_RS: &str = "gpudeck.replicaset";
pub const LABEL_VERSION: &str = "gpudeck.version";
/// The Linux user who owns a replicaSet's containers.
pub const LABEL_OWNER: &str = "gpudeck.owner";
pub const MAX_NAME: usize = 40;

/// Checks a replicaSet (or volume) name: 1–40 characters, lowercase letters, digits, `_` and `.`,
/// starting with a letter or digit. No `-`: versions are `<name>-<N>`, so `foo-2` is never a name.
pub fn validate_name(kind: &str, name: &str) -> Result<()> {
    let ok_first = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    let ok_rest = name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '.');
    if name.is_empty() || name.len() > MAX_NAME || !ok_first || !ok_rest {
        return Err(CoreError::InvalidInput {
            what: format!("{kind} name"),
            reason: format!(
                "\"{name}\" is not allowed: use 1 to {MAX_NAME} lowercase letters, digits, \"_\" or \".\", starting with a letter or digit (no \"-\": versions are named <name>-1, <name>-2, …)"
            ),
        });
    }
    Ok(())
}

/// A bind: a host path or a volume name, mounted at `dest` in the container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Bind {
    pub src: String,
    pub dest: String,
    #[serde(default)]
    pub read_only: bool,
}

impl Bind {
    /// `SRC:DEST` or `SRC:DEST:ro`.
    pub fn parse(s: &str) -> Result<Bind> {
        let bad = |reason: &str| {
            CoreError::InvalidInput {
            what: "bind".into(),
            reason: format!("\"{s}\": {reason} (write SRC:DEST or SRC:DEST:ro, SRC a host path or a volume name)"),
        }
        };
        let parts: Vec<&str> = s.split(':').collect();
        let (src, dest, ro) = match parts.as_slice() {
            [src, dest] => (*src, *dest, false),
            [src, dest, "ro"] => (*src, *dest, true),
            [_, _, opt] => return Err(bad(&format!("unknown option \"{opt}\""))),
            _ => return Err(bad("not two parts")),
        };
        if src.is_empty() || dest.is_empty() {
            return Err(bad("empty part"));
        }
        Ok(Bind {
            src: src.into(),
            dest: dest.into(),
            read_only: ro,
        })
    }

    pub fn is_host_path(&self) -> bool {
        self.src.starts_with('/')
    }

    pub fn to_docker(&self) -> String {
        if self.read_only {
            format!("{}:{}:ro", self.src, self.dest)
        } else {
            format!("{}:{}", self.src, self.dest)
        }
    }
}

/// Host paths no replicaSet may bind unless an admin allows it: the system, the kernel's views,
/// devices and the Docker socket (which is root on the host).
const SENSITIVE_EXACT: &[&str] = &["/", "/bin", "/sbin", "/lib", "/lib64", "/var"];
/// Whole trees: `/var/run` and `/run` hold the Docker socket, `/var/lib/docker` Docker's data,
/// `/var/lib/gpudeck` GPU Deck's.
const SENSITIVE_TREES: &[&str] = &[
    "/etc",
    "/proc",
    "/sys",
    "/dev",
    "/boot",
    "/root",
    "/usr",
    "/run",
    "/var/run",
    "/var/lib/docker",
    "/var/lib/containerd",
    "/var/lib/gpudeck",
];

pub fn validate_bind(b: &Bind, allow_sensitive: bool) -> Result<()> {
    let refuse = |reason: String| {
        Err(CoreError::InvalidInput {
            what: "bind".into(),
            reason,
        })
    };
    if !b.dest.starts_with('/') {
        return refuse(format!(
            "the container path \"{}\" must be absolute",
            b.dest
        ));
    }
    let dest = b.dest.trim_end_matches('/');
    if dest.is_empty() || dest.split('/').any(|p| p == "..") {
        return refuse(format!(
            "binding onto \"{}\" in the container is not allowed",
            b.dest
        ));
    }
    if b.is_host_path() {
        if b.src.split('/').any(|p| p == "..") {
            return refuse(format!(
                "the host path \"{}\" may not contain \"..\"",
                b.src
            ));
        }
        let src = if b.src == "/" {
            "/"
        } else {
            b.src.trim_end_matches('/')
        };
        let under = |t: &str| src == t || src.starts_with(&format!("{t}/"));
        if !allow_sensitive
            && (SENSITIVE_EXACT.contains(&src) || SENSITIVE_TREES.iter().any(|t| under(t)))
        {
            return refuse(format!("the host path \"{}\" is a system path; an admin must allow system binds in Settings", b.src));
        }
    } else {
        validate_name(
            "volume",
            b.src.rsplit_once('-').map(|(n, _)| n).unwrap_or(&b.src),
        )?;
    }
    Ok(())
}

/// Everything needed to create one version's container.
#[derive(
    Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, TS, schemars::JsonSchema,
)]
#[serde(rename_all = "camelCase")]
pub struct RsSpec {
    pub image: String,
    #[serde(default)]
    pub command: Vec<String>,
    /// `KEY=VALUE`.
    #[serde(default)]
    pub env: Vec<String>,
    #[serde(default)]
    pub binds: Vec<Bind>,
    /// Container ports; each gets a host port.
    #[serde(default)]
    pub ports: Vec<u16>,
    #[serde(default)]
    pub gpus: u32,
    /// Who owns it (a Linux user name), set by the service from the caller's identity, never
    /// taken from a request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub owner: Option<String>,
    /// The user its processes run as (a member's own); `None`: the image's user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub run_as: Option<RunAs>,
    /// Names of `env` entries that are secrets (a catalog entry's `secret` parameters): the
    /// container gets them, but every answer of the service shows them as `••••`, to the owner
    /// too (info, history, the REST API).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub secret_env: Option<Vec<String>>,
    /// The most processes its container may hold at once (set by the service for members'
    /// containers, so that a fork bomb stays inside them); `None`: the engine's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional, type = "number")]
    pub pids_limit: Option<i64>,
    /// Memory its container may use at most (the owner's policy, for members).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional, type = "number")]
    pub memory_bytes: Option<u64>,
    /// CPUs its container may use at most, in thousandths (the owner's policy, for members).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub cpus_milli: Option<u32>,
}

impl RsSpec {
    /// The spec as shown: secret env values masked.
    pub fn mask_secrets(&mut self) {
        let Some(names) = self.secret_env.as_ref().filter(|n| !n.is_empty()) else {
            return;
        };
        for e in &mut self.env {
            if let Some((k, _)) = e.split_once('=') {
                if names.iter().any(|n| n == k) {
                    *e = format!("{k}=••••");
                }
            }
        }
    }
}

/// A host user a container runs as: `uid:gid` plus its supplementary groups, with
/// `no-new-privileges` and every capability dropped.
#[derive(
    Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, TS, schemars::JsonSchema,
)]
#[serde(rename_all = "camelCase")]
pub struct RunAs {
    pub uid: u32,
    pub gid: u32,
    #[serde(default)]
    pub groups: Vec<u32>,
}

impl RunAs {
    /// Docker's `User`: `uid:gid`.
    pub fn user(&self) -> String {
        format!("{}:{}", self.uid, self.gid)
    }
}

pub fn validate_spec(spec: &RsSpec, allow_sensitive: bool) -> Result<()> {
    let bad = |what: &str, reason: String| {
        Err(CoreError::InvalidInput {
            what: what.into(),
            reason,
        })
    };
    if spec.image.trim().is_empty() || spec.image.contains(char::is_whitespace) {
        return bad(
            "image",
            format!("\"{}\" is not an image reference", spec.image),
        );
    }
    for e in &spec.env {
        match e.split_once('=') {
            Some((k, _))
                if !k.is_empty()
                    && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                    && !k.starts_with(|c: char| c.is_ascii_digit()) => {}
            _ => {
                return bad(
                    "env",
                    format!("\"{e}\" is not KEY=VALUE (KEY: letters, digits, \"_\")"),
                )
            }
        }
        if e.starts_with("CONTAINER_VERSION=") {
            return bad("env", "CONTAINER_VERSION is set by GPU Deck".into());
        }
    }
    let mut seen = std::collections::HashSet::new();
    for p in &spec.ports {
        if *p == 0 || !seen.insert(*p) {
            return bad("port", format!("container port {p} is 0 or given twice"));
        }
    }
    let mut dests = std::collections::HashSet::new();
    for b in &spec.binds {
        validate_bind(b, allow_sensitive)?;
        if !dests.insert(b.dest.trim_end_matches('/')) {
            return bad("bind", format!("two binds onto \"{}\"", b.dest));
        }
    }
    if spec.gpus > 64 {
        return bad(
            "gpus",
            format!("{} GPUs is more than any host has", spec.gpus),
        );
    }
    Ok(())
}

/// One thing that changed from a version's spec to the next; the UI words it in each language.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS, schemars::JsonSchema)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum Change {
    Gpus {
        from: u32,
        to: u32,
    },
    Image {
        from: String,
        to: String,
    },
    /// One bind swapped for another (`src:dest`).
    Bind {
        from: String,
        to: String,
    },
    /// Binds added or removed: how many before and after.
    Binds {
        from: u32,
        to: u32,
    },
    Env,
    Ports,
    Command,
}

impl std::fmt::Display for Change {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Change::Gpus { from, to } => write!(f, "GPUs {from} → {to}"),
            Change::Image { from, to } => write!(f, "image {from} → {to}"),
            Change::Bind { from, to } => write!(f, "bind {from} → {to}"),
            Change::Binds { from, to } => write!(f, "binds {from} → {to}"),
            Change::Env => write!(f, "env changed"),
            Change::Ports => write!(f, "ports changed"),
            Change::Command => write!(f, "command changed"),
        }
    }
}

/// What changed from one version's spec to the next.
pub fn describe_change(old: &RsSpec, new: &RsSpec) -> Vec<Change> {
    let mut out = Vec::new();
    if old.gpus != new.gpus {
        out.push(Change::Gpus {
            from: old.gpus,
            to: new.gpus,
        });
    }
    if old.image != new.image {
        out.push(Change::Image {
            from: old.image.clone(),
            to: new.image.clone(),
        });
    }
    for (a, b) in old.binds.iter().zip(&new.binds) {
        if a != b {
            out.push(Change::Bind {
                from: format!("{}:{}", a.src, a.dest),
                to: format!("{}:{}", b.src, b.dest),
            });
        }
    }
    if old.binds.len() != new.binds.len() {
        out.push(Change::Binds {
            from: old.binds.len() as u32,
            to: new.binds.len() as u32,
        });
    }
    if old.env != new.env {
        out.push(Change::Env);
    }
    if old.ports != new.ports {
        out.push(Change::Ports);
    }
    if old.command != new.command {
        out.push(Change::Command);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for ok in ["foo", "a", "llama_7b", "exp.2", "9lives"] {
            assert!(validate_name("replicaSet", ok).is_ok(), "{ok}");
        }
        for bad in ["", "Foo", "foo-1", "-x", "_x", "a b", "ä", &"x".repeat(41)] {
            let e = validate_name("replicaSet", bad).unwrap_err().to_string();
            assert!(e.contains("lowercase letters"), "{bad}: {e}");
        }
    }

    #[test]
    fn binds_parse_and_refuse_system_paths() {
        assert_eq!(
            Bind::parse("/data:/data").unwrap(),
            Bind {
                src: "/data".into(),
                dest: "/data".into(),
                read_only: false
            }
        );
        assert!(Bind::parse("/data:/data:ro").unwrap().read_only);
        for bad in ["/data", "/a:/b:rw", ":/x", "/x:"] {
            assert!(Bind::parse(bad).is_err(), "{bad}");
        }
        let b = |s: &str| Bind::parse(s).unwrap();
        for refused in [
            "/:/host",
            "/etc:/etc",
            "/proc:/p",
            "/sys/fs:/x",
            "/dev:/dev",
            "/var/run/docker.sock:/s",
            "/data:/",
            "/data:rel",
            "/data/../etc:/x",
        ] {
            assert!(validate_bind(&b(refused), false).is_err(), "{refused}");
        }
        assert!(validate_bind(&b("/etc:/etc"), true).is_ok());
        assert!(validate_bind(&b("/home/lab/data:/data"), false).is_ok());
        assert!(validate_bind(&b("veil-1:/data"), false).is_ok());
        assert!(validate_bind(&b("Bad_Vol:/data"), false).is_err());
    }

    #[test]
    fn specs_and_changes() {
        let s = RsSpec {
            image: "img".into(),
            command: vec![],
            env: vec!["USER=foo".into()],
            binds: vec![],
            ports: vec![22, 443],
            gpus: 3,
            ..Default::default()
        };
        assert!(validate_spec(&s, false).is_ok());
        for bad in [
            RsSpec {
                image: "".into(),
                ..s.clone()
            },
            RsSpec {
                env: vec!["NOEQUALS".into()],
                ..s.clone()
            },
            RsSpec {
                env: vec!["CONTAINER_VERSION=3".into()],
                ..s.clone()
            },
            RsSpec {
                ports: vec![22, 22],
                ..s.clone()
            },
            RsSpec {
                ports: vec![0],
                ..s.clone()
            },
        ] {
            assert!(validate_spec(&bad, false).is_err(), "{bad:?}");
        }
        let mut n = s.clone();
        n.gpus = 1;
        assert_eq!(
            describe_change(&s, &n),
            vec![Change::Gpus { from: 3, to: 1 }]
        );
        assert_eq!(describe_change(&s, &n)[0].to_string(), "GPUs 3 → 1");
        n.binds = vec![Bind::parse("veil-1:/d").unwrap()];
        let mut o = s.clone();
        o.gpus = 1;
        o.binds = vec![Bind::parse("veil-0:/d").unwrap()];
        assert_eq!(
            describe_change(&o, &n)[0].to_string(),
            "bind veil-0:/d → veil-1:/d"
        );
    }
}
