//! Freezing a container for its commit, as docker and containerd do: while the snapshot
//! service diffs the upper dir, no process inside can swap a directory for a symlink, a
//! FIFO or a device node, or grow a file being read. A running task is paused through the
//! runtime service's task pause and resumed afterwards, whether or not the diff worked; a
//! task that is not running (none, created, stopped, already paused) is left as it is.

use berth_ipc::runtime::{GetTask, Pause, Resume, TaskRef, TaskStatus};
use berth_ipc::{Code, Error, Result};

use crate::Services;

/// Pauses container `id`'s task if it is running; returns whether it did.
pub async fn pause_if_running(services: &Services, ns: &str, id: &str) -> Result<bool> {
    let task = TaskRef { namespace: ns.to_string(), id: id.to_string(), exec_id: None };
    match services.runtime.call(GetTask(task.clone())).await {
        Ok(info) if info.status == TaskStatus::Running => {}
        Ok(_) => return Ok(false),
        Err(e) if e.code == Code::NotFound => return Ok(false),
        Err(e) => return Err(e.context(format!("container {id}: task state for commit"))),
    }
    services.runtime.call(Pause(task)).await.map_err(|e| {
        e.context(format!("container {id}: pause for commit (--pause=false to commit it running)"))
    })?;
    Ok(true)
}

/// Resumes container `id`'s task, paused by [`pause_if_running`].
pub async fn resume(services: &Services, ns: &str, id: &str) -> Result<()> {
    let task = TaskRef { namespace: ns.to_string(), id: id.to_string(), exec_id: None };
    services.runtime.call(Resume(task)).await.map_err(|e: Error| {
        e.context(format!("container {id}: resume after commit (berth tasks resume {id})"))
    })
}
