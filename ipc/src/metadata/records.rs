//! The metadata service's records, as they travel and as they are stored.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::digest::Digest;

/// Labels: string keys to string values.
pub type Labels = BTreeMap<String, String>;

/// A namespace and its labels.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Namespace {
    /// Its name (an identifier).
    pub name: String,
    /// Its labels.
    pub labels: Labels,
}

/// What a blob is: its media type, digest and size (an OCI descriptor without extras).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Descriptor {
    /// OCI media type, e.g. `application/vnd.oci.image.manifest.v1+json`.
    pub media_type: String,
    /// The blob's digest.
    pub digest: Digest,
    /// The blob's size in bytes.
    pub size: u64,
}

/// An image: a name pointing at a root blob (index or manifest).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Image {
    /// Its name, usually a normalized reference (`docker.io/library/alpine:latest`).
    pub name: String,
    /// The root blob. Field path `target`.
    pub target: Descriptor,
    /// Its labels.
    pub labels: Labels,
    /// When it was created (set by the service).
    pub created: u64,
    /// When it was last updated (set by the service).
    pub updated: u64,
}

/// The OCI runtime a container runs with.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuntimeInfo {
    /// Runtime name (`runc`, `crun`, `io.containerd.runc.v2`, …).
    pub name: String,
    /// Opaque runtime options.
    pub options: Vec<u8>,
}

/// A container: the record a task is started from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Container {
    /// Its id (an identifier). Immutable.
    pub id: String,
    /// The image it was made from. Field path `image`.
    pub image: String,
    /// Its runtime. Immutable.
    pub runtime: RuntimeInfo,
    /// The OCI runtime spec as JSON bytes. Field path `spec`.
    pub spec: Vec<u8>,
    /// The snapshotter of its root filesystem. Field path `snapshotter` (settable only while
    /// empty).
    pub snapshotter: String,
    /// Its root filesystem's snapshot key. Field path `snapshot_key` (settable only while
    /// empty).
    pub snapshot_key: String,
    /// Its labels.
    pub labels: Labels,
    /// Opaque extensions by name. Field paths `extensions`, `extensions.<name>`.
    pub extensions: BTreeMap<String, Vec<u8>>,
    /// When it was created (set by the service).
    pub created: u64,
    /// When it was last updated (set by the service).
    pub updated: u64,
}

/// A pod sandbox: what a group of containers shares (network, IPC and UTS namespaces, a
/// cgroup parent, `/dev/shm`, `resolv.conf`, `hosts`, `hostname`), owned by the runtime
/// service. Its live state (namespaces held or not) is on the state dir, not here.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sandbox {
    /// Its id (an identifier). Immutable.
    pub id: String,
    /// The OCI runtime its containers run with. Immutable.
    pub runtime: RuntimeInfo,
    /// The runtime service's sandbox spec as JSON bytes. Field path `spec`.
    pub spec: Vec<u8>,
    /// Its labels.
    pub labels: Labels,
    /// Opaque extensions by name (the CRI service keeps its pod config here). Field paths
    /// `extensions`, `extensions.<name>`.
    pub extensions: BTreeMap<String, Vec<u8>>,
    /// When it was created (set by the service).
    pub created: u64,
    /// When it was last updated (set by the service).
    pub updated: u64,
}

/// A blob as seen by one namespace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContentRecord {
    /// The blob's digest.
    pub digest: Digest,
    /// The blob's size in bytes.
    pub size: u64,
    /// Its labels in this namespace (`containerd.io/gc.ref.content…` among them).
    pub labels: Labels,
    /// When it was recorded.
    pub created: u64,
    /// When it was last updated.
    pub updated: u64,
}

/// A snapshot as seen by one namespace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotRecord {
    /// The snapshotter (`overlayfs`, `native`).
    pub snapshotter: String,
    /// The snapshot's key.
    pub key: String,
    /// Its parent's key, if any (a GC reference).
    pub parent: Option<String>,
    /// Its labels in this namespace.
    pub labels: Labels,
    /// When it was recorded.
    pub created: u64,
    /// When it was last updated.
    pub updated: u64,
}

/// A lease: protection for everything it names until it is deleted or expires.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    /// Its id (an identifier).
    pub id: String,
    /// Its labels.
    pub labels: Labels,
    /// When it was created.
    pub created: u64,
    /// When it expires, if ever; an expired lease protects nothing and is deleted by GC.
    pub expires: Option<u64>,
}

/// Something a lease protects.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum LeaseResource {
    /// A blob, recorded or not yet.
    Content(Digest),
    /// An ingest in progress, by its ref.
    Ingest(String),
    /// A snapshot.
    Snapshot {
        /// The snapshotter.
        snapshotter: String,
        /// The key.
        key: String,
    },
}

/// What a garbage-collection pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GcReport {
    /// Content records removed, over all namespaces.
    pub content_records: u64,
    /// Snapshot records removed, over all namespaces.
    pub snapshot_records: u64,
    /// Expired leases deleted.
    pub leases: u64,
    /// Blobs deleted from the content store.
    pub blobs_deleted: u64,
    /// Snapshots deleted from the snapshot service.
    pub snapshots_deleted: u64,
    /// Backend objects spared because they are younger than the grace period and never had
    /// a record.
    pub spared: u64,
    /// Backend deletions that failed (retried on the next pass).
    pub errors: Vec<String>,
    /// Time spent marking and sweeping records, µs.
    pub mark_sweep_us: u64,
    /// Whole pass, µs.
    pub total_us: u64,
}
