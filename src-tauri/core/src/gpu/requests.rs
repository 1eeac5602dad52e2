//! How a container is given its GPUs: the nvidia driver's device requests (what `docker run --gpus`
//! sends, served by the NVIDIA hook or runtime), or CDI's (`docker run --device nvidia.com/gpu=…`,
//! Docker 25+ with CDI on, served by the spec `nvidia-ctk cdi generate` writes). A host with only
//! `nvidia-container-toolkit-base` has CDI specs and no hook: there only CDI requests get GPUs on
//! engines that do not hand `--gpus` requests to CDI themselves.

use std::collections::HashSet;
use std::path::PathBuf;

use bollard::models::DeviceRequest;

use crate::alloc::GpuCandidate;
use crate::docker::EngineInfo;
use crate::settings::GpuRequests;
use crate::{CoreError, Result};

/// The CDI kind the NVIDIA toolkit's specs declare.
pub const CDI_KIND: &str = "nvidia.com/gpu";

/// The command that writes the NVIDIA CDI spec (NVIDIA's documentation).
pub const CDI_GENERATE: &str = "sudo nvidia-ctk cdi generate --output=/etc/cdi/nvidia.yaml";

/// A CDI spec for NVIDIA GPUs, and the device names it declares (`0`, `GPU-…`, `all`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NvidiaSpec {
    pub path: PathBuf,
    pub devices: HashSet<String>,
}

/// The first CDI spec (YAML or JSON) in `dirs` that describes NVIDIA GPUs (`kind: nvidia.com/gpu`).
/// A file that does not parse is not one the engine uses either.
pub fn nvidia_spec(dirs: &[String]) -> Option<NvidiaSpec> {
    let mut files: Vec<PathBuf> = dirs
        .iter()
        .filter_map(|d| std::fs::read_dir(d).ok())
        .flat_map(|rd| rd.flatten().map(|e| e.path()))
        .filter(|p| {
            p.extension()
                .is_some_and(|x| x == "yaml" || x == "yml" || x == "json")
        })
        .collect();
    files.sort();
    files.into_iter().find_map(|path| {
        // YAML reads JSON too.
        let v: serde_yaml_ng::Value =
            serde_yaml_ng::from_str(&std::fs::read_to_string(&path).ok()?).ok()?;
        if v.get("kind").and_then(|k| k.as_str()) != Some(CDI_KIND) {
            return None;
        }
        let devices = v
            .get("devices")
            .and_then(|d| d.as_sequence())
            .into_iter()
            .flatten()
            .filter_map(|d| d.get("name").and_then(|n| n.as_str()).map(str::to_string))
            .collect();
        Some(NvidiaSpec { path, devices })
    })
}

/// What serves the nvidia driver's requests on this host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Toolkit {
    /// The engine has a runtime named `nvidia`.
    Runtime,
    /// `nvidia-container-runtime-hook`, found on the engine's PATH (or ours).
    Hook(PathBuf),
}

/// The NVIDIA runtime or hook the engine would use, if any.
pub fn toolkit(engine: &EngineInfo) -> Option<Toolkit> {
    if engine.runtimes.iter().any(|r| r == "nvidia") {
        return Some(Toolkit::Runtime);
    }
    const HOOK: &str = "nvidia-container-runtime-hook";
    dockerd_path(&engine.endpoint)
        .and_then(|p| find_in(std::env::split_paths(&p), HOOK))
        .or_else(|| on_path(HOOK))
        .map(Toolkit::Hook)
}

pub(crate) fn on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    find_in(std::env::split_paths(&path), name)
}

fn find_in(dirs: impl Iterator<Item = PathBuf>, name: &str) -> Option<PathBuf> {
    dirs.chain(["/usr/bin", "/usr/local/bin", "/usr/sbin"].map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// The PATH of the running local `dockerd` that serves `endpoint` (it finds the NVIDIA hook on its
/// own PATH, not ours), when /proc lets us read it; the only one when none says which it serves.
fn dockerd_path(endpoint: &str) -> Option<String> {
    let daemons: Vec<(PathBuf, Vec<String>)> = std::fs::read_dir("/proc")
        .ok()?
        .flatten()
        .filter_map(|e| {
            let dir = e.path();
            let comm = std::fs::read_to_string(dir.join("comm")).ok()?;
            (comm.trim() == "dockerd").then_some(())?;
            let argv = std::fs::read(dir.join("cmdline")).ok()?;
            let argv = argv
                .split(|b| *b == 0)
                .filter(|a| !a.is_empty())
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect();
            Some((dir, argv))
        })
        .collect();
    let dir = match daemons.iter().find(|(_, argv)| serves(argv, endpoint)) {
        Some((dir, _)) => dir,
        None if daemons.len() == 1 => &daemons[0].0,
        None => return None,
    };
    let env = std::fs::read(dir.join("environ")).ok()?;
    env.split(|b| *b == 0)
        .find_map(|kv| kv.strip_prefix(b"PATH="))
        .map(|p| String::from_utf8_lossy(p).into_owned())
}

/// Whether a dockerd started with `argv` listens on `endpoint` (pure): its `-H`/`--host` values,
/// or the default socket where it names none or is handed its socket by systemd (`fd://`).
fn serves(argv: &[String], endpoint: &str) -> bool {
    let mut hosts = Vec::new();
    let mut it = argv.iter().skip(1);
    while let Some(a) = it.next() {
        if let Some(v) = a.strip_prefix("--host=").or_else(|| a.strip_prefix("-H=")) {
            hosts.push(v.to_string());
        } else if a == "--host" || a == "-H" {
            hosts.extend(it.next().cloned());
        } else if let Some(v) = a.strip_prefix("-H").filter(|v| !v.is_empty()) {
            hosts.push(v.to_string());
        }
    }
    let norm = |h: &str| {
        let h = h.strip_prefix("unix://").unwrap_or(h);
        h.strip_prefix("/var/run/")
            .map_or(h.to_string(), |rest| format!("/run/{rest}"))
    };
    let want = norm(endpoint);
    let default = want == "/run/docker.sock";
    (default && (hosts.is_empty() || hosts.iter().any(|h| h.starts_with("fd://"))))
        || hosts.iter().any(|h| norm(h) == want)
}

/// The way containers get GPUs on this host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GpuWay {
    Nvidia,
    Cdi(NvidiaSpec),
}

/// Picks the way (pure): the setting, whether a runtime or hook serves nvidia requests, the
/// engine's CDI spec folders (empty: CDI off) and the NVIDIA spec found in them. `Auto` keeps the
/// nvidia driver's requests wherever something serves them, and wherever nothing serves either way
/// (the engine's refusal then says so, as doctor does).
pub fn choose(
    setting: GpuRequests,
    toolkit: bool,
    cdi_dirs: &[String],
    spec: Option<NvidiaSpec>,
) -> Result<GpuWay> {
    match (setting, spec) {
        (GpuRequests::Nvidia, _) => Ok(GpuWay::Nvidia),
        (GpuRequests::Auto, Some(spec)) if !toolkit && !cdi_dirs.is_empty() => {
            Ok(GpuWay::Cdi(spec))
        }
        (GpuRequests::Auto, _) => Ok(GpuWay::Nvidia),
        (GpuRequests::Cdi, _) if cdi_dirs.is_empty() => Err(CoreError::GpuRequests(
            "GPU requests are set to CDI, but this Docker engine has CDI off (Docker 25+: \
             \"features\": {\"cdi\": true} in /etc/docker/daemon.json, then restart it). \
             Or set GPU requests to Automatic in Settings"
                .into(),
        )),
        (GpuRequests::Cdi, None) => Err(CoreError::GpuRequests(format!(
            "no CDI spec for {CDI_KIND} in {}. Write one: `{CDI_GENERATE}`",
            cdi_dirs.join(", ")
        ))),
        (GpuRequests::Cdi, Some(spec)) => Ok(GpuWay::Cdi(spec)),
    }
}

/// The way on this engine, as `choose` picks it from what the host has.
pub fn way(setting: GpuRequests, engine: &EngineInfo) -> Result<GpuWay> {
    if setting == GpuRequests::Nvidia {
        return Ok(GpuWay::Nvidia);
    }
    choose(
        setting,
        toolkit(engine).is_some(),
        &engine.cdi_spec_dirs,
        nvidia_spec(&engine.cdi_spec_dirs),
    )
}

/// The device requests that give a container the GPUs `uuids` (claimed from `gpus`). By CDI, each
/// GPU is named as the spec names it: by UUID, else by index.
pub fn device_requests(
    way: &GpuWay,
    uuids: &[String],
    gpus: &[GpuCandidate],
) -> Result<Option<Vec<DeviceRequest>>> {
    if uuids.is_empty() {
        return Ok(None);
    }
    let request = match way {
        GpuWay::Nvidia => DeviceRequest {
            driver: Some("nvidia".into()),
            count: None,
            device_ids: Some(uuids.to_vec()),
            capabilities: Some(vec![vec!["gpu".into()]]),
            options: None,
        },
        GpuWay::Cdi(spec) => {
            let names = uuids
                .iter()
                .map(|u| cdi_name(spec, u, gpus))
                .collect::<Result<Vec<_>>>()?;
            DeviceRequest {
                driver: Some("cdi".into()),
                count: None,
                device_ids: Some(names),
                capabilities: None,
                options: None,
            }
        }
    };
    Ok(Some(vec![request]))
}

fn cdi_name(spec: &NvidiaSpec, uuid: &str, gpus: &[GpuCandidate]) -> Result<String> {
    let index = gpus.iter().find(|g| g.uuid == uuid).map(|g| g.index);
    let name = if spec.devices.contains(uuid) {
        Some(uuid.to_string())
    } else {
        index
            .map(|i| i.to_string())
            .filter(|i| spec.devices.contains(i))
    };
    name.map(|n| format!("{CDI_KIND}={n}")).ok_or_else(|| {
        CoreError::GpuRequests(format!(
            "the CDI spec {} names no device for GPU {} ({uuid}), so it was written before this \
             GPU was there. Write it again: `{CDI_GENERATE}`",
            spec.path.display(),
            index.map_or("?".to_string(), |i| i.to_string()),
        ))
    })
}

/// How doctor says the way GPUs are given.
pub fn describe(way: &GpuWay) -> String {
    match way {
        GpuWay::Nvidia => "GPU Deck's containers get GPUs as `--gpus` does".into(),
        GpuWay::Cdi(spec) => format!(
            "GPU Deck's containers get GPUs through CDI ({CDI_KIND}=…, spec {})",
            spec.path.display()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(names: &[&str]) -> NvidiaSpec {
        NvidiaSpec {
            path: "/etc/cdi/nvidia.yaml".into(),
            devices: names.iter().map(|n| n.to_string()).collect(),
        }
    }

    fn gpu(index: u32, uuid: &str) -> GpuCandidate {
        GpuCandidate {
            index,
            uuid: uuid.into(),
            memory_used_bytes: None,
        }
    }

    #[test]
    fn auto_takes_cdi_only_where_nothing_serves_nvidia_requests_and_a_spec_is_read() {
        let dirs = vec!["/etc/cdi".to_string()];
        let s = || Some(spec(&["0"]));
        use GpuRequests::*;
        assert_eq!(choose(Auto, true, &dirs, s()).unwrap(), GpuWay::Nvidia);
        assert_eq!(
            choose(Auto, false, &dirs, s()).unwrap(),
            GpuWay::Cdi(spec(&["0"]))
        );
        assert_eq!(choose(Auto, false, &dirs, None).unwrap(), GpuWay::Nvidia);
        assert_eq!(choose(Auto, false, &[], s()).unwrap(), GpuWay::Nvidia);
        assert_eq!(choose(Nvidia, false, &dirs, s()).unwrap(), GpuWay::Nvidia);
        assert_eq!(
            choose(Cdi, true, &dirs, s()).unwrap(),
            GpuWay::Cdi(spec(&["0"]))
        );
        let off = choose(Cdi, true, &[], s()).unwrap_err().to_string();
        assert!(
            off.contains("CDI off") && off.contains("daemon.json"),
            "{off}"
        );
        let none = choose(Cdi, true, &dirs, None).unwrap_err().to_string();
        assert!(
            none.contains("/etc/cdi") && none.contains("nvidia-ctk cdi generate"),
            "{none}"
        );
    }

    #[test]
    fn cdi_names_each_gpu_by_uuid_else_by_index() {
        let gpus = [gpu(0, "GPU-a"), gpu(1, "GPU-b"), gpu(2, "GPU-c")];
        let ids = |way: &GpuWay, u: &[&str]| {
            let u: Vec<String> = u.iter().map(|s| s.to_string()).collect();
            device_requests(way, &u, &gpus).map(|r| {
                let r = r.unwrap().remove(0);
                (r.driver.unwrap(), r.device_ids.unwrap())
            })
        };
        let by_uuid = GpuWay::Cdi(spec(&["0", "GPU-b", "all"]));
        assert_eq!(
            ids(&by_uuid, &["GPU-a", "GPU-b"]).unwrap(),
            (
                "cdi".to_string(),
                vec![
                    "nvidia.com/gpu=0".to_string(),
                    "nvidia.com/gpu=GPU-b".to_string()
                ]
            )
        );
        let e = ids(&by_uuid, &["GPU-c"]).unwrap_err().to_string();
        assert!(
            e.contains("no device for GPU 2 (GPU-c)") && e.contains("nvidia-ctk"),
            "{e}"
        );
        assert_eq!(
            ids(&GpuWay::Nvidia, &["GPU-c"]).unwrap(),
            ("nvidia".to_string(), vec!["GPU-c".to_string()])
        );
        assert!(device_requests(&by_uuid, &[], &gpus).unwrap().is_none());
    }

    #[test]
    fn the_dockerd_that_serves_the_endpoint_is_the_one_asked() {
        let argv = |s: &str| s.split(' ').map(String::from).collect::<Vec<_>>();
        let systemd =
            argv("/usr/sbin/dockerd -H fd:// --containerd=/run/containerd/containerd.sock");
        let plain = argv("dockerd --add-runtime nvidia=/usr/sbin/runc");
        let rig = argv("dockerd --host unix:///tmp/rig/docker.sock --data-root /tmp/rig/data");
        let eq = argv("dockerd --host=unix:///tmp/a.sock -H=tcp://127.0.0.1:2375");
        for e in ["unix:///var/run/docker.sock", "/run/docker.sock"] {
            assert!(serves(&systemd, e) && serves(&plain, e), "{e}");
            assert!(!serves(&rig, e), "{e}");
        }
        assert!(serves(&rig, "unix:///tmp/rig/docker.sock"));
        assert!(!serves(&plain, "unix:///tmp/rig/docker.sock"));
        assert!(serves(&eq, "unix:///tmp/a.sock") && serves(&eq, "tcp://127.0.0.1:2375"));
        assert!(!serves(&eq, "unix:///var/run/docker.sock"));
    }

    #[test]
    fn nvidia_specs_are_found_in_yaml_and_json_and_nothing_else() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        let dirs = vec![
            "/nonexistent/cdi".to_string(),
            a.path().display().to_string(),
            b.path().display().to_string(),
        ];
        assert_eq!(nvidia_spec(&dirs), None, "empty folders");
        std::fs::write(
            a.path().join("fpga.yaml"),
            "cdiVersion: 0.5.0\nkind: vendor.com/fpga\n",
        )
        .unwrap();
        std::fs::write(a.path().join("notes.txt"), "kind: nvidia.com/gpu\n").unwrap();
        std::fs::write(
            a.path().join("broken.yaml"),
            "kind: nvidia.com/gpu\n  - : [\n",
        )
        .unwrap();
        assert_eq!(
            nvidia_spec(&dirs),
            None,
            "another kind, not a spec, unparsable"
        );
        let json = b.path().join("nvidia.json");
        std::fs::write(
            &json,
            r#"{"cdiVersion":"0.5.0","kind":"nvidia.com/gpu","devices":[{"name":"0","containerEdits":{}},{"name":"all"}]}"#,
        )
        .unwrap();
        let found = nvidia_spec(&dirs).unwrap();
        assert_eq!(found.path, json);
        assert_eq!(found.devices, ["0", "all"].map(String::from).into());
        std::fs::remove_file(&json).unwrap();
        let yaml = b.path().join("nvidia.yaml");
        std::fs::write(
            &yaml,
            "---\ncdiVersion: \"0.5.0\"\nkind: nvidia.com/gpu\ndevices:\n- name: GPU-x\n  containerEdits: {}\n",
        )
        .unwrap();
        assert_eq!(
            nvidia_spec(&dirs).unwrap(),
            NvidiaSpec {
                path: yaml,
                devices: ["GPU-x".to_string()].into()
            }
        );
    }
}
