//! Whether a running container's files may be taken while it is frozen, with nothing lost that a
//! graceful stop would have kept.
//!
//! A graceful stop sends the container's stop signal (SIGTERM unless the image names another)
//! and waits. A workload that handles that signal may write on its way down (a checkpoint), and
//! files taken after the stop hold those writes; that is why the layer way stops first. A
//! workload in which no process handles, ignores or blocks the signal runs no code of its own on
//! it: each process just ends, as under SIGKILL. Its files are final the moment it is frozen, so
//! they can be committed frozen (as `docker commit` does) and the container killed: the same
//! files, without the stop's wait, and the kill can overlap the next version's creation.
//!
//! The masks are read from procfs (`SigCgt`, `SigIgn`, each thread's `SigBlk`) while the
//! container is frozen, so no process can change them, start or fork in between. Every process in
//! the container's PID namespace counts (a `docker exec` session too), and every descendant of
//! one (a nested namespace); only Docker's init at PID 1, which just passes the signal on, is
//! passed over. Anything that cannot be read counts as reacting: the graceful stop is kept.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::path::Path;

/// The number of a stop signal as Docker names it ("SIGTERM", "TERM", "15", "SIGRTMIN+3");
/// `None` (no stop signal set) is SIGTERM. `None` back for a name this does not know.
pub fn signal_number(name: Option<&str>) -> Option<i32> {
    let Some(name) = name.map(str::trim).filter(|n| !n.is_empty()) else {
        return Some(libc::SIGTERM);
    };
    if let Ok(n) = name.parse::<i32>() {
        return (1..=64).contains(&n).then_some(n);
    }
    let upper = name.to_ascii_uppercase();
    let bare = upper.strip_prefix("SIG").unwrap_or(&upper);
    let (rtmin, rtmax) = (libc::SIGRTMIN(), libc::SIGRTMAX());
    if let Some(k) = bare.strip_prefix("RTMIN") {
        let off = if k.is_empty() {
            0
        } else {
            k.strip_prefix('+')?.parse().ok()?
        };
        return (rtmin + off <= rtmax).then_some(rtmin + off);
    }
    if let Some(k) = bare.strip_prefix("RTMAX") {
        let off: i32 = if k.is_empty() {
            0
        } else {
            k.strip_prefix('-')?.parse().ok()?
        };
        return (rtmax - off >= rtmin).then_some(rtmax - off);
    }
    let known = [
        ("HUP", libc::SIGHUP),
        ("INT", libc::SIGINT),
        ("QUIT", libc::SIGQUIT),
        ("ILL", libc::SIGILL),
        ("TRAP", libc::SIGTRAP),
        ("ABRT", libc::SIGABRT),
        ("IOT", libc::SIGIOT),
        ("BUS", libc::SIGBUS),
        ("FPE", libc::SIGFPE),
        ("KILL", libc::SIGKILL),
        ("USR1", libc::SIGUSR1),
        ("SEGV", libc::SIGSEGV),
        ("USR2", libc::SIGUSR2),
        ("PIPE", libc::SIGPIPE),
        ("ALRM", libc::SIGALRM),
        ("TERM", libc::SIGTERM),
        ("STKFLT", libc::SIGSTKFLT),
        ("CHLD", libc::SIGCHLD),
        ("CONT", libc::SIGCONT),
        ("STOP", libc::SIGSTOP),
        ("TSTP", libc::SIGTSTP),
        ("TTIN", libc::SIGTTIN),
        ("TTOU", libc::SIGTTOU),
        ("URG", libc::SIGURG),
        ("XCPU", libc::SIGXCPU),
        ("XFSZ", libc::SIGXFSZ),
        ("VTALRM", libc::SIGVTALRM),
        ("PROF", libc::SIGPROF),
        ("WINCH", libc::SIGWINCH),
        ("IO", libc::SIGIO),
        ("POLL", libc::SIGPOLL),
        ("PWR", libc::SIGPWR),
        ("SYS", libc::SIGSYS),
    ];
    known.iter().find(|(n, _)| *n == bare).map(|(_, s)| *s)
}

/// A hexadecimal mask line (`SigCgt:\t0000000000004002`) of a procfs status text.
pub fn mask(status: &str, key: &str) -> Option<u64> {
    u64::from_str_radix(field(status, key)?, 16).ok()
}

fn bit(sig: i32) -> u64 {
    1u64 << (sig - 1)
}

/// Whether a process may run code of its own on `sig` (or outlive it): it handles or ignores
/// it, or every one of its threads blocks it. SIGKILL and SIGSTOP cannot be handled.
pub fn acts_on(sig: i32, caught: u64, ignored: u64, blocked: &[u64]) -> bool {
    if sig == libc::SIGKILL {
        return false;
    }
    let b = bit(sig);
    caught & b != 0
        || ignored & b != 0
        || (!blocked.is_empty() && blocked.iter().all(|m| m & b != 0))
}

fn status_of(proc_root: &Path, pid: u32) -> Option<String> {
    fs::read_to_string(proc_root.join(pid.to_string()).join("status")).ok()
}

fn field<'a>(status: &'a str, key: &str) -> Option<&'a str> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .map(str::trim)
}

/// Whether one process may act on `sig` (unreadable: yes).
fn process_acts_on(proc_root: &Path, pid: u32, sig: i32) -> bool {
    let Some(st) = status_of(proc_root, pid) else {
        return true;
    };
    // A zombie runs nothing.
    if field(&st, "State").is_some_and(|s| s.starts_with('Z')) {
        return false;
    }
    let (Some(caught), Some(ignored)) = (mask(&st, "SigCgt"), mask(&st, "SigIgn")) else {
        return true;
    };
    let tasks = proc_root.join(pid.to_string()).join("task");
    let Ok(entries) = fs::read_dir(&tasks) else {
        return true;
    };
    let mut blocked = vec![];
    for e in entries.flatten() {
        match fs::read_to_string(e.path().join("status"))
            .ok()
            .and_then(|t| mask(&t, "SigBlk"))
        {
            Some(m) => blocked.push(m),
            None => return true,
        }
    }
    acts_on(sig, caught, ignored, &blocked)
}

/// The processes of a container whose PID 1 is host process `pid1`: those in its PID namespace
/// and their descendants. `None` when that namespace cannot be read.
fn members(proc_root: &Path, pid1: u32) -> Option<Vec<u32>> {
    let ns = |pid: u32| fs::read_link(proc_root.join(pid.to_string()).join("ns/pid")).ok();
    let want = ns(pid1)?;
    let mut parent: HashMap<u32, u32> = HashMap::new();
    let mut inside: HashSet<u32> = HashSet::new();
    for e in fs::read_dir(proc_root).ok()?.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let Some(st) = status_of(proc_root, pid) else {
            continue; // gone meanwhile: not one of the frozen processes
        };
        if let Some(pp) = field(&st, "PPid").and_then(|v| v.parse().ok()) {
            parent.insert(pid, pp);
        }
        if ns(pid).as_ref() == Some(&want) {
            inside.insert(pid);
        }
    }
    let under = |mut p: u32| {
        for _ in 0..4096 {
            if inside.contains(&p) {
                return true;
            }
            match parent.get(&p) {
                Some(&pp) if pp != 0 && pp != p => p = pp,
                _ => return false,
            }
        }
        false
    };
    let mut all: Vec<u32> = parent.keys().copied().filter(|&p| under(p)).collect();
    all.sort_unstable();
    Some(all)
}

/// Whether no process of the frozen container `id`, whose first process is host process `pid1`,
/// would run code of its own on its stop signal. That first process must be Docker's init (GPU
/// Deck always asks for it), PID 1 of its namespace and in the container's cgroup: a PID that
/// means something else here (a rootless engine's own namespace) keeps the graceful stop.
pub fn nothing_acts_on_stop(id: &str, pid1: u32, stop_signal: Option<&str>) -> bool {
    nothing_acts_on(Path::new("/proc"), id, pid1, stop_signal)
}

/// Whether `pid1` is Docker's init, PID 1 of its namespace, in container `id`'s cgroup.
fn is_init_of(proc_root: &Path, id: &str, pid1: u32) -> bool {
    let Some(st) = status_of(proc_root, pid1) else {
        return false;
    };
    let init = matches!(field(&st, "Name"), Some("docker-init" | "tini"));
    let first = field(&st, "NSpid").and_then(|v| v.split_whitespace().last()) == Some("1");
    let cgroup = fs::read_to_string(proc_root.join(pid1.to_string()).join("cgroup"))
        .is_ok_and(|c| id.len() >= 12 && c.contains(id));
    init && first && cgroup
}

fn nothing_acts_on(proc_root: &Path, id: &str, pid1: u32, stop_signal: Option<&str>) -> bool {
    let Some(sig) = signal_number(stop_signal) else {
        return false;
    };
    if !is_init_of(proc_root, id, pid1) {
        return false;
    }
    let Some(all) = members(proc_root, pid1) else {
        return false;
    };
    // Docker's init only passes the signal on to its child.
    all.iter()
        .all(|&pid| pid == pid1 || !process_acts_on(proc_root, pid, sig))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::{Child, Command};
    use std::time::Duration;

    #[test]
    fn stop_signal_names() {
        assert_eq!(signal_number(None), Some(libc::SIGTERM));
        assert_eq!(signal_number(Some("")), Some(libc::SIGTERM));
        assert_eq!(signal_number(Some("SIGTERM")), Some(libc::SIGTERM));
        assert_eq!(signal_number(Some("int")), Some(libc::SIGINT));
        assert_eq!(signal_number(Some("9")), Some(libc::SIGKILL));
        assert_eq!(
            signal_number(Some("SIGRTMIN+3")),
            Some(libc::SIGRTMIN() + 3)
        );
        assert_eq!(signal_number(Some("RTMAX-1")), Some(libc::SIGRTMAX() - 1));
        assert_eq!(signal_number(Some("SIGNOPE")), None);
        assert_eq!(signal_number(Some("0")), None);
        assert_eq!(signal_number(Some("65")), None);
        assert_eq!(signal_number(Some("RTMIN+99")), None);
    }

    #[test]
    fn masks_and_dispositions() {
        let st = "Name:\tx\nSigBlk:\t0000000000000000\nSigIgn:\t0000000000001000\nSigCgt:\t0000000000004002\n";
        assert_eq!(mask(st, "SigCgt"), Some(0x4002));
        assert_eq!(mask(st, "SigIgn"), Some(0x1000));
        assert_eq!(mask(st, "SigQ"), None);
        let term = libc::SIGTERM;
        // SIGTERM is bit 14 (0x4000): handled.
        assert!(acts_on(term, 0x4002, 0, &[0]));
        assert!(!acts_on(term, 0x0002, 0, &[0]));
        assert!(acts_on(term, 0, 0x4000, &[0]));
        // Blocked by every thread: waited for (sigwait, signalfd); by one of two: it ends.
        assert!(acts_on(term, 0, 0, &[0x4000, 0x4000]));
        assert!(!acts_on(term, 0, 0, &[0x4000, 0]));
        assert!(!acts_on(libc::SIGKILL, u64::MAX, u64::MAX, &[u64::MAX]));
    }

    struct Kid(Child);
    impl Drop for Kid {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    fn sh(script: &str) -> Kid {
        let k = Kid(Command::new("sh").args(["-c", script]).spawn().unwrap());
        // Let the shell install its traps.
        std::thread::sleep(Duration::from_millis(300));
        k
    }

    /// Real processes, read through the real procfs.
    #[test]
    fn real_processes() {
        let p = Path::new("/proc");
        let plain = sh("exec sleep 30");
        let trapped = sh("trap 'echo bye' TERM; sleep 30 & wait");
        let ignoring = sh("trap '' TERM; exec sleep 30");
        let term = libc::SIGTERM;
        assert!(!process_acts_on(p, plain.0.id(), term));
        assert!(process_acts_on(p, trapped.0.id(), term));
        assert!(process_acts_on(p, ignoring.0.id(), term));
        // A different stop signal that the trap does not cover.
        assert!(!process_acts_on(p, trapped.0.id(), libc::SIGUSR1));
        assert!(
            process_acts_on(p, 999_999_999, term),
            "unreadable counts as acting"
        );
        // The whole tree of a process: the trapping shell's background sleep is its descendant.
        let tree = members(p, trapped.0.id()).unwrap();
        assert!(tree.contains(&trapped.0.id()), "{tree:?}");
        // All of this test's processes share one PID namespace, so the tree is all of them,
        // this test's own process (which handles nothing) included.
        assert!(tree.contains(&std::process::id()));
        // Not Docker's init of a container: never taken for one.
        assert!(!is_init_of(p, "0123456789abcdef", plain.0.id()));
        assert!(!nothing_acts_on(p, "0123456789abcdef", plain.0.id(), None));
    }
}
