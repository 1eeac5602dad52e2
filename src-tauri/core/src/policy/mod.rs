//! Who may do what. A caller is a Linux user, known from the service socket's peer credentials;
//! admins (root, group `gpudeck-admin`) may do everything, members (group `gpudeck`) act on what
//! they own within the limits an admin set for them. Pure rules here; the SQL is in `store.rs`.

pub mod store;
pub mod tokens;

use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};
use ts_rs::TS;

use crate::replicaset::{Bind, RsSpec, RunAs};
use crate::{CoreError, Result};

/// Members of this group may use GPU Deck (the service's socket is `root:gpudeck 0660`).
pub const GROUP_MEMBERS: &str = "gpudeck";
/// Members of this group (and root) are admins.
pub const GROUP_ADMINS: &str = "gpudeck-admin";
/// The policy row every user without one of their own gets.
pub const DEFAULT_ROW: &str = "*";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, TS, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Admin,
    Member,
    /// In neither group: may ask who they are, nothing else.
    None,
}

/// Who is asking, as the kernel says (never a field of a request).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Caller {
    pub uid: u32,
    pub gid: u32,
    pub user: String,
    /// Every group id the user is in (the primary one included), read at each request: group
    /// changes take effect without a restart.
    pub groups: Vec<u32>,
    pub home: String,
    pub role: Role,
}

impl Caller {
    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }

    /// Refuses a caller in neither group, with the group to join.
    pub fn require_member(&self) -> Result<()> {
        match self.role {
            Role::None => Err(CoreError::NotInGroup {
                user: self.user.clone(),
            }),
            _ => Ok(()),
        }
    }

    pub fn require_admin(&self, what: &str) -> Result<()> {
        self.require_member()?;
        if self.is_admin() {
            return Ok(());
        }
        Err(CoreError::Forbidden(format!(
            "Only an admin (root, or a member of the group \"{GROUP_ADMINS}\") may {what}. Nothing was changed."
        )))
    }

    /// Whether the caller may act on (and read the private parts of) something `owner` owns.
    pub fn owns(&self, owner: Option<&str>) -> bool {
        self.is_admin() || owner == Some(self.user.as_str())
    }

    /// Refuses `action` on `kind` `name` unless the caller owns it or is an admin.
    pub fn require_owner(
        &self,
        kind: &str,
        name: &str,
        owner: Option<&str>,
        action: &str,
    ) -> Result<()> {
        self.require_member()?;
        if self.owns(owner) {
            return Ok(());
        }
        Err(CoreError::Forbidden(match owner {
            Some(o) => format!(
                "The {kind} \"{name}\" belongs to {o}: only {o} or an admin may {action} it. Nothing was changed."
            ),
            None => format!(
                "The {kind} \"{name}\" was made before GPU Deck knew owners: only an admin may {action} it. Nothing was changed."
            ),
        }))
    }

    /// The identity a member's containers run as.
    pub fn run_as(&self) -> RunAs {
        let mut groups: Vec<u32> = self
            .groups
            .iter()
            .copied()
            .filter(|g| *g != self.gid)
            .collect();
        groups.sort_unstable();
        groups.dedup();
        RunAs {
            uid: self.uid,
            gid: self.gid,
            groups,
        }
    }
}

/// The role a user with these group names has.
pub fn role_of(uid: u32, group_names: &[String]) -> Role {
    if uid == 0 || group_names.iter().any(|g| g == GROUP_ADMINS) {
        Role::Admin
    } else if group_names.iter().any(|g| g == GROUP_MEMBERS) {
        Role::Member
    } else {
        Role::None
    }
}

/// One row of the admin's policy: a user's, or the default (`user` = `*`). `None` fields fall
/// back to the default row, then to the built-in defaults.
#[derive(
    Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, TS, schemars::JsonSchema,
)]
#[serde(rename_all = "camelCase")]
pub struct PolicyRow {
    pub user: String,
    /// GPUs the user's replicaSets may hold at once (`None`: no limit).
    #[serde(default)]
    pub max_gpus: Option<u32>,
    /// Host folders the user may bind (and everything under them); `None`: their home.
    #[serde(default)]
    pub bind_roots: Option<Vec<String>>,
    /// Whether the user's containers may run as root (root in a container with a writable bind
    /// is root on the host: a setuid file in `$HOME`).
    #[serde(default)]
    pub root_in_container: Option<bool>,
    /// Bytes all the user's volumes may hold together (`None`: no quota).
    #[serde(default)]
    #[ts(type = "number | null")]
    pub max_volume_bytes: Option<u64>,
    /// Memory each of the user's containers gets at most (`None`: no limit).
    #[serde(default)]
    #[ts(type = "number | null")]
    pub memory_bytes: Option<u64>,
    /// CPUs each of the user's containers gets at most, in thousandths (`None`: no limit).
    #[serde(default)]
    pub cpus_milli: Option<u32>,
}

/// A user's limits after the fallbacks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Effective {
    pub user: String,
    pub max_gpus: Option<u32>,
    pub bind_roots: Vec<String>,
    pub root_in_container: bool,
    #[serde(default)]
    #[ts(type = "number | null")]
    pub max_volume_bytes: Option<u64>,
    #[serde(default)]
    #[ts(type = "number | null")]
    pub memory_bytes: Option<u64>,
    #[serde(default)]
    pub cpus_milli: Option<u32>,
}

pub fn effective(
    user: &str,
    home: &str,
    own: Option<&PolicyRow>,
    default: Option<&PolicyRow>,
) -> Effective {
    // The user's own row, else the default row.
    fn pick<T>(
        own: Option<&PolicyRow>,
        default: Option<&PolicyRow>,
        f: impl Fn(&PolicyRow) -> Option<T>,
    ) -> Option<T> {
        own.and_then(&f).or_else(|| default.and_then(&f))
    }
    Effective {
        user: user.to_string(),
        max_gpus: pick(own, default, |r| r.max_gpus),
        bind_roots: pick(own, default, |r| r.bind_roots.clone())
            .unwrap_or_else(|| vec![home.to_string()]),
        root_in_container: pick(own, default, |r| r.root_in_container).unwrap_or(false),
        max_volume_bytes: pick(own, default, |r| r.max_volume_bytes),
        memory_bytes: pick(own, default, |r| r.memory_bytes),
        cpus_milli: pick(own, default, |r| r.cpus_milli),
    }
}

/// The smallest memory limit a container may be given (the engine refuses less than 6 MB).
pub const MIN_MEMORY: u64 = 16 << 20;

/// Refuses `size` more bytes of volumes for `policy.user` beside the `held` bytes their other
/// volumes have, when that passes their quota.
pub fn check_volume_quota(policy: &Effective, held: u64, size: u64) -> Result<()> {
    match policy.max_volume_bytes {
        Some(q) if held + size > q => Err(CoreError::Forbidden(format!(
            "{} may hold at most {} of volumes and holds {} already: {} more does not fit (an admin sets this: `gpudeck policy set {} --max-volume-size SIZE`). Nothing was changed.",
            policy.user,
            crate::volume::human(q),
            crate::volume::human(held),
            crate::volume::human(size),
            policy.user
        ))),
        _ => Ok(()),
    }
}

/// Checks a policy row an admin wants to save.
pub fn validate_row(row: &PolicyRow) -> Result<()> {
    let bad = |reason: String| {
        Err(CoreError::InvalidInput {
            what: "policy".into(),
            reason,
        })
    };
    if row.user != DEFAULT_ROW
        && (row.user.is_empty()
            || row.user.len() > 32
            || !row
                .user
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
            || row.user.starts_with('-'))
    {
        return bad(format!("\"{}\" is not a Linux user name", row.user));
    }
    if row.max_gpus.is_some_and(|n| n > 64) {
        return bad("--max-gpus is at most 64".into());
    }
    if row.memory_bytes.is_some_and(|m| m < MIN_MEMORY) {
        return bad(format!(
            "--memory is at least {}",
            crate::volume::human(MIN_MEMORY)
        ));
    }
    if row.cpus_milli.is_some_and(|c| c == 0 || c > 1024 * 1000) {
        return bad("--cpus is more than 0 and at most 1024".into());
    }
    for r in row.bind_roots.iter().flatten() {
        if !r.starts_with('/') {
            return bad(format!("the bind root \"{r}\" is not an absolute path"));
        }
    }
    Ok(())
}

/// `path` made absolute and plain: `//etc`, `/./etc`, `a/../b` and every symlink resolved, as far
/// as the path exists (the rest is appended as written, with `..` refused).
pub fn resolve_path(path: &str) -> Result<PathBuf> {
    let bad = |reason: &str| CoreError::InvalidInput {
        what: "bind".into(),
        reason: format!("the host path \"{path}\" {reason}"),
    };
    if !path.starts_with('/') {
        return Err(bad("is not absolute"));
    }
    let p = Path::new(path);
    let mut existing = PathBuf::from("/");
    let mut rest: Vec<&std::ffi::OsStr> = Vec::new();
    for c in p.components() {
        match c {
            Component::RootDir | Component::CurDir => {}
            Component::ParentDir => return Err(bad("may not contain \"..\"")),
            Component::Normal(s) => {
                if rest.is_empty() && existing.join(s).symlink_metadata().is_ok() {
                    existing.push(s);
                } else {
                    rest.push(s);
                }
            }
            Component::Prefix(_) => return Err(bad("is not a Linux path")),
        }
    }
    let mut real = existing
        .canonicalize()
        .map_err(|e| bad(&format!("cannot be resolved ({e})")))?;
    for s in rest {
        real.push(s);
    }
    Ok(real)
}

/// Host trees no member may bind anything from, whatever their bind roots say.
pub const MEMBER_FORBIDDEN: &[&str] = &[
    "/etc", "/proc", "/sys", "/dev", "/boot", "/root", "/usr", "/var", "/run", "/bin", "/sbin",
    "/lib", "/lib64", "/opt", "/srv",
];

fn under(p: &Path, root: &Path) -> bool {
    p == root || p.starts_with(root)
}

/// Resolves a member's host-path bind and checks it: under one of their roots and in none of the
/// forbidden trees (`extra_forbidden`: Docker's and GPU Deck's data roots). The bind's source
/// becomes the resolved path, so that what is mounted is what was checked.
pub fn check_member_bind(
    b: &mut Bind,
    policy: &Effective,
    extra_forbidden: &[PathBuf],
) -> Result<()> {
    let real = resolve_path(&b.src)?;
    let refuse = |why: String| {
        Err(CoreError::Forbidden(format!(
            "You may not bind \"{}\"{}: {why}. Nothing was changed.",
            b.src,
            if real.as_os_str() != b.src.as_str() {
                format!(" (which is {})", real.display())
            } else {
                String::new()
            }
        )))
    };
    if real == Path::new("/")
        || MEMBER_FORBIDDEN.iter().any(|t| under(&real, Path::new(t)))
        || extra_forbidden.iter().any(|t| under(&real, t))
    {
        return refuse("it is a system folder".into());
    }
    let roots: Vec<PathBuf> = policy
        .bind_roots
        .iter()
        .filter_map(|r| resolve_path(r).ok())
        .collect();
    if !roots.iter().any(|r| under(&real, r)) {
        return refuse(format!(
            "you may bind only under {} (an admin sets this: `gpudeck policy set {} --bind-root PATH`)",
            policy.bind_roots.join(", "),
            policy.user
        ));
    }
    b.src = real.display().to_string();
    Ok(())
}

/// The most processes a member's container may hold at once (a fork bomb stays inside it).
pub const MEMBER_PIDS_LIMIT: i64 = 4096;
/// The most container ports a member's replicaSet may publish.
pub const MEMBER_MAX_PORTS: usize = 16;

/// A volume GPU Deck made, as a bind checks it: its owner (`None`: made before owners, an
/// admin's) and the versions whose Docker volumes (`<name>-<N>`) exist now, current first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeRef {
    pub owner: Option<String>,
    pub current: u32,
    pub live: Vec<u32>,
}

/// A member's volume bind: the source must be a volume GPU Deck made, by its exact name (the
/// current version is bound) or exactly `<name>-<N>` of a version that exists, and the member must
/// own it. Never a Docker volume GPU Deck did not make (`x-data` beside a volume `x`), nor one the
/// engine would make on the fly (`x-7` where `x` has no version 7): those have no size limit.
/// Returns the Docker volume to bind.
pub fn check_member_volume(
    caller: &Caller,
    src: &str,
    volume: &dyn Fn(&str) -> Option<VolumeRef>,
) -> Result<String> {
    let versioned = src.rsplit_once('-').and_then(|(n, v)| {
        let k: u32 = v
            .parse()
            .ok()
            .filter(|_| !v.starts_with('0') && !v.starts_with('+'))?;
        Some((n, k))
    });
    let (vol, name, docker) = match (volume(src), versioned) {
        (Some(v), _) => {
            let d = format!("{src}-{}", v.current);
            (v, src, d)
        }
        (None, Some((n, k))) => match volume(n) {
            Some(v) if v.live.contains(&k) => (v, n, src.to_string()),
            Some(v) => {
                return Err(CoreError::InvalidInput {
                    what: "bind".into(),
                    reason: format!(
                        "the volume \"{n}\" has no version {k} now (it is at version {}): bind \"{n}\" for its current version",
                        v.current
                    ),
                })
            }
            None => return Err(no_volume(src)),
        },
        (None, None) => return Err(no_volume(src)),
    };
    if vol.owner.as_deref() != Some(caller.user.as_str()) {
        return Err(CoreError::Forbidden(format!(
            "The volume \"{name}\" belongs to {}: you may bind only your own volumes. Nothing was changed.",
            vol.owner.as_deref().unwrap_or("an admin")
        )));
    }
    Ok(docker)
}

fn no_volume(src: &str) -> CoreError {
    CoreError::InvalidInput {
        what: "bind".into(),
        reason: format!(
            "there is no GPU Deck volume named \"{src}\" (`gpudeck vol ls` lists them; a member binds only volumes GPU Deck made)"
        ),
    }
}

/// What a member's spec becomes before the service builds anything from it, at every (re)start,
/// with the rules in force then: owned by them, running as them (unless root is allowed), their
/// `NVIDIA_*` variables dropped (the GPUs they are given are said by the service), host binds
/// resolved and checked, volume binds only of GPU Deck's volumes they own (`volume`).
pub fn apply_to_spec(
    caller: &Caller,
    policy: &Effective,
    spec: &mut RsSpec,
    extra_forbidden: &[PathBuf],
    volume: &dyn Fn(&str) -> Option<VolumeRef>,
) -> Result<()> {
    spec.owner = Some(caller.user.clone());
    if caller.is_admin() {
        spec.run_as = None;
        spec.pids_limit = None;
        spec.memory_bytes = None;
        spec.cpus_milli = None;
        for b in spec.binds.iter_mut().filter(|b| b.is_host_path()) {
            b.src = resolve_path(&b.src)?.display().to_string();
        }
        return Ok(());
    }
    spec.run_as = (!policy.root_in_container).then(|| caller.run_as());
    spec.pids_limit = Some(MEMBER_PIDS_LIMIT);
    spec.memory_bytes = policy.memory_bytes;
    spec.cpus_milli = policy.cpus_milli;
    if spec.ports.len() > MEMBER_MAX_PORTS {
        return Err(CoreError::InvalidInput {
            what: "ports".into(),
            reason: format!(
                "a member's replicaSet may publish at most {MEMBER_MAX_PORTS} ports ({} asked): each takes a host port from everyone's range",
                spec.ports.len()
            ),
        });
    }
    spec.env.retain(|e| !e.starts_with("NVIDIA_"));
    for b in spec.binds.iter_mut() {
        if b.is_host_path() {
            check_member_bind(b, policy, extra_forbidden)?;
        } else {
            b.src = check_member_volume(caller, &b.src, volume)?;
        }
    }
    Ok(())
}

/// An image a member's replicaSet made (a commit, a snapshot of its files: the engine keeps the
/// container's `gpudeck.owner` label in it) is that member's: only they or an admin may `what`
/// it (inspect, run, tag, push). Images with no owner (pulled, imported) are everyone's.
pub fn check_image_use(
    caller: &Caller,
    image: &str,
    labels: &std::collections::HashMap<String, String>,
    what: &str,
) -> Result<()> {
    let owner = labels
        .get(crate::replicaset::LABEL_OWNER)
        .filter(|o| !o.is_empty());
    match owner {
        Some(o) if !caller.is_admin() && o != &caller.user => Err(CoreError::Forbidden(format!(
            "The image \"{image}\" was made by a replicaSet of {o}: only {o} or an admin may {what} it. Nothing was changed."
        ))),
        _ => Ok(()),
    }
}

/// A member may commit only under their own namespace (`alice/…` or `host:port/alice/…`), so
/// that no shared tag is ever written over.
pub fn check_commit_target(caller: &Caller, image: &str) -> Result<()> {
    if caller.is_admin() {
        return Ok(());
    }
    let repo = image.split(['@']).next().unwrap_or(image);
    let path: Vec<&str> = repo.split('/').collect();
    let first_is_host = path.len() > 1
        && (path[0].contains('.') || path[0].contains(':') || path[0] == "localhost");
    let ns = if first_is_host {
        path.get(1)
    } else {
        path.first()
    };
    if path.len() >= if first_is_host { 3 } else { 2 } && ns == Some(&caller.user.as_str()) {
        return Ok(());
    }
    Err(CoreError::Forbidden(format!(
        "You may commit only under your own name: \"{u}/IMAGE:TAG\" (or \"REGISTRY/{u}/IMAGE:TAG\"), not \"{image}\". Nothing was changed.",
        u = caller.user
    )))
}

/// GPUs `user` may still take: refuses when `held` (by their other replicaSets) plus `requested`
/// passes their limit.
pub fn check_gpu_limit(policy: &Effective, held: u32, requested: u32) -> Result<()> {
    match policy.max_gpus {
        Some(limit) if requested > 0 && held + requested > limit => Err(CoreError::GpuLimit {
            user: policy.user.clone(),
            limit,
            held,
            requested,
        }),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(user: &str) -> Caller {
        Caller {
            uid: 1001,
            gid: 1001,
            user: user.into(),
            groups: vec![1001, 900],
            home: format!("/home/{user}"),
            role: Role::Member,
        }
    }

    #[test]
    fn roles_come_from_groups() {
        assert_eq!(role_of(0, &[]), Role::Admin);
        assert_eq!(role_of(5, &["gpudeck-admin".into()]), Role::Admin);
        assert_eq!(role_of(5, &["x".into(), "gpudeck".into()]), Role::Member);
        assert_eq!(role_of(5, &["gpudeckx".into()]), Role::None);
    }

    #[test]
    fn owners_and_admins_only() {
        let a = member("alice");
        assert!(a
            .require_owner("replicaSet", "x", Some("alice"), "stop")
            .is_ok());
        let e = a
            .require_owner("replicaSet", "x", Some("bob"), "stop")
            .unwrap_err();
        assert!(e.to_string().contains("belongs to bob"), "{e}");
        assert!(a.require_owner("replicaSet", "x", None, "stop").is_err());
        let mut c = member("carol");
        c.role = Role::None;
        assert_eq!(c.require_member().unwrap_err().code(), "not_in_group");
        assert!(a.require_admin("change policy").is_err());
    }

    #[test]
    fn effective_falls_back_to_default_then_home() {
        let d = PolicyRow {
            user: "*".into(),
            max_gpus: Some(2),
            ..Default::default()
        };
        let own = PolicyRow {
            user: "alice".into(),
            bind_roots: Some(vec!["/data".into()]),
            ..Default::default()
        };
        let e = effective("alice", "/home/alice", Some(&own), Some(&d));
        assert_eq!(e.max_gpus, Some(2));
        assert_eq!(e.bind_roots, vec!["/data".to_string()]);
        assert!(!e.root_in_container);
        let e = effective("bob", "/home/bob", None, None);
        assert_eq!(e.bind_roots, vec!["/home/bob".to_string()]);
        assert_eq!(e.max_gpus, None);
    }

    #[test]
    fn paths_are_resolved_before_checks() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().canonicalize().unwrap();
        std::fs::create_dir(root.join("home")).unwrap();
        std::os::unix::fs::symlink("/etc", root.join("home/etc")).unwrap();
        assert_eq!(resolve_path("//etc").unwrap(), PathBuf::from("/etc"));
        assert_eq!(resolve_path("/./etc/").unwrap(), PathBuf::from("/etc"));
        assert!(resolve_path("/home/../etc").is_err());
        assert!(resolve_path("etc").is_err());
        let via = format!("{}/home/etc/passwd", root.display());
        assert_eq!(resolve_path(&via).unwrap(), PathBuf::from("/etc/passwd"));
        let missing = format!("{}/home/new/dir", root.display());
        assert_eq!(resolve_path(&missing).unwrap(), root.join("home/new/dir"));

        let pol = Effective {
            user: "alice".into(),
            max_gpus: None,
            bind_roots: vec![root.join("home").display().to_string()],
            root_in_container: false,
            max_volume_bytes: None,
            memory_bytes: None,
            cpus_milli: None,
        };
        let mut ok = Bind::parse(&format!("{}/home/x:/x", root.display())).unwrap();
        check_member_bind(&mut ok, &pol, &[]).unwrap();
        for src in ["/etc", "//etc", "/./etc", &via, "/tmp"] {
            let mut b = Bind::parse(&format!("{src}:/x")).unwrap();
            assert_eq!(
                check_member_bind(&mut b, &pol, &[]).unwrap_err().code(),
                "forbidden",
                "{src}"
            );
        }
        let mut data = Bind::parse(&format!("{}/home/x:/x", root.display())).unwrap();
        assert!(check_member_bind(&mut data, &pol, &[root.join("home")]).is_err());
    }

    #[test]
    fn members_specs_are_rewritten() {
        let a = member("alice");
        let pol = effective("alice", "/nonexistent-home", None, None);
        let mut spec = RsSpec {
            image: "x".into(),
            env: vec!["NVIDIA_VISIBLE_DEVICES=all".into(), "A=1".into()],
            owner: Some("bob".into()),
            binds: vec![Bind::parse("data-1:/d").unwrap()],
            ..Default::default()
        };
        let owners = |n: &str| {
            (n == "data").then(|| VolumeRef {
                owner: Some("alice".to_string()),
                current: 2,
                live: vec![2, 1],
            })
        };
        apply_to_spec(&a, &pol, &mut spec, &[], &owners).unwrap();
        assert_eq!(spec.binds[0].src, "data-1", "a version that exists");
        assert_eq!(spec.owner.as_deref(), Some("alice"));
        assert_eq!(spec.env, vec!["A=1".to_string()]);
        assert_eq!(spec.run_as.as_ref().map(|r| r.uid), Some(1001));
        assert_eq!(
            spec.run_as.as_ref().map(|r| r.groups.clone()),
            Some(vec![900])
        );
        let bobs = |_: &str| {
            Some(VolumeRef {
                owner: Some("bob".to_string()),
                current: 1,
                live: vec![1],
            })
        };
        assert!(apply_to_spec(&a, &pol, &mut spec, &[], &bobs).is_err());
    }

    /// Only volumes GPU Deck made, by exact name: never a Docker volume that merely starts with
    /// the name of one the member owns, nor a version the engine would make on the fly.
    #[test]
    fn volume_binds_are_exact() {
        let a = member("alice");
        let vols = |n: &str| {
            (n == "x" || n == "my-data").then(|| VolumeRef {
                owner: Some("alice".to_string()),
                current: 3,
                live: vec![3, 2],
            })
        };
        assert_eq!(check_member_volume(&a, "x", &vols).unwrap(), "x-3");
        assert_eq!(check_member_volume(&a, "x-2", &vols).unwrap(), "x-2");
        assert_eq!(
            check_member_volume(&a, "my-data", &vols).unwrap(),
            "my-data-3"
        );
        assert_eq!(
            check_member_volume(&a, "my-data-3", &vols).unwrap(),
            "my-data-3"
        );
        for (src, why) in [
            ("x-data", "no GPU Deck volume named"),
            ("x-7", "no version 7"),
            ("x-1", "no version 1"),
            ("x-03", "no GPU Deck volume named"),
            ("y", "no GPU Deck volume named"),
            ("x-", "no GPU Deck volume named"),
        ] {
            let e = check_member_volume(&a, src, &vols).unwrap_err().to_string();
            assert!(e.contains(why), "{src}: {e}");
        }
        let b = member("bob");
        assert_eq!(
            check_member_volume(&b, "x", &vols).unwrap_err().code(),
            "forbidden"
        );
    }

    #[test]
    fn images_a_members_replicaset_made_are_hers() {
        let labels = std::collections::HashMap::from([(
            crate::replicaset::LABEL_OWNER.to_string(),
            "alice".to_string(),
        )]);
        assert!(check_image_use(&member("alice"), "alice/x", &labels, "run").is_ok());
        let e = check_image_use(&member("bob"), "alice/x", &labels, "run").unwrap_err();
        assert!(
            e.to_string().contains("only alice or an admin may run it"),
            "{e}"
        );
        let mut admin = member("dana");
        admin.role = Role::Admin;
        assert!(check_image_use(&admin, "alice/x", &labels, "run").is_ok());
        assert!(check_image_use(&member("bob"), "busybox", &Default::default(), "run").is_ok());
    }

    #[test]
    fn commits_stay_in_the_members_namespace() {
        let a = member("alice");
        for ok in ["alice/x:1", "localhost:5000/alice/x:1", "reg.lab/alice/x"] {
            assert!(check_commit_target(&a, ok).is_ok(), "{ok}");
        }
        for bad in ["x:1", "bob/x", "ubuntu:22.04", "localhost:5000/x", "alice"] {
            assert!(check_commit_target(&a, bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn gpu_limit_says_the_numbers() {
        let pol = Effective {
            user: "alice".into(),
            max_gpus: Some(2),
            bind_roots: vec![],
            root_in_container: false,
            max_volume_bytes: None,
            memory_bytes: None,
            cpus_milli: None,
        };
        assert!(check_gpu_limit(&pol, 1, 1).is_ok());
        let e = check_gpu_limit(&pol, 1, 2).unwrap_err().to_string();
        assert!(e.contains("at most 2"), "{e}");
        assert!(check_gpu_limit(&pol, 5, 0).is_ok());
    }
}
