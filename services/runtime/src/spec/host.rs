//! What of the host a spec depends on, read once per spec: the kernel's capabilities, the
//! runtime's own OOM score adjustment, the cgroup version, where host devices and mounts are
//! listed. A struct so tests can describe another host.

use std::path::PathBuf;

use berth_ipc::{Error, Result};

/// The host a container is made for.
#[derive(Debug, Clone)]
pub struct Host {
    /// `/proc/sys/kernel/cap_last_cap`.
    pub last_cap: u32,
    /// The runtime's own bounding set (`CapBnd`): what a privileged container can get.
    pub bounding: u64,
    /// `/proc/self/oom_score_adj`: without `CAP_SYS_RESOURCE` a process cannot give a child
    /// less than its own.
    pub oom_score_adj: i32,
    /// cgroup v2 at `/sys/fs/cgroup` (`cgroup.controllers` there).
    pub cgroup_v2: bool,
    /// The host's `/dev`.
    pub dev: PathBuf,
    /// The mount table, `/proc/self/mountinfo`.
    pub mountinfo: PathBuf,
}

impl Host {
    /// The running host.
    pub fn current() -> Host {
        let oom_score_adj = std::fs::read_to_string("/proc/self/oom_score_adj")
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0);
        Host {
            last_cap: super::caps::kernel_last_cap(),
            bounding: super::caps::own_bounding(),
            oom_score_adj,
            cgroup_v2: std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists(),
            dev: PathBuf::from("/dev"),
            mountinfo: PathBuf::from("/proc/self/mountinfo"),
        }
    }

    /// The text of the mount table.
    pub fn read_mountinfo(&self) -> Result<String> {
        std::fs::read_to_string(&self.mountinfo).map_err(|e| Error::io_at("read", &self.mountinfo, e))
    }
}
