//! Containers removed when their task exits (`berth run --rm -d`): the client is gone by
//! then, so the runtime service does it. The container carries the label
//! [`LABEL_RM_ON_EXIT`] from its create; a watcher started with its task (and again for
//! every adopted task after a restart of this service) waits for the exit, then removes
//! the task, the container, its snapshot and its logs, as `containers rm --force` does.
//! Containers so labelled that lost their task while no watcher ran (a crash between the
//! task's delete and the container's removal) are removed when the service starts. Which
//! containers have a watcher is state of one [`crate::Runtime`] ([`Watched`]).

use berth_ipc::sync::lock;
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use berth_ipc::metadata::{ByName, Container, GetContainer, ListContainers, ListIn, ListNamespaces};
use berth_ipc::runtime::{RemoveContainer, TaskRef};
use berth_ipc::{Code, Result};

use crate::Runtime;

pub use berth_ipc::runtime::LABEL_RM_ON_EXIT;

/// Whether `container` asks to be removed when its task exits.
pub fn wanted(container: &Container) -> bool {
    container.labels.get(LABEL_RM_ON_EXIT).is_some_and(|v| v == "true")
}

/// How old a labelled container without a task must be to be removed at start.
const CREATE_GRACE_NS: u64 = 30_000_000_000;

/// The containers (namespace, id) with a watcher running in one runtime service.
#[derive(Default)]
pub struct Watched(Mutex<BTreeSet<(String, String)>>);

impl Watched {
    /// Marks `id` in `ns` watched, unless it is already: the mark lasts as long as the
    /// answer.
    pub fn begin(self: &Arc<Self>, ns: &str, id: &str) -> Option<Watching> {
        let key = (ns.to_string(), id.to_string());
        lock(&self.0).insert(key.clone()).then(|| Watching { watched: self.clone(), key })
    }

    /// Whether `id` in `ns` is watched.
    pub fn has(&self, ns: &str, id: &str) -> bool {
        lock(&self.0).contains(&(ns.to_string(), id.to_string()))
    }
}

/// One container's watcher running; its mark is removed on drop.
pub struct Watching {
    watched: Arc<Watched>,
    key: (String, String),
}

impl Drop for Watching {
    fn drop(&mut self) {
        lock(&self.watched.0).remove(&self.key);
    }
}

impl Runtime {
    /// Starts the watcher of `task` if its container asks for removal at exit and no
    /// watcher runs for it yet. Returns at once.
    pub fn watch_rm_on_exit(&self, task: &TaskRef) {
        let (rt, task) = (self.clone(), TaskRef::init(&task.namespace, &task.id));
        tokio::spawn(async move {
            let by_name = ByName { namespace: task.namespace.clone(), name: task.id.clone() };
            let Ok(container) = rt.metadata.call(GetContainer(by_name)).await else { return };
            if !wanted(&container) {
                return;
            }
            let Some(_watching) = rt.rm_on_exit.begin(&task.namespace, &task.id) else { return };
            // An error other than "no task" (deleted by hand meanwhile) leaves it alone.
            match rt.wait(task.clone()).await {
                Ok(_) => rt.remove_at_exit(&task.namespace, &task.id).await,
                Err(e) if e.is(Code::NotFound) => rt.remove_at_exit(&task.namespace, &task.id).await,
                Err(e) => tracing::warn!(namespace = %task.namespace, id = %task.id, error = %e,
                    "rm-on-exit: wait failed; container kept"),
            }
        });
    }

    async fn remove_at_exit(&self, ns: &str, id: &str) {
        let req = RemoveContainer { namespace: ns.into(), id: id.into(), force: true };
        match self.remove_container(req).await {
            Ok(()) => tracing::debug!(namespace = %ns, id = %id, "rm-on-exit: container removed"),
            Err(e) if e.is(Code::NotFound) => {}
            Err(e) => tracing::error!(namespace = %ns, id = %id, error = %e, "rm-on-exit: not removed"),
        }
    }

    /// At start: a watcher for every task (each asks its container), and removal of every
    /// labelled container whose task is already gone.
    pub async fn adopt_rm_on_exit(&self) -> Result<()> {
        for ns in self.metadata.call(ListNamespaces).await? {
            let req = ListContainers(ListIn { namespace: ns.name.clone(), filters: Vec::new() });
            let mut stream = self.metadata.stream(req).await?;
            let mut ids = Vec::new();
            // A container created moments ago may be waiting for its `RunTask` (`run --rm
            // -d` sends it right after the create): only older ones without a task go.
            let recent = crate::bundle::now_ns().saturating_sub(CREATE_GRACE_NS);
            while let Some(page) = stream.next().await {
                ids.extend(page?.into_iter().filter(wanted).map(|c| (c.id, c.created > recent)));
            }
            for (id, recent) in ids {
                let task = TaskRef::init(&ns.name, &id);
                if self.bundle(&ns.name, &id).dir.exists() {
                    self.watch_rm_on_exit(&task);
                } else if !recent {
                    self.remove_at_exit(&ns.name, &id).await;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_container_is_watched_once_until_its_watcher_ends() {
        let watched = Arc::new(Watched::default());
        let first = watched.begin("default", "web").expect("first watcher");
        assert!(watched.begin("default", "web").is_none(), "a second watcher of web");
        assert!(watched.has("default", "web"));
        let _other = watched.begin("other", "web").expect("another namespace");
        let _elsewhere = Arc::new(Watched::default()).begin("default", "web").expect("another service");
        drop(first);
        assert!(!watched.has("default", "web"));
        assert!(watched.begin("default", "web").is_some(), "watched again after its watcher ended");
    }
}
