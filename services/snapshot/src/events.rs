//! The `/snapshot/{prepare,commit,remove}` events this service publishes.
//!
//! PUBLISHER CALL SITE: the shared publisher (`berth_ipc::publisher`, with its bounded
//! outbox and retry) is being written alongside this service; until it is wired here, each
//! event is logged at debug level only. All three topics go through [`Events::send`].

use berth_ipc::snapshot::{TOPIC_COMMIT, TOPIC_PREPARE, TOPIC_REMOVE};

/// The service's event sink.
#[derive(Debug, Clone, Default)]
pub struct Events;

impl Events {
    /// A snapshot was prepared or a view made.
    pub fn prepare(&self, snapshotter: &str, key: &str, parent: Option<&str>) {
        self.send(TOPIC_PREPARE, snapshotter, key, parent.unwrap_or(""));
    }

    /// An active snapshot was committed as `name`.
    pub fn commit(&self, snapshotter: &str, key: &str, name: &str) {
        self.send(TOPIC_COMMIT, snapshotter, key, name);
    }

    /// A snapshot was removed.
    pub fn remove(&self, snapshotter: &str, key: &str) {
        self.send(TOPIC_REMOVE, snapshotter, key, "");
    }

    fn send(&self, topic: &str, snapshotter: &str, key: &str, other: &str) {
        tracing::debug!(topic, snapshotter, key, other, "event");
    }
}
