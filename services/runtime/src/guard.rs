//! `Guard`: the life of a task owned by one client (a foreground `berth run --rm`). The
//! guard answers the init's exit once it is known; if its caller goes away first (killed,
//! crashed, its connection dropped) while the task still runs, the task is killed, deleted
//! and its container removed, as the client would have done. So a `--rm` container is
//! never left running unnoticed by a client that vanished. A service shutting down also
//! ends the call, but leaves the task alone: the client opens a new guard on the next one.

use berth_ipc::runtime::{KillTask, RemoveContainer, RuntimeResponse, TaskRef};
use berth_ipc::{Error, Result};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::Runtime;
use crate::tasks::check;

impl Runtime {
    /// `Guard` of `task`'s init; `cancel` is the call's (the client gone, or the service
    /// shutting down: see [`Runtime::shutdown`]).
    pub async fn guard(
        &self,
        task: TaskRef,
        cancel: CancellationToken,
        tx: mpsc::Sender<Result<RuntimeResponse>>,
    ) {
        if let Err(e) = check(&task) {
            let _ = tx.send(Err(e)).await;
            return;
        }
        if task.exec_id.is_some() {
            let _ = tx.send(Err(Error::invalid("guard: only a task's init can be guarded"))).await;
            return;
        }
        if !self.bundle(&task.namespace, &task.id).record().exists() {
            let _ = tx.send(Err(Error::not_found(format!("task {}: not found", task.id)))).await;
            return;
        }
        tokio::select! {
            exit = self.wait(task.clone()) => {
                let _ = tx.send(exit.map(RuntimeResponse::Guard)).await;
            }
            _ = cancel.cancelled() => {
                if !self.shutdown.is_cancelled() {
                    self.abandoned(task).await;
                }
            }
        }
    }

    /// The owner of a running task went away: kill, wait, delete, remove the container.
    async fn abandoned(&self, task: TaskRef) {
        tracing::warn!(namespace = %task.namespace, id = %task.id,
            "the client that owned this task (run --rm) went away; killing and removing it");
        let kill = KillTask { task: task.clone(), signal: 9, all: true };
        if let Err(e) = self.kill(kill).await {
            tracing::debug!(id = %task.id, error = %e, "guard: kill");
        }
        let _ = self.wait(task.clone()).await;
        if let Err(e) = self.delete(task.clone()).await {
            tracing::warn!(id = %task.id, error = %e, "guard: delete task");
        }
        let remove = RemoveContainer { namespace: task.namespace.clone(), id: task.id.clone(), force: true };
        if let Err(e) = self.remove_container(remove).await {
            tracing::warn!(id = %task.id, error = %e, "guard: remove container");
        }
    }
}
