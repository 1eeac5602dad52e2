//! Allocation rules for GPUs and host ports (pure functions), used inside one SQLite write
//! transaction (`Store::claim_gpus`, `Store::claim_ports`) so that two processes — the app and the
//! CLI — never hand out the same GPU or port.

use std::collections::HashSet;

use crate::settings::PortRange;
use crate::{CoreError, Result};

/// A GPU that may be handed out, as the sampler last saw it.
#[derive(Debug, Clone)]
pub struct GpuCandidate {
    pub index: u32,
    pub uuid: String,
    pub memory_used_bytes: Option<u64>,
}

/// Picks `n` GPUs not in `taken`: least memory used first (unknown counts as most), then lowest
/// index. Deterministic for the same inputs.
pub fn choose_gpus(
    candidates: &[GpuCandidate],
    taken: &HashSet<String>,
    n: u32,
) -> Result<Vec<String>> {
    let mut free: Vec<&GpuCandidate> = candidates
        .iter()
        .filter(|g| !taken.contains(&g.uuid))
        .collect();
    if (free.len() as u32) < n {
        return Err(CoreError::NotEnoughGpus {
            requested: n,
            free: free.len() as u32,
        });
    }
    free.sort_by_key(|g| (g.memory_used_bytes.unwrap_or(u64::MAX), g.index));
    Ok(free
        .into_iter()
        .take(n as usize)
        .map(|g| g.uuid.clone())
        .collect())
}

/// Picks `n` host ports in `range` outside `unavailable`: first those of `keep` that are still free
/// (a new version keeps its predecessor's ports, so users' SSH configs keep working), then the
/// lowest free ones.
pub fn choose_ports(
    range: PortRange,
    unavailable: &HashSet<u16>,
    keep: &[u16],
    n: usize,
) -> Result<Vec<u16>> {
    let in_range = |p: &u16| (range.start..=range.end).contains(p);
    let mut out: Vec<u16> = Vec::with_capacity(n);
    for p in keep
        .iter()
        .filter(|p| in_range(p) && !unavailable.contains(p))
    {
        if out.len() < n && !out.contains(p) {
            out.push(*p);
        }
    }
    let mut next = range.start;
    while out.len() < n {
        if !unavailable.contains(&next) && !out.contains(&next) {
            out.push(next);
        }
        if next == range.end {
            break;
        }
        next += 1;
    }
    if out.len() < n {
        let total = usize::from(range.end - range.start) + 1;
        let free = total - unavailable.iter().filter(|p| in_range(p)).count();
        return Err(CoreError::NotEnoughPorts {
            requested: n as u32,
            free: free as u32,
        });
    }
    Ok(out)
}

/// One used port of the range, and who uses it.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, ts_rs::TS, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PortUse {
    pub port: u16,
    /// The replicaSet, the container, or "host" (a process outside Docker).
    pub owner: String,
    pub kind: PortOwnerKind,
}

#[derive(
    Debug,
    Clone,
    Copy,
    serde::Serialize,
    serde::Deserialize,
    ts_rs::TS,
    schemars::JsonSchema,
    PartialEq,
    Eq,
)]
#[serde(rename_all = "lowercase")]
pub enum PortOwnerKind {
    Replicaset,
    Container,
    Host,
}

/// The configured range at a glance.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, ts_rs::TS, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PortMap {
    pub start: u16,
    pub end: u16,
    pub free: u32,
    pub used: Vec<PortUse>,
}

/// Merges what holds ports (later sources win: a replicaSet's claim names it better than the
/// container that publishes the port, which names it better than "host").
pub fn port_map(
    range: PortRange,
    host: &HashSet<u16>,
    published: &[(u16, String)],
    claims: &[(u16, String)],
) -> PortMap {
    let mut used = std::collections::BTreeMap::new();
    for p in host {
        used.insert(
            *p,
            PortUse {
                port: *p,
                owner: "host".into(),
                kind: PortOwnerKind::Host,
            },
        );
    }
    for (p, name) in published {
        used.insert(
            *p,
            PortUse {
                port: *p,
                owner: name.clone(),
                kind: PortOwnerKind::Container,
            },
        );
    }
    for (p, owner) in claims {
        used.insert(
            *p,
            PortUse {
                port: *p,
                owner: owner.clone(),
                kind: PortOwnerKind::Replicaset,
            },
        );
    }
    let used: Vec<PortUse> = used
        .into_values()
        .filter(|u| (range.start..=range.end).contains(&u.port))
        .collect();
    let total = u32::from(range.end - range.start) + 1;
    PortMap {
        start: range.start,
        end: range.end,
        free: total - used.len() as u32,
        used,
    }
}

/// Ports in LISTEN state in the text of `/proc/net/tcp` or `/proc/net/tcp6`.
pub fn listening_ports(proc_net_tcp: &str) -> HashSet<u16> {
    proc_net_tcp
        .lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let (local, state) = (f.get(1)?, f.get(3)?);
            (*state == "0A").then_some(())?;
            u16::from_str_radix(local.rsplit(':').next()?, 16).ok()
        })
        .collect()
}

/// Every TCP port something on this host listens on (IPv4 and IPv6).
pub fn host_listening_ports() -> HashSet<u16> {
    ["/proc/net/tcp", "/proc/net/tcp6"]
        .iter()
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .flat_map(|t| listening_ports(&t))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gpus(mem: &[Option<u64>]) -> Vec<GpuCandidate> {
        mem.iter()
            .enumerate()
            .map(|(i, m)| GpuCandidate {
                index: i as u32,
                uuid: format!("GPU-{i}"),
                memory_used_bytes: *m,
            })
            .collect()
    }

    #[test]
    fn least_used_then_lowest_index() {
        let c = gpus(&[Some(5), Some(1), None, Some(1), Some(0)]);
        let got = choose_gpus(&c, &HashSet::new(), 3).unwrap();
        assert_eq!(got, vec!["GPU-4", "GPU-1", "GPU-3"]);
        let taken: HashSet<String> = ["GPU-4".to_string()].into();
        assert_eq!(choose_gpus(&c, &taken, 1).unwrap(), vec!["GPU-1"]);
        assert!(choose_gpus(&c, &HashSet::new(), 0).unwrap().is_empty());
    }

    #[test]
    fn a_shortage_says_requested_and_free() {
        let c = gpus(&[Some(0), Some(0)]);
        let taken: HashSet<String> = ["GPU-0".to_string()].into();
        match choose_gpus(&c, &taken, 3) {
            Err(CoreError::NotEnoughGpus {
                requested: 3,
                free: 1,
            }) => {}
            other => panic!("{other:?}"),
        }
        let msg = choose_gpus(&c, &taken, 3).unwrap_err().to_string();
        assert!(msg.starts_with("3 GPU(s) requested, 1 free"), "{msg}");
    }

    #[test]
    fn ports_keep_what_they_had_then_take_the_lowest_free() {
        let r = PortRange {
            start: 40000,
            end: 40005,
        };
        let used: HashSet<u16> = [40000, 40002].into();
        assert_eq!(choose_ports(r, &used, &[], 2).unwrap(), vec![40001, 40003]);
        assert_eq!(
            choose_ports(r, &used, &[40004, 40002, 39000], 2).unwrap(),
            vec![40004, 40001]
        );
        match choose_ports(r, &used, &[], 5) {
            Err(CoreError::NotEnoughPorts {
                requested: 5,
                free: 4,
            }) => {}
            other => panic!("{other:?}"),
        }
        let edge = PortRange {
            start: 65535,
            end: 65535,
        };
        assert_eq!(
            choose_ports(edge, &HashSet::new(), &[], 1).unwrap(),
            vec![65535]
        );
        assert!(choose_ports(edge, &HashSet::new(), &[], 2).is_err());
    }

    #[test]
    fn port_map_names_the_best_owner() {
        let r = PortRange {
            start: 40000,
            end: 40009,
        };
        let host: HashSet<u16> = [22, 40000, 40001].into();
        let m = port_map(
            r,
            &host,
            &[(40001, "foo-2".into()), (40002, "web".into())],
            &[(40001, "foo".into())],
        );
        let owners: Vec<(u16, &str, PortOwnerKind)> = m
            .used
            .iter()
            .map(|u| (u.port, u.owner.as_str(), u.kind))
            .collect();
        assert_eq!(
            owners,
            vec![
                (40000, "host", PortOwnerKind::Host),
                (40001, "foo", PortOwnerKind::Replicaset),
                (40002, "web", PortOwnerKind::Container)
            ]
        );
        assert_eq!(m.free, 7);
    }

    #[test]
    fn parses_listening_sockets_only() {
        let text = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0 100 0 0 10 0
   1: 0100007F:9C40 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 2 1 0 100 0 0 10 0
   2: 0100007F:9C41 0100007F:0016 01 00000000:00000000 00:00000000 00000000     0        0 3 1 0 100 0 0 10 0
";
        assert_eq!(listening_ports(text), [22, 40000].into());
        let _ = host_listening_ports();
    }
}
