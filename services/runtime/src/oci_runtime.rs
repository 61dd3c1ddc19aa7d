//! The OCI runtimes berth runs (runc, crun): which binary a runtime name means, where each
//! keeps its state, the command that runs one, and the service's one direct use of it,
//! `delete --force`. The shim runs the same commands ([`runtime_command`]); task logic
//! reaches the runtime only through [`OciRuntime`], so it can be tested without root.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use berth_ipc::{Error, Result};

/// The OCI runtimes berth runs (each keeps its state under `<state>/oci/<runtime>/`).
pub const RUNTIMES: [&str; 2] = ["runc", "crun"];

/// The OCI runtime binary for a runtime name.
pub fn runtime_binary(name: &str) -> Result<&'static str> {
    match name {
        "" | "runc" | "io.containerd.runc.v2" => Ok("runc"),
        "crun" => Ok("crun"),
        other => Err(Error::invalid(format!("runtime {other:?}: unknown (runc or crun)"))),
    }
}

/// The state root of `runtime` for namespace `ns` under berth's state dir.
pub fn runtime_root(state: &Path, runtime: &str, ns: &str) -> PathBuf {
    state.join("oci").join(runtime).join(ns)
}

/// A command running the OCI runtime `runtime` with state root `root`.
pub fn runtime_command(runtime: &str, root: &Path) -> Command {
    let mut cmd = Command::new(runtime);
    cmd.arg("--root").arg(root);
    if runtime.ends_with("crun") && crun_needs_no_cgroups() {
        crate::shim::hide_unified_cgroup(&mut cmd);
    }
    cmd.stdin(Stdio::null());
    cmd
}

/// crun refuses hybrid cgroup hosts (v1 controllers plus a v2 hierarchy that holds one);
/// there it runs in a mount namespace where the v2 hierarchy is not mounted.
pub fn crun_needs_no_cgroups() -> bool {
    std::fs::read_to_string("/sys/fs/cgroup/unified/cgroup.controllers").is_ok_and(|c| !c.trim().is_empty())
}

/// What the runtime service asks of the OCI runtimes themselves (everything else goes
/// through a task's shim). Blocking calls: async code runs them through
/// [`berth_service_kit::blocking_value`].
pub trait OciRuntime: Send + Sync {
    /// Whether `bin` keeps state of container `id` in `ns`.
    fn has_state(&self, bin: &str, ns: &str, id: &str) -> bool;
    /// `<bin> delete --force ID`, output discarded.
    fn force_delete(&self, bin: &str, ns: &str, id: &str);
}

/// The real runtimes, with their state under `<state>/oci/`.
pub struct Binaries {
    /// berth's state dir.
    pub state: PathBuf,
}

impl OciRuntime for Binaries {
    fn has_state(&self, bin: &str, ns: &str, id: &str) -> bool {
        runtime_root(&self.state, bin, ns).join(id).exists()
    }

    fn force_delete(&self, bin: &str, ns: &str, id: &str) {
        let mut cmd = runtime_command(bin, &runtime_root(&self.state, bin, ns));
        cmd.args(["delete", "--force", id]).stdout(Stdio::null()).stderr(Stdio::null());
        let _ = cmd.status();
    }
}

/// The runtimes that keep state of container `id` in `ns`.
pub fn stale(oci: &dyn OciRuntime, ns: &str, id: &str) -> Vec<&'static str> {
    RUNTIMES.into_iter().filter(|r| oci.has_state(r, ns, id)).collect()
}

/// Waits up to `patience` until no runtime keeps state of `id` (a deleted task's shim
/// finishes the runtime's `delete` after the delete was answered), then force-deletes
/// what is left. Answers the runtimes force-deleted. Blocking.
pub fn wait_state_gone(oci: &dyn OciRuntime, ns: &str, id: &str, patience: Duration) -> Vec<&'static str> {
    let deadline = std::time::Instant::now() + patience;
    while !stale(oci, ns, id).is_empty() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(2));
    }
    let left = stale(oci, ns, id);
    for bin in &left {
        tracing::warn!(namespace = %ns, id = %id, runtime = bin, "stale runtime state; deleting it");
        oci.force_delete(bin, ns, id);
    }
    left
}

#[cfg(test)]
#[path = "oci_runtime_tests.rs"]
mod tests;
