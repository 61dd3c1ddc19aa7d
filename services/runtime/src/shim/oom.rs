//! The container's OOM kills, from its memory cgroup's `oom_kill` counter: cgroup v2's
//! `memory.events` (at the unified root or under `unified/` on a hybrid host) or v1's
//! `memory.oom_control` (Linux 4.13+). The counter is read when the init exits, before the
//! OCI runtime's delete removes the cgroup and before `/tasks/exit` is published: a rise
//! publishes `/tasks/oom` first (as containerd's OOM watcher does) and marks the exit
//! `oom_killed`, recorded in `exit.json` for every later state.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

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
    /// The watch of the cgroup the bundle's `config.json` names (`linux.cgroupsPath`); the
    /// count now is the baseline (a new cgroup's is 0).
    pub fn new(config: &Path) -> OomWatch {
        let cgroup = std::fs::read(config)
            .ok()
            .and_then(|c| serde_json::from_slice::<serde_json::Value>(&c).ok())
            .and_then(|c| c.pointer("/linux/cgroupsPath").and_then(|p| p.as_str()).map(str::to_string))
            .filter(|p| p.starts_with('/') && !p.split('/').any(|c| c == ".."));
        let files = cgroup.map(|c| counter_files(&c)).unwrap_or_default();
        let watch = OomWatch { files, seen: Mutex::new((0, false)) };
        let now = watch.count().unwrap_or(0);
        watch.seen.lock().unwrap_or_else(|p| p.into_inner()).0 = now;
        watch
    }

    /// The counter now, from the first file that has one.
    fn count(&self) -> Option<u64> {
        self.files.iter().find_map(|f| std::fs::read_to_string(f).ok().as_deref().and_then(parse_oom_kill))
    }

    /// Whether OOM kills happened since the last check.
    pub fn check(&self) -> bool {
        let Some(now) = self.count() else { return false };
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        let rose = now > seen.0;
        seen.0 = seen.0.max(now);
        seen.1 |= rose;
        rose
    }

    /// Whether any OOM kill was seen in the container's life.
    pub fn killed(&self) -> bool {
        self.seen.lock().unwrap_or_else(|p| p.into_inner()).1
    }
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
