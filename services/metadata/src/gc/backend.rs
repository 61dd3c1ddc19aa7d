//! The backends GC frees objects in: anything that can list its objects with their
//! creation time and delete one. The content service is one; the snapshot service will be
//! another. Tests use an in-memory fake.

use std::future::Future;
use std::pin::Pin;

use berth_ipc::content::{Content, Delete, List};
use berth_ipc::digest::Digest;
use berth_ipc::{Client, Code, Result};

/// A boxed future, so backends can sit behind `dyn`.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// An object a backend stores.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ObjectId {
    /// A blob in the content store.
    Content(Digest),
    /// A snapshot: `(snapshotter, key)`.
    Snapshot(String, String),
}

impl std::fmt::Display for ObjectId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ObjectId::Content(d) => write!(f, "blob {d}"),
            ObjectId::Snapshot(sn, key) => write!(f, "snapshot {sn}/{key}"),
        }
    }
}

/// One stored object and when it was created (ns since the epoch).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendObject {
    /// Which object.
    pub id: ObjectId,
    /// When it was created.
    pub created_ns: u64,
}

/// A store of objects GC may delete.
pub trait Backend: Send + Sync {
    /// Its name, for reports and logs.
    fn name(&self) -> &str;
    /// Whether `id` would be stored here (so its absence from [`Backend::list`] means gone).
    fn holds(&self, id: &ObjectId) -> bool;
    /// Every object it holds.
    fn list(&self) -> BoxFuture<'_, Result<Vec<BackendObject>>>;
    /// Deletes one object; an object already gone is not an error.
    fn delete<'a>(&'a self, id: &'a ObjectId) -> BoxFuture<'a, Result<()>>;
}

/// The content service as a GC backend.
pub struct ContentBackend {
    client: Client<Content>,
}

impl ContentBackend {
    /// A backend over a content-service client.
    pub fn new(client: Client<Content>) -> Self {
        ContentBackend { client }
    }
}

impl Backend for ContentBackend {
    fn name(&self) -> &str {
        "content"
    }

    fn holds(&self, id: &ObjectId) -> bool {
        matches!(id, ObjectId::Content(_))
    }

    fn list(&self) -> BoxFuture<'_, Result<Vec<BackendObject>>> {
        Box::pin(async move {
            let mut stream = self.client.stream(List { filters: Vec::new() }).await?;
            let mut out = Vec::new();
            while let Some(item) = stream.next().await {
                let info = item?;
                out.push(BackendObject {
                    id: ObjectId::Content(info.digest),
                    created_ns: info.created_at_ns,
                });
            }
            Ok(out)
        })
    }

    fn delete<'a>(&'a self, id: &'a ObjectId) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let ObjectId::Content(digest) = id else { return Ok(()) };
            match self.client.call(Delete { digest: *digest }).await {
                Err(e) if e.code == Code::NotFound => Ok(()),
                other => other,
            }
        })
    }
}
