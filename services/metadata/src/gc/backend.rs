//! The backends GC frees objects in: anything that can list its objects with their
//! creation time and delete one. The content service is one; each snapshotter of the
//! snapshot service is another. Tests use an in-memory fake.

use std::future::Future;
use std::pin::Pin;

use berth_ipc::content::{Abort, Content, Delete, List, ListStatuses};
use berth_ipc::digest::Digest;
use berth_ipc::snapshot::{self, Snapshot};
use berth_ipc::{Client, Code, Result};

/// A boxed future, so backends can sit behind `dyn`.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// An object a backend stores.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ObjectId {
    /// A blob in the content store.
    Content(Digest),
    /// A snapshot: `(snapshotter, <namespace>/<key>)`, the snapshot service's index key.
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
    /// Writes in progress, as `(ref, last update in ns since the epoch)`; none by default.
    fn ingests(&self) -> BoxFuture<'_, Result<Vec<(String, u64)>>> {
        Box::pin(async { Ok(Vec::new()) })
    }
    /// Drops an ingest; one already gone, or held by a live writer, is not an error.
    fn abort_ingest<'a>(&'a self, _ref: &'a str) -> BoxFuture<'a, Result<()>> {
        Box::pin(async { Ok(()) })
    }
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

    fn ingests(&self) -> BoxFuture<'_, Result<Vec<(String, u64)>>> {
        Box::pin(async move {
            let list = self.client.call(ListStatuses { filters: Vec::new() }).await?;
            Ok(list.into_iter().map(|s| (s.r#ref, s.updated_at_ns)).collect())
        })
    }

    fn abort_ingest<'a>(&'a self, r: &'a str) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            match self.client.call(Abort { r#ref: r.to_string(), session: None }).await {
                Err(e) if matches!(e.code, Code::NotFound | Code::Unavailable) => Ok(()),
                other => other,
            }
        })
    }
}

/// One snapshotter of the snapshot service as a GC backend. GC sees every namespace's
/// snapshots (`List` with `all_namespaces`) under their index keys `<namespace>/<key>`, and
/// removes one in its own namespace.
pub struct SnapshotBackend {
    client: Client<Snapshot>,
    snapshotter: String,
    name: String,
}

impl SnapshotBackend {
    /// A backend for `snapshotter` over a snapshot-service client.
    pub fn new(client: Client<Snapshot>, snapshotter: &str) -> Self {
        SnapshotBackend {
            client,
            snapshotter: snapshotter.to_string(),
            name: format!("snapshot/{snapshotter}"),
        }
    }
}

impl Backend for SnapshotBackend {
    fn name(&self) -> &str {
        &self.name
    }

    fn holds(&self, id: &ObjectId) -> bool {
        matches!(id, ObjectId::Snapshot(sn, _) if *sn == self.snapshotter)
    }

    fn list(&self) -> BoxFuture<'_, Result<Vec<BackendObject>>> {
        Box::pin(async move {
            let req = snapshot::List {
                snapshotter: self.snapshotter.clone(),
                filters: Vec::new(),
                namespace: String::new(),
                all_namespaces: true,
            };
            let infos = match self.client.call(req).await {
                Ok(i) => i,
                // A snapshotter this host does not run holds nothing.
                Err(e)
                    if matches!(
                        e.code,
                        Code::InvalidArgument | Code::Unimplemented | Code::FailedPrecondition
                    ) =>
                {
                    return Ok(Vec::new());
                }
                Err(e) => return Err(e),
            };
            Ok(infos
                .into_iter()
                .map(|i| BackendObject {
                    id: ObjectId::Snapshot(self.snapshotter.clone(), i.name),
                    created_ns: i.created_ms.saturating_mul(1_000_000),
                })
                .collect())
        })
    }

    fn delete<'a>(&'a self, id: &'a ObjectId) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let ObjectId::Snapshot(sn, full) = id else { return Ok(()) };
            let Some((ns, key)) = full.split_once('/') else {
                return Err(berth_ipc::Error::internal(format!(
                    "snapshot {sn}/{full}: no namespace in its key"
                )));
            };
            let req = snapshot::Remove(snapshot::KeyRef {
                snapshotter: sn.clone(),
                key: key.to_string(),
                namespace: ns.to_string(),
            });
            match self.client.call(req).await {
                Err(e) if e.code == Code::NotFound => Ok(()),
                other => other,
            }
        })
    }
}
