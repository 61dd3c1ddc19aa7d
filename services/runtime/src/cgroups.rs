//! Empty cgroup parents removed when the last container under them goes. Containers'
//! cgroups are `<cgroup_parent>/<namespace>/<id>`; the OCI runtime creates the missing
//! levels and removes only the container's own at its delete, so the namespace level (and
//! berth's own per-instance parent) were left behind, empty, in every hierarchy.
//!
//! Only `rmdir` is used: the kernel refuses it for a cgroup that still has a process or a
//! child cgroup, so a level another container (or anything else) still uses stays. The
//! configured `[runtime] cgroup_parent` is never removed (an operator's, maybe a systemd
//! slice); the cgroup root never is.

use std::path::{Path, PathBuf};

use crate::Runtime;

/// The cgroup filesystem.
const CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// The hierarchies under `root`: itself (cgroup v2, or the v1 tmpfs holding nothing of
/// ours) and each directory directly under it (the v1 controllers' mounts, `unified`).
fn hierarchies(root: &Path) -> Vec<PathBuf> {
    let mut out = vec![root.to_path_buf()];
    for e in std::fs::read_dir(root).into_iter().flatten().flatten() {
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            out.push(e.path());
        }
    }
    out
}

/// The cgroup paths to try to remove for container `id` in `ns`, deepest first (relative
/// to a hierarchy's root, no leading `/`).
pub fn candidates(parent: &str, owned: bool, ns: &str, id: &str) -> Vec<String> {
    let parent = parent.trim_matches('/');
    let mut out = vec![format!("{parent}/{ns}/{id}"), format!("{parent}/{ns}")];
    if owned && !parent.is_empty() {
        out.push(parent.to_string());
    }
    out
}

/// Removes each of `paths` under each hierarchy of `root` that is empty; returns how many
/// went.
pub fn prune(root: &Path, paths: &[String]) -> usize {
    let mut removed = 0;
    for h in hierarchies(root) {
        for p in paths {
            if p.is_empty() || p.split('/').any(|c| c.is_empty() || c == "." || c == "..") {
                continue;
            }
            let dir = h.join(p);
            if dir.is_dir() && std::fs::remove_dir(&dir).is_ok() {
                removed += 1;
            }
        }
    }
    removed
}

impl Runtime {
    /// Removes container `id`'s cgroup and the parents left empty (see the module doc), once
    /// the OCI runtime's state of it is gone (its delete removes the container's own cgroup;
    /// up to 5 s). A level is only tried while no task bundle under it exists: a task being
    /// created has its bundle before its runtime makes its cgroup, so the levels it needs are
    /// never removed under it.
    pub async fn prune_cgroups(&self, ns: &str, id: &str) {
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
        let state_left =
            || crate::oci_runtime::RUNTIMES.into_iter().any(|r| self.runtime_root(r, ns).join(id).exists());
        while state_left() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        let tasks = self.state.join("tasks");
        let has_tasks = |dir: &Path| {
            std::fs::read_dir(dir)
                .into_iter()
                .flatten()
                .flatten()
                .any(|e| !e.file_name().to_string_lossy().starts_with('.'))
        };
        let mut paths = candidates(&self.cgroup_parent, self.cgroup_parent_owned, ns, id);
        if self.bundle(ns, id).dir.exists() {
            return;
        }
        if has_tasks(&tasks.join(ns)) {
            paths.truncate(1);
        }
        let any_task = std::fs::read_dir(&tasks)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
            .any(|e| has_tasks(&e.path()));
        if any_task {
            paths.truncate(2);
        }
        let removed = prune(Path::new(CGROUP_ROOT), &paths);
        tracing::debug!(namespace = %ns, id = %id, removed, "cgroups pruned");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn candidates_never_the_configured_parent_or_root() {
        assert_eq!(
            candidates("/berth-1", true, "default", "c1"),
            ["berth-1/default/c1", "berth-1/default", "berth-1"]
        );
        assert_eq!(
            candidates("/ops/berth", false, "default", "c1"),
            ["ops/berth/default/c1", "ops/berth/default"]
        );
    }

    #[test]
    fn prune_removes_only_empty_dirs() {
        let root = tempfile::tempdir().expect("tempdir");
        let h = root.path().join("memory");
        std::fs::create_dir_all(h.join("b/ns/c1")).expect("dirs");
        std::fs::create_dir_all(h.join("b/ns/c2")).expect("dirs");
        let paths = candidates("/b", true, "ns", "c1");
        assert_eq!(prune(root.path(), &paths), 1, "only c1: ns still holds c2");
        assert!(h.join("b/ns/c2").is_dir() && !h.join("b/ns/c1").exists());
        std::fs::remove_dir(h.join("b/ns/c2")).expect("rm c2");
        assert_eq!(prune(root.path(), &paths), 2);
        assert!(!h.join("b").exists() && h.is_dir());
    }
}
