//! The events content publishes: `/content/create` after a commit is durable and
//! `/content/delete` after a blob is removed. Content has no namespaces of its own, so its
//! events go out in the `default` namespace; the metadata service publishes the
//! namespaced view.

use berth_ipc::Digest;
use berth_ipc::content::BlobInfo;
use berth_ipc::events::payload::{ContentCreate, ContentDelete};
use berth_ipc::publisher::Publisher;

/// The namespace content's own events carry.
pub const NAMESPACE: &str = "default";

/// Where content's events go; `None` publishes nothing (in-process tests).
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

    /// A blob was committed.
    pub fn created(&self, info: &BlobInfo) {
        if let Some(p) = &self.publisher {
            p.publish(NAMESPACE, ContentCreate { digest: info.digest.to_string(), size: info.size });
        }
    }

    /// A blob was deleted.
    pub fn deleted(&self, digest: &Digest) {
        if let Some(p) = &self.publisher {
            p.publish(NAMESPACE, ContentDelete { digest: digest.to_string() });
        }
    }

    /// Gives queued events a moment to reach the log (at shutdown).
    pub async fn flush(&self) {
        if let Some(p) = &self.publisher {
            p.flush(std::time::Duration::from_secs(2)).await;
        }
    }
}
