//! Re-adopting at start what a previous runtime service process left: live shims are used
//! again, dead ones' exits settled, half-done creates and deletes cleared.

use berth_ipc::runtime::TaskRef;
use berth_service_kit::blocking_value;

use crate::shim_client::shim_alive;
use crate::{Runtime, bundle, mount, oci_runtime};

/// Re-adopts every task found in the state dir: live shims are simply used again; for a
/// dead one the exit is settled (recorded, or 255) and the OCI runtime's leftovers removed.
pub async fn adopt(rt: &Runtime) -> (usize, usize) {
    let (mut live, mut dead) = (0, 0);
    let state = rt.state.clone();
    let Ok(tasks) = blocking_value("runtime worker", move || clear_leftovers_and_list(&state)).await else {
        return (0, 0);
    };
    for (ns, id) in tasks {
        let bundle = rt.bundle(&ns, &id);
        // A live shim is simply used again, without asking it anything: a shim stopped
        // or slow on a loaded machine must hold up neither this start nor its container.
        // Cleaning up a live shim that merely missed its State deadline killed running
        // containers (the fault campaign's keepers died with 137 while a relaunched
        // berthd adopted them). No shim.pid: a create in flight or one that crashed
        // before its shim started, which `get` and `containers rm` settle.
        let b = bundle.clone();
        if blocking_value("runtime worker", move || shim_alive(&b) || !b.shim_pid().exists())
            .await
            .unwrap_or(true)
        {
            live += 1;
            continue;
        }
        // The shim is gone: `get` settles its exit (recorded, or 255 after killing what
        // is left of the container); then the OCI runtime's leftovers go.
        let Ok(task) = rt.get(TaskRef::init(&ns, &id)).await else { continue };
        if task.exit.is_none() {
            live += 1;
            continue;
        }
        dead += 1;
        rt.cleanup_runtime(&bundle, &task.runtime, &ns, &task.id).await;
        tracing::warn!(namespace = %ns, id = %task.id, exit = ?task.exit, "shim gone; exit settled");
    }
    // Runtime state with no bundle: a deleted task whose shim died before it finished the
    // runtime's delete (it runs after the delete is answered). In the background: a shim
    // still finishing gets its few seconds without holding up the service's start.
    let rt2 = rt.clone();
    tokio::spawn(async move { delete_orphan_runtime_state(&rt2).await });
    (live, dead)
}

/// Removes what a previous process left mid-way (spec mounts, trash) and lists every
/// task's (namespace, id) by its bundle. Blocking.
fn clear_leftovers_and_list(state: &std::path::Path) -> Vec<(String, String)> {
    // Spec mounts of container creates that died with the previous process: at
    // `.mnt/<ns>/<id>`, or (before namespaces had a level of their own) `.mnt/<ns>-<id>`,
    // which is mounted itself and so never walked into.
    for e in std::fs::read_dir(state.join("tasks/.mnt")).into_iter().flatten().flatten() {
        let dir = e.path();
        if !mount::is_mounted(&dir) {
            for id in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
                let _ = mount::unmount_all(&id.path());
                let _ = std::fs::remove_dir(id.path());
            }
        }
        let _ = mount::unmount_all(&dir);
        let _ = std::fs::remove_dir(&dir);
    }
    // Bundles of deleted tasks whose removal a crash interrupted.
    let _ = std::fs::remove_dir_all(state.join("tasks/.trash"));
    // Id-mapped rootfs of tasks whose bundle went (a create or delete cut off).
    crate::idmapped::reconcile(state);
    let mut tasks = Vec::new();
    let Ok(namespaces) = std::fs::read_dir(state.join("tasks")) else { return tasks };
    for ns in namespaces.filter_map(|e| e.ok()?.file_name().into_string().ok()) {
        if ns.starts_with('.') {
            continue;
        }
        let Ok(ids) = std::fs::read_dir(state.join("tasks").join(&ns)) else { continue };
        tasks.extend(ids.filter_map(|e| e.ok()?.file_name().into_string().ok()).map(|id| (ns.clone(), id)));
    }
    tasks
}

async fn delete_orphan_runtime_state(rt: &Runtime) {
    let state = rt.state.clone();
    // (namespace, id) of runtime state whose bundle is gone.
    let orphans = blocking_value("runtime worker", move || {
        let mut orphans = Vec::new();
        for bin in oci_runtime::RUNTIMES {
            for ns in std::fs::read_dir(state.join("oci").join(bin)).into_iter().flatten().flatten() {
                let Ok(ns) = ns.file_name().into_string() else { continue };
                let root = oci_runtime::runtime_root(&state, bin, &ns);
                for c in std::fs::read_dir(root).into_iter().flatten().flatten() {
                    let Ok(id) = c.file_name().into_string() else { continue };
                    if c.path().is_dir() && !bundle::Bundle::new(&state, &ns, &id).dir.exists() {
                        orphans.push((ns.clone(), id));
                    }
                }
            }
        }
        orphans
    })
    .await
    .unwrap_or_default();
    for (ns, id) in orphans {
        rt.previous_runtime_state_gone(&ns, &id).await;
    }
}
