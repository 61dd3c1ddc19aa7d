//! The events this service publishes: `/snapshot/prepare` (prepare and view),
//! `/snapshot/commit` and `/snapshot/remove`, after the index change is durable. Each goes
//! out in the snapshot's namespace, with keys as that namespace names them (the calls here
//! take index keys, `<namespace>/<key>`). Publishing never fails an operation: the
//! publisher keeps a bounded outbox and retries.

use berth_ipc::events::payload::{SnapshotCommit, SnapshotPrepare, SnapshotRemove};
use berth_ipc::publisher::Publisher;

use crate::scope::split;

/// Where the service's events go; `None` publishes nothing (in-process tests).
#[derive(Clone, Default)]
pub struct Events {
    publisher: Option<Publisher>,
}

impl Events {
    /// Events sent through `publisher`.
    pub fn new(publisher: Publisher) -> Self {
        Events { publisher: Some(publisher) }
    }

    /// No events.
    pub fn none() -> Self {
        Events { publisher: None }
    }

    /// A snapshot was prepared or a view made.
    pub fn prepare(&self, snapshotter: &str, key: &str, parent: Option<&str>) {
        if let Some(p) = &self.publisher {
            let (ns, key) = split(key);
            let parent = parent.map(|p| split(p).1).unwrap_or_default().to_string();
            p.publish(ns, SnapshotPrepare { key: key.into(), parent, snapshotter: snapshotter.into() });
        }
    }

    /// An active snapshot was committed as `name`.
    pub fn commit(&self, snapshotter: &str, key: &str, name: &str) {
        if let Some(p) = &self.publisher {
            let (ns, key) = split(key);
            let name = split(name).1;
            p.publish(
                ns,
                SnapshotCommit { key: key.into(), name: name.into(), snapshotter: snapshotter.into() },
            );
        }
    }

    /// A snapshot was removed.
    pub fn remove(&self, snapshotter: &str, key: &str) {
        if let Some(p) = &self.publisher {
            let (ns, key) = split(key);
            p.publish(ns, SnapshotRemove { key: key.into(), snapshotter: snapshotter.into() });
        }
    }

    /// Gives queued events a moment to reach the log (at shutdown).
    pub async fn flush(&self) {
        if let Some(p) = &self.publisher {
            p.flush(std::time::Duration::from_secs(2)).await;
        }
    }
}
