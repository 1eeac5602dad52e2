//! Which container owns a host process: `/proc/<pid>/cgroup` names the container's cgroup, whose
//! last part carries the 64-hex container id under every common layout (cgroupfs v1/v2, systemd
//! `docker-<id>.scope`, containerd/CRI, podman `libpod-<id>`). This needs no `--pid=host`.

use std::path::Path;

/// The container id in the text of a `/proc/<pid>/cgroup` file, if the process is in a container.
pub fn container_id_from_cgroup(text: &str) -> Option<String> {
    text.lines()
        .filter_map(|line| line.splitn(3, ':').nth(2))
        .find_map(container_id_from_path)
}

fn container_id_from_path(path: &str) -> Option<String> {
    path.split('/').rev().find_map(|part| {
        let part = part.strip_suffix(".scope").unwrap_or(part);
        let id = part.rsplit(['-', ':']).next().unwrap_or(part);
        (id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit())).then(|| id.to_string())
    })
}

/// Reads `<proc_root>/<pid>/cgroup`; `None` when the process is gone or in no container.
pub fn container_id_of_pid(proc_root: &Path, pid: u32) -> Option<String> {
    let text = std::fs::read_to_string(proc_root.join(pid.to_string()).join("cgroup")).ok()?;
    container_id_from_cgroup(&text)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "3f4e5d6c7b8a99887766554433221100ffeeddccbbaa00112233445566778899";

    #[test]
    fn finds_ids_in_every_common_layout() {
        let cases = [
            format!("12:memory:/docker/{ID}\n11:cpu:/docker/{ID}\n"),
            format!("0::/system.slice/docker-{ID}.scope\n"),
            format!("0::/kubepods/besteffort/pod1234/cri-containerd-{ID}.scope\n"),
            format!("0::/machine.slice/libpod-{ID}.scope/container\n"),
            format!("1:name=systemd:/docker/{ID}\n0::/\n"),
        ];
        for c in cases {
            assert_eq!(container_id_from_cgroup(&c).as_deref(), Some(ID), "{c}");
        }
    }

    #[test]
    fn host_processes_have_none() {
        for c in [
            "0::/user.slice/user-1000.slice/session-2.scope\n",
            "0::/\n",
            "12:memory:/\n",
            "",
            "0::/docker/abc\n",
        ] {
            assert_eq!(container_id_from_cgroup(c), None, "{c}");
        }
    }

    #[test]
    fn reads_a_real_proc_tree_and_tolerates_vanished_pids() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("42")).unwrap();
        std::fs::write(dir.path().join("42/cgroup"), format!("0::/docker/{ID}\n")).unwrap();
        assert_eq!(container_id_of_pid(dir.path(), 42).as_deref(), Some(ID));
        assert_eq!(container_id_of_pid(dir.path(), 43), None);
        // This test process itself, through the real /proc: the same answer as its own cgroup
        // file read directly (the host: none; inside CI's container: that container's id).
        let own = std::fs::read_to_string("/proc/self/cgroup").unwrap();
        assert_eq!(
            container_id_of_pid(Path::new("/proc"), std::process::id()),
            container_id_from_cgroup(&own)
        );
    }
}
