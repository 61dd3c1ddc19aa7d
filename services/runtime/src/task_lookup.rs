//! Finding a task, and the errors a user sees when there is none: "container X has no
//! task" (not the shim socket's "No such file"), "container X: not found", "container X:
//! task not running".

use berth_ipc::metadata::{ByName, GetContainer};
use berth_ipc::runtime::TaskRef;
use berth_ipc::{Code, Error, Result};

use crate::Runtime;
use crate::bundle::Bundle;
use crate::tasks::check;

/// `NotFound`: container `id` has no task.
pub(crate) fn no_task(id: &str) -> Error {
    Error::not_found(format!("container {id} has no task"))
}

/// `Precondition`: the task of container `id` has exited (its shim is gone).
pub(crate) fn not_running(id: &str) -> Error {
    Error::precondition(format!("container {id}: task not running"))
}

impl Runtime {
    /// The bundle of an existing task; `NotFound` otherwise: "container X has no task" (what
    /// `tasks pause|resume|kill|exec|ps|metrics` on a container without one are told,
    /// rather than the shim socket's "No such file"), or "container X: not found" when there
    /// is no such container either.
    pub(crate) async fn existing(&self, task: &TaskRef) -> Result<Bundle> {
        check(task)?;
        let bundle = self.bundle(&task.namespace, &task.id);
        if !bundle.record().exists() {
            let by_name = ByName { namespace: task.namespace.clone(), name: task.id.clone() };
            return Err(match self.metadata.call(GetContainer(by_name)).await {
                Err(e) if e.is(Code::NotFound) => {
                    Error::not_found(format!("container {}: not found", task.id))
                }
                _ => no_task(&task.id),
            });
        }
        Ok(bundle)
    }
}
