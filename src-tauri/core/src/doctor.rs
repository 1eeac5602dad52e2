//! `gpudeck doctor`: is this host ready? Each check says what it saw and, when it is not fine,
//! one line that fixes it.

use std::path::Path;

use serde::Serialize;
use ts_rs::TS;

use crate::docker::{DockerAdapter, EngineInfo};
use crate::gpu::requests::{self, on_path, GpuWay, Toolkit};
use crate::gpu::NvmlSource;
use crate::settings::{GpuRequests, Settings};
use crate::CoreError;

#[derive(
    Debug, Clone, Copy, Serialize, serde::Deserialize, TS, schemars::JsonSchema, PartialEq, Eq,
)]
#[serde(rename_all = "lowercase")]
pub enum CheckStatus {
    Ok,
    Warn,
    Fail,
}

#[derive(Debug, Clone, Serialize, serde::Deserialize, TS, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DoctorCheck {
    pub id: String,
    pub status: CheckStatus,
    pub summary: String,
    pub fix: Option<String>,
}

fn check(id: &str, status: CheckStatus, summary: String, fix: Option<&str>) -> DoctorCheck {
    DoctorCheck {
        id: id.into(),
        status,
        summary,
        fix: fix.map(str::to_string),
    }
}

/// The host's distribution family, from `/etc/os-release`: fix texts name its own packages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Distro {
    Debian,
    Ubuntu,
    Fedora,
    Suse,
    Arch,
    Other,
}

pub fn distro_of(os_release: &str) -> Distro {
    let field = |k: &str| -> String {
        os_release
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{k}=")))
            .map(|v| v.trim().trim_matches('"').to_ascii_lowercase())
            .unwrap_or_default()
    };
    let id = field("ID");
    let ids = format!("{id} {}", field("ID_LIKE"));
    let has = |w: &str| ids.split_whitespace().any(|x| x == w);
    if id == "ubuntu" || has("ubuntu") {
        Distro::Ubuntu
    } else if has("debian") {
        Distro::Debian
    } else if has("fedora") || has("rhel") || has("centos") {
        Distro::Fedora
    } else if has("suse") || ids.contains("opensuse") {
        Distro::Suse
    } else if has("arch") {
        Distro::Arch
    } else {
        Distro::Other
    }
}

/// What a fix installs.
#[derive(Debug, Clone, Copy)]
pub enum Need {
    Docker,
    NvidiaDriver,
    ContainerToolkit,
    Xfsprogs,
}

/// How to install `need` on `d`, in its own package manager's words.
pub fn install_hint(d: Distro, need: Need) -> String {
    let (pm, docker, driver) = match d {
        Distro::Debian => (
            "sudo apt-get install",
            "docker.io (or docker-ce from Docker's repository)",
            "nvidia-driver (non-free)",
        ),
        Distro::Ubuntu => (
            "sudo apt-get install",
            "docker.io (or docker-ce from Docker's repository)",
            "nvidia-driver-<version> (`sudo ubuntu-drivers install` picks it)",
        ),
        Distro::Fedora => (
            "sudo dnf install",
            "moby-engine (or docker-ce from Docker's repository)",
            "akmod-nvidia (RPM Fusion)",
        ),
        Distro::Suse => (
            "sudo zypper install",
            "docker",
            "the NVIDIA driver from NVIDIA's repository (nvidia-open-driver-G06-signed-kmp)",
        ),
        Distro::Arch => ("sudo pacman -S", "docker", "nvidia"),
        Distro::Other => (
            "install",
            "the Docker engine from your distribution",
            "the NVIDIA driver",
        ),
    };
    match need {
        Need::Docker => format!("{pm} {docker}, then `sudo systemctl start docker` (or set DOCKER_HOST)"),
        Need::NvidiaDriver => format!("{pm} {driver}, or set GPUDECK_NVML_LIB"),
        Need::ContainerToolkit => format!("{pm} nvidia-container-toolkit (NVIDIA's repository), then `sudo nvidia-ctk runtime configure --runtime=docker && sudo systemctl restart docker`"),
        Need::Xfsprogs => format!("{pm} xfsprogs (xfs_quota sets the limits)"),
    }
}

fn host_distro() -> Distro {
    distro_of(
        &std::fs::read_to_string("/etc/os-release")
            .or_else(|_| std::fs::read_to_string("/usr/lib/os-release"))
            .unwrap_or_default(),
    )
}

/// Every check, of the service's own data folder (`gpudeckd --data-dir`), engine and NVML.
pub async fn run(
    settings: &Settings,
    data_dir: &Path,
    nvml_lib: Option<&Path>,
) -> Vec<DoctorCheck> {
    let endpoint = settings.docker_endpoint.as_deref();
    let publish_address = settings.publish_address.as_deref();
    let distro = host_distro();
    let mut out = Vec::new();
    let engine = match DockerAdapter::new(endpoint) {
        Ok(a) => match a.connect().await {
            Ok(a) => a.info().await,
            Err(e) => Err(e),
        },
        Err(e) => Err(e),
    };
    out.push(match &engine {
        Ok(i) => check(
            "docker",
            CheckStatus::Ok,
            format!(
                "Docker {} at {} (API {})",
                i.server_version.as_deref().unwrap_or("?"),
                i.endpoint,
                i.api_version
            ),
            None,
        ),
        Err(e) => check(
            "docker",
            CheckStatus::Fail,
            e.to_string(),
            Some(&install_hint(distro, Need::Docker)),
        ),
    });
    out.push(nvml_check(nvml_lib, distro));
    out.push(container_toolkit_check(
        engine.as_ref().ok(),
        settings.gpu_requests,
        distro,
    ));
    out.push(storage_driver_check(engine.as_ref().ok()));
    out.push(volume_limits_check(&data_dir.join("volumes"), distro));
    out.push(firewall_check(
        &std::fs::read_to_string("/etc/ufw/ufw.conf").unwrap_or_default(),
        publish_address,
    ));
    out
}

/// ufw on: Docker's own iptables rules let published ports through whatever ufw says.
pub fn firewall_check(ufw_conf: &str, publish_address: Option<&str>) -> DoctorCheck {
    let ufw_on = ufw_conf
        .lines()
        .any(|l| l.trim().eq_ignore_ascii_case("ENABLED=yes"));
    let everywhere = publish_address.is_none_or(|a| a == "0.0.0.0" || a == "::");
    match (ufw_on, everywhere) {
        (true, true) => check(
            "firewall",
            CheckStatus::Warn,
            "ufw is on, and published container ports bind to every interface: Docker's rules let them through whatever ufw says".into(),
            Some("set Settings → publish address to 127.0.0.1 to keep them on this machine, or add DOCKER-USER rules"),
        ),
        (_, false) => check(
            "firewall",
            CheckStatus::Ok,
            format!("published container ports bind to {}", publish_address.unwrap_or_default()),
            None,
        ),
        (false, true) => check(
            "firewall",
            CheckStatus::Ok,
            "published container ports bind to every interface (no ufw; Docker's rules decide)".into(),
            None,
        ),
    }
}

fn nvml_check(lib: Option<&Path>, distro: Distro) -> DoctorCheck {
    match NvmlSource::open(lib).and_then(|s| s.sample().map(|r| (s.library(), r))) {
        Ok((library, raw)) => check(
            "nvml",
            if raw.gpus.is_empty() {
                CheckStatus::Warn
            } else {
                CheckStatus::Ok
            },
            format!(
                "NVIDIA driver {} (CUDA {}), {} GPU(s), via {library}",
                raw.driver_version.as_deref().unwrap_or("?"),
                raw.cuda_driver_version.as_deref().unwrap_or("?"),
                raw.gpus.len()
            ),
            raw.gpus
                .is_empty()
                .then_some("check `nvidia-smi`: the driver sees no GPU"),
        ),
        Err(e) => check(
            "nvml",
            CheckStatus::Fail,
            e.to_string(),
            Some(&install_hint(distro, Need::NvidiaDriver)),
        ),
    }
}

fn container_toolkit_check(
    engine: Option<&EngineInfo>,
    setting: GpuRequests,
    distro: Distro,
) -> DoctorCheck {
    let unknown = EngineInfo::default();
    let e = engine.unwrap_or(&unknown);
    let fix = install_hint(distro, Need::ContainerToolkit);
    // CDI (Docker 25+): GPUs given as `--device nvidia.com/gpu=…` count as held like any other.
    let cdi = if e.cdi_spec_dirs.is_empty() {
        String::new()
    } else {
        format!(
            "; CDI on (specs in {}): GPUs given as nvidia.com/gpu=… count as held",
            e.cdi_spec_dirs.join(", ")
        )
    };
    // Each read once: the engine's PATH from /proc, the spec folders.
    let kit = requests::toolkit(e);
    let spec = requests::nvidia_spec(&e.cdi_spec_dirs);
    let way = requests::choose(setting, kit.is_some(), &e.cdi_spec_dirs, spec.clone());
    let mut c = match (kit, way) {
        // The reason alone: nothing is being changed here.
        (_, Err(CoreError::GpuRequests(why))) => {
            check("nvidia_container", CheckStatus::Fail, why, None)
        }
        (_, Err(err)) => check("nvidia_container", CheckStatus::Fail, err.to_string(), None),
        (Some(kit), Ok(way)) => {
            let seen = match kit {
                Toolkit::Runtime => "the Docker engine has the \"nvidia\" runtime".to_string(),
                Toolkit::Hook(p) => format!(
                    "{} found: the engine passes GPU device requests to it",
                    p.display()
                ),
            };
            let summary = format!("{seen}; {}", requests::describe(&way));
            check("nvidia_container", CheckStatus::Ok, summary, None)
        }
        (None, Ok(way @ GpuWay::Cdi(_))) => check(
            "nvidia_container",
            CheckStatus::Ok,
            format!(
                "no NVIDIA container hook or runtime; {}",
                requests::describe(&way)
            ),
            None,
        ),
        (None, Ok(GpuWay::Nvidia)) => {
            match spec {
                // Only where the admin chose the nvidia driver's requests.
                Some(spec) => check(
                    "nvidia_container",
                    CheckStatus::Fail,
                    format!(
                        "no NVIDIA container hook or runtime, and GPU requests are set to the nvidia driver's, though the engine reads a CDI spec for NVIDIA GPUs ({})",
                        spec.path.display()
                    ),
                    Some("set GPU requests to Automatic or CDI in Settings"),
                ),
                None => check(
                    "nvidia_container",
                    CheckStatus::Fail,
                    "no NVIDIA container hook or runtime: containers cannot be given GPUs".into(),
                    Some(&fix),
                ),
            }
        }
    };
    c.summary.push_str(&cdi);
    c
}

/// Which way new versions carry files on this engine: a copy of the container's upper directory
/// on overlay2 (see `replicaset::copy`), through the Docker API everywhere else (the archive
/// way, or the layer way where a tar stream cannot say what the container did).
fn storage_driver_check(engine: Option<&EngineInfo>) -> DoctorCheck {
    match engine.and_then(|i| i.storage_driver.clone().map(|d| (d, i.containerd_store))) {
        Some((d, containerd)) => check(
            "storage_driver",
            CheckStatus::Ok,
            format!(
                "storage driver {d}{}: {}",
                if containerd {
                    " (containerd image store)"
                } else {
                    ""
                },
                if d == "overlay2" && !containerd && crate::replicaset::copy::enabled() {
                    "new versions get a copy of the old container's upper directory; the old version's files are kept as a folder (files unchanged since the version before stored once)"
                } else {
                    if crate::replicaset::archive::enabled() {
                        "new versions carry files through the Docker API: what the old container added and changed is written into the new one before it starts, and kept as a folder (files unchanged since the version before stored once); a container that deleted image files (or changed more than 64 separate paths) is committed to a snapshot image instead, one layer a version"
                    } else {
                        "new versions carry files through the Docker API (the old container committed to a snapshot image, one layer a version)"
                    }
                }
            ),
            None,
        ),
        None => check(
            "storage_driver",
            CheckStatus::Warn,
            "unknown: the Docker engine is unreachable".into(),
            Some("start the Docker engine, then run doctor again"),
        ),
    }
}

/// The mount that holds `path`, from `/proc/self/mountinfo` text: (mount point, fs type, options).
pub fn mount_of<'a>(mountinfo: &'a str, path: &str) -> Option<(&'a str, &'a str, String)> {
    mountinfo
        .lines()
        .filter_map(|l| {
            let (pre, post) = l.split_once(" - ")?;
            let f: Vec<&str> = pre.split(' ').collect();
            let g: Vec<&str> = post.split(' ').collect();
            let point = *f.get(4)?;
            let opts = format!("{},{}", f.get(5)?, g.get(2).copied().unwrap_or(""));
            let inside = path == point || point == "/" || path.starts_with(&format!("{point}/"));
            inside.then_some((point, *g.first()?, opts))
        })
        .max_by_key(|(p, _, _)| p.len())
}

/// Whether a mount with these options enforces XFS project quotas.
pub fn has_project_quota(fs: &str, opts: &str) -> bool {
    fs == "xfs" && opts.split(',').any(|o| matches!(o, "prjquota" | "pquota"))
}

/// Where volumes go (the data folder's `volumes/`) and which kind of limit they get there.
fn volume_limits_check(folder: &Path, distro: Distro) -> DoctorCheck {
    let folder = folder.to_path_buf();
    // The folder itself may not exist yet: its nearest existing parent decides.
    let probe = folder
        .ancestors()
        .find_map(|p| p.canonicalize().ok())
        .unwrap_or_else(|| folder.clone());
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let (fs, opts) = mount_of(&mountinfo, &probe.display().to_string())
        .map(|(_, fs, o)| (fs.to_string(), o))
        .unwrap_or_default();
    let pquota = has_project_quota(&fs, &opts);
    let xfs_tools = on_path("xfs_quota").is_some() && on_path("xfs_io").is_some();
    let loop_ok = Path::new("/dev/loop-control").exists() && on_path("losetup").is_some();
    let new_kind = if pquota {
        "XFS project quota (native, enforced by the kernel, kept across reboots)"
    } else {
        "image file (ext4 on a loop device, re-attached at start)"
    };
    let summary = format!(
        "{} is on {} ({}); size limits available: new volumes get {new_kind}",
        folder.display(),
        if fs.is_empty() { "?" } else { &fs },
        if pquota {
            "project quota on"
        } else {
            "no project quota"
        },
    );
    match (pquota, xfs_tools, loop_ok) {
        (true, true, _) | (false, _, true) => check("volume_limits", CheckStatus::Ok, summary, None),
        (true, false, _) => check(
            "volume_limits",
            CheckStatus::Fail,
            summary,
            Some(&install_hint(distro, Need::Xfsprogs)),
        ),
        (false, _, false) => check(
            "volume_limits",
            CheckStatus::Warn,
            summary,
            Some("mount an XFS file system with prjquota on the volumes folder, or install mount + e2fsprogs and run GPU Deck as root"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MI: &str = "\
22 1 254:0 / / rw,relatime - ext4 /dev/vda rw
30 22 0:25 / /proc rw,nosuid - proc proc rw
40 22 254:1 / /var/lib/docker rw,relatime - xfs /dev/vdb rw,attr2,prjquota
41 22 254:2 / /var/lib/dockerx rw - ext4 /dev/vdc rw
";

    #[test]
    fn longest_mount_prefix_wins() {
        let (p, fs, o) = mount_of(MI, "/var/lib/docker").unwrap();
        assert_eq!((p, fs), ("/var/lib/docker", "xfs"));
        assert!(o.contains("prjquota"));
        assert_eq!(mount_of(MI, "/var/lib/docker/volumes").unwrap().1, "xfs");
        assert_eq!(mount_of(MI, "/var/lib/dockerx").unwrap().1, "ext4");
        assert_eq!(mount_of(MI, "/home").unwrap().0, "/");
    }

    #[test]
    fn fixes_name_the_distributions_own_packages() {
        let os = |s: &str| distro_of(s);
        assert_eq!(os("ID=debian\nVERSION_ID=\"12\""), Distro::Debian);
        assert_eq!(os("ID=ubuntu\nID_LIKE=debian"), Distro::Ubuntu);
        assert_eq!(
            os("ID=linuxmint\nID_LIKE=\"ubuntu debian\""),
            Distro::Ubuntu
        );
        assert_eq!(
            os("ID=\"rocky\"\nID_LIKE=\"rhel centos fedora\""),
            Distro::Fedora
        );
        assert_eq!(
            os("ID=\"opensuse-leap\"\nID_LIKE=\"suse opensuse\""),
            Distro::Suse
        );
        assert_eq!(os("ID=arch"), Distro::Arch);
        assert_eq!(os(""), Distro::Other);
        assert!(
            install_hint(Distro::Fedora, Need::Docker).starts_with("sudo dnf install moby-engine")
        );
        assert!(install_hint(Distro::Debian, Need::Docker)
            .starts_with("sudo apt-get install docker.io"));
        assert!(install_hint(Distro::Arch, Need::Xfsprogs).starts_with("sudo pacman -S xfsprogs"));
        assert!(install_hint(Distro::Ubuntu, Need::NvidiaDriver).contains("ubuntu-drivers"));
    }

    #[test]
    fn ufw_and_published_ports() {
        let on = "# comment\nENABLED=yes\nLOGLEVEL=low\n";
        assert_eq!(firewall_check(on, None).status, CheckStatus::Warn);
        assert_eq!(
            firewall_check(on, Some("0.0.0.0")).status,
            CheckStatus::Warn
        );
        assert_eq!(
            firewall_check(on, Some("127.0.0.1")).status,
            CheckStatus::Ok
        );
        assert_eq!(firewall_check("ENABLED=no\n", None).status, CheckStatus::Ok);
        assert_eq!(firewall_check("", None).status, CheckStatus::Ok);
    }

    #[test]
    fn project_quota_needs_xfs_and_enforcement() {
        assert!(has_project_quota("xfs", "rw,relatime,rw,attr2,prjquota"));
        assert!(has_project_quota("xfs", "rw,pquota"));
        assert!(!has_project_quota("xfs", "rw,attr2,pqnoenforce"));
        assert!(!has_project_quota("ext4", "rw,prjquota"));
        assert!(!has_project_quota("xfs", "rw,attr2,noquota"));
    }
}
