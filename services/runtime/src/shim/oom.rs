//! The container's OOM kills, from its memory cgroup's `oom_kill` counter: cgroup v2's
//! `memory.events` (at the unified root or under `unified/` on a hybrid host) or v1's
//! `memory.oom_control` (Linux 4.13+). A watcher thread wakes when the kernel signals the
//! cgroup (v2: inotify on `memory.events`, as containerd's v2 watcher; v1: an eventfd
//! registered on `cgroup.event_control`) and publishes `/tasks/oom` for a container that
//! keeps running; the counter is read once more when the init exits, before the OCI
//! runtime's delete removes the cgroup and before `/tasks/exit` is published, so an OOM
//! kill of the init is always told first. The exit is marked `oom_killed`, recorded in
//! `exit.json` for every later state.

use berth_ipc::sync::lock;
use std::io::Read;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use super::exit::{ExitCtx, oom_seen};

/// The files that may hold a cgroup's `oom_kill` counter, most specific first.
fn counter_files(cgroup: &str) -> Vec<PathBuf> {
    let root = Path::new("/sys/fs/cgroup");
    let rel = cgroup.trim_start_matches('/');
    vec![
        root.join("memory").join(rel).join("memory.oom_control"),
        root.join("unified").join(rel).join("memory.events"),
        root.join(rel).join("memory.events"),
    ]
}

/// The `oom_kill N` line's N.
fn parse_oom_kill(text: &str) -> Option<u64> {
    text.lines().find_map(|l| l.strip_prefix("oom_kill ")).and_then(|n| n.trim().parse().ok())
}

/// One container's OOM counter.
pub struct OomWatch {
    files: Vec<PathBuf>,
    /// The count last seen, and whether any OOM kill was seen at all.
    seen: Mutex<(u64, bool)>,
}

impl OomWatch {
    /// The watch of the cgroup the bundle's `config.json` names (`linux.cgroupsPath`). The
    /// baseline is 0: the OCI runtime made the cgroup for this container, and with `run
    /// --detach` the init already runs when the watch is made, so an OOM kill in its first
    /// moments is already counted (found by critest: a container filling memory at once
    /// exited `Error`, not `OOMKilled`).
    pub fn new(config: &Path) -> OomWatch {
        let cgroup = std::fs::read(config)
            .ok()
            .and_then(|c| serde_json::from_slice::<serde_json::Value>(&c).ok())
            .and_then(|c| c.pointer("/linux/cgroupsPath").and_then(|p| p.as_str()).map(str::to_string))
            .filter(|p| p.starts_with('/') && !p.split('/').any(|c| c == ".."));
        let files = cgroup.map(|c| counter_files(&c)).unwrap_or_default();
        OomWatch { files, seen: Mutex::new((0, false)) }
    }

    /// The counter now, from the first file that has one.
    fn count(&self) -> Option<u64> {
        self.files.iter().find_map(|f| std::fs::read_to_string(f).ok().as_deref().and_then(parse_oom_kill))
    }

    /// Whether OOM kills happened since the last check.
    pub fn check(&self) -> bool {
        let Some(now) = self.count() else { return false };
        let mut seen = lock(&self.seen);
        let rose = now > seen.0;
        seen.0 = seen.0.max(now);
        seen.1 |= rose;
        rose
    }

    /// Whether any OOM kill was seen in the container's life.
    pub fn killed(&self) -> bool {
        lock(&self.seen).1
    }

    /// Whether the cgroup is still there.
    pub fn alive(&self) -> bool {
        self.count().is_some()
    }

    /// What the kernel signals when the cgroup's memory events change (read to wait).
    fn notifier(&self) -> Option<std::fs::File> {
        let file = self.files.iter().find(|f| f.exists())?;
        if file.ends_with("memory.events") {
            return super::sys::inotify_modify(file).ok().map(std::fs::File::from);
        }
        let efd = super::sys::eventfd().ok()?;
        let control = std::fs::File::open(file).ok()?;
        let line = format!("{} {}", efd.as_raw_fd(), control.as_raw_fd());
        std::fs::write(file.with_file_name("cgroup.event_control"), line).ok()?;
        Some(std::fs::File::from(efd))
    }
}

/// Starts the watcher thread of `ctx`'s container, once its cgroup exists; it ends when
/// the init has exited or the cgroup is gone (v1 signals its removal too).
pub fn start_watcher(ctx: ExitCtx) {
    let Some(mut notifier) = ctx.oom.get().and_then(OomWatch::notifier) else { return };
    let _ = std::thread::Builder::new().name("oom".into()).stack_size(64 << 10).spawn(move || {
        let mut buf = [0u8; 256];
        loop {
            match notifier.read(&mut buf) {
                Ok(0) => return,
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => return,
            }
            // v1 signals when the cgroup comes under OOM, a moment before the kill is
            // counted: look again shortly after.
            for pause in [0, 20, 100] {
                std::thread::sleep(Duration::from_millis(pause));
                if !oom_seen(&ctx) {
                    return;
                }
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters() {
        let v1 = "oom_kill_disable 0\nunder_oom 0\noom_kill 3\n";
        assert_eq!(parse_oom_kill(v1), Some(3));
        let v2 = "low 0\nhigh 0\nmax 12\noom 2\noom_kill 1\noom_group_kill 0\n";
        assert_eq!(parse_oom_kill(v2), Some(1));
        assert_eq!(parse_oom_kill("oom 2\n"), None);
        let files = counter_files("/berth/default/c1");
        assert_eq!(files[0], Path::new("/sys/fs/cgroup/memory/berth/default/c1/memory.oom_control"));
        assert_eq!(files[2], Path::new("/sys/fs/cgroup/berth/default/c1/memory.events"));
    }
}
