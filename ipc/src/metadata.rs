//! The `metadata` service's wire vocabulary: namespaces, images, containers, content and
//! snapshot records, leases, and garbage collection.
//!
//! Every object lives in a namespace named in the request (an identifier, see
//! [`crate::names`]); a namespace is created implicitly by the first write into it. Lists are
//! streams of pages (`Vec<T>`, at most [`LIST_PAGE`] items each) and take containerd-style
//! filters ([`crate::filter`]). Updates take field paths: `labels` replaces the whole label
//! set, `labels.<key>` sets or (when absent from the update) removes one label; other paths
//! are named per object. An empty path list updates every mutable field.
//!
//! Timestamps are nanoseconds since the Unix epoch.

mod records;

use serde::{Deserialize, Serialize};

use crate::digest::Digest;
pub use records::*;

/// Items per page of a list stream.
pub const LIST_PAGE: usize = 512;

/// `ListNamespaces`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ListNamespaces;

/// `CreateNamespace`: `AlreadyExists` if it exists.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CreateNamespace {
    /// The namespace.
    pub namespace: Namespace,
}

/// `UpdateNamespace`: its labels, by field paths (`labels`, `labels.<k>`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UpdateNamespace {
    /// The new state.
    pub namespace: Namespace,
    /// Which fields to change.
    pub paths: Vec<String>,
}

/// `DeleteNamespace`: `FailedPrecondition` while it holds any object.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeleteNamespace {
    /// Its name.
    pub name: String,
}

/// A request on one object by name in a namespace (`GetImage`, `DeleteContainer`, …).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ByName {
    /// The namespace.
    pub namespace: String,
    /// The object's name, id or key.
    pub name: String,
}

/// A list request: a namespace and filters (any of them may match; empty = all).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ListIn {
    /// The namespace.
    pub namespace: String,
    /// Filters in containerd's syntax.
    pub filters: Vec<String>,
}

/// `GetImage`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GetImage(pub ByName);
/// `ListImages`: filter fields `name`, `target.digest`, `target.mediatype`, `labels.<k>`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ListImages(pub ListIn);

/// `CreateImage`: `AlreadyExists` if the name is taken.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CreateImage {
    /// The namespace.
    pub namespace: String,
    /// The image (`created`/`updated` are ignored).
    pub image: Image,
}

/// `UpdateImage`: field paths `labels`, `labels.<k>`, `target`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UpdateImage {
    /// The namespace.
    pub namespace: String,
    /// The new state (found by name).
    pub image: Image,
    /// Which fields to change.
    pub paths: Vec<String>,
}

/// `DeleteImage`; with `sync`, the reply comes after a GC pass has run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeleteImage {
    /// The namespace.
    pub namespace: String,
    /// The image's name.
    pub name: String,
    /// Run a GC pass before answering and return its report.
    pub sync: bool,
}

/// `GetContainer`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GetContainer(pub ByName);
/// `ListContainers`: filter fields `id`, `image`, `runtime.name`, `snapshotter`,
/// `labels.<k>`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ListContainers(pub ListIn);
/// `CreateContainer`: `AlreadyExists` if the id is taken.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CreateContainer {
    /// The namespace.
    pub namespace: String,
    /// The container (`created`/`updated` are ignored).
    pub container: Container,
}
/// `UpdateContainer`: field paths `labels`, `labels.<k>`, `image`, `spec`, `snapshotter`,
/// `snapshot_key`, `extensions`, `extensions.<k>`; `id` and `runtime` are immutable.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UpdateContainer {
    /// The namespace.
    pub namespace: String,
    /// The new state (found by id).
    pub container: Container,
    /// Which fields to change.
    pub paths: Vec<String>,
}
/// `DeleteContainer`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeleteContainer(pub ByName);

/// `GetSandbox`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GetSandbox(pub ByName);
/// `ListSandboxes`: filter fields `id`, `runtime.name`, `labels.<k>`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ListSandboxes(pub ListIn);
/// `CreateSandbox`: `AlreadyExists` if the id is taken.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CreateSandbox {
    /// The namespace.
    pub namespace: String,
    /// The sandbox (`created`/`updated` are ignored).
    pub sandbox: Sandbox,
}
/// `UpdateSandbox`: field paths `labels`, `labels.<k>`, `spec`, `extensions`,
/// `extensions.<k>`; `id` and `runtime` are immutable.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UpdateSandbox {
    /// The namespace.
    pub namespace: String,
    /// The new state (found by id).
    pub sandbox: Sandbox,
    /// Which fields to change.
    pub paths: Vec<String>,
}
/// `DeleteSandbox`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeleteSandbox(pub ByName);

/// `PutContent`: records a blob in a namespace (creating or replacing its labels), and,
/// under `lease`, adds it to that lease in the same transaction.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PutContent {
    /// The namespace.
    pub namespace: String,
    /// The blob's digest.
    pub digest: Digest,
    /// The blob's size.
    pub size: u64,
    /// Its labels.
    pub labels: Labels,
    /// A lease to add it to.
    pub lease: Option<String>,
}
/// `GetContent`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GetContent {
    /// The namespace.
    pub namespace: String,
    /// The digest.
    pub digest: Digest,
}
/// `ListContent`: filter fields `digest`, `size`, `labels.<k>`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ListContent(pub ListIn);
/// `UpdateContent`: field paths `labels`, `labels.<k>`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UpdateContent {
    /// The namespace.
    pub namespace: String,
    /// The digest.
    pub digest: Digest,
    /// The new labels.
    pub labels: Labels,
    /// Which labels to change.
    pub paths: Vec<String>,
}
/// `RemoveContent`: drops the record; the blob goes at the next GC if nothing else needs it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RemoveContent {
    /// The namespace.
    pub namespace: String,
    /// The digest.
    pub digest: Digest,
}

/// `PutSnapshot`: records a snapshot (creating or replacing parent and labels), and, under
/// `lease`, adds it to that lease in the same transaction.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PutSnapshot {
    /// The namespace.
    pub namespace: String,
    /// The record (`created`/`updated` are ignored).
    pub snapshot: SnapshotRecord,
    /// A lease to add it to.
    pub lease: Option<String>,
}
/// A snapshot record's address.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SnapshotRef {
    /// The namespace.
    pub namespace: String,
    /// The snapshotter.
    pub snapshotter: String,
    /// The key.
    pub key: String,
}
/// `GetSnapshot`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GetSnapshot(pub SnapshotRef);
/// `ListSnapshots` of one snapshotter: filter fields `key`, `parent`, `labels.<k>`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ListSnapshots {
    /// Namespace and filters.
    pub list: ListIn,
    /// The snapshotter.
    pub snapshotter: String,
}
/// `UpdateSnapshot`: field paths `labels`, `labels.<k>`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UpdateSnapshot {
    /// The record's address.
    pub at: SnapshotRef,
    /// The new labels.
    pub labels: Labels,
    /// Which labels to change.
    pub paths: Vec<String>,
}
/// `RemoveSnapshot`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RemoveSnapshot(pub SnapshotRef);

/// `CreateLease`: `AlreadyExists` if the id is taken.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CreateLease {
    /// The namespace.
    pub namespace: String,
    /// Its id; empty asks the service to generate one.
    pub id: String,
    /// Its labels.
    pub labels: Labels,
    /// Time to live in ms; `None` lives until deleted.
    pub ttl_ms: Option<u64>,
}
/// `ListLeases`: filter fields `id`, `labels.<k>`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ListLeases(pub ListIn);
/// `DeleteLease`; with `sync`, the reply comes after a GC pass.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeleteLease {
    /// The namespace.
    pub namespace: String,
    /// The lease id.
    pub id: String,
    /// Run a GC pass before answering.
    pub sync: bool,
}
/// `RenewLease`: the lease now expires `ttl_ms` from now. `NotFound` if it is absent or has
/// already expired (what it protected may be gone: the holder must not go on as if covered).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RenewLease {
    /// The namespace.
    pub namespace: String,
    /// The lease id.
    pub id: String,
    /// New time to live in ms.
    pub ttl_ms: u64,
}
/// A lease and one of its resources.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LeaseResourceRequest {
    /// The namespace.
    pub namespace: String,
    /// The lease id.
    pub lease: String,
    /// The resource.
    pub resource: LeaseResource,
}
/// `AddLeaseResource`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AddLeaseResource(pub LeaseResourceRequest);
/// `RemoveLeaseResource`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RemoveLeaseResource(pub LeaseResourceRequest);
/// `ListLeaseResources`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ListLeaseResources(pub ByName);

/// `Gc`: run one garbage-collection pass now.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Gc;

crate::protocol! {
    /// The metadata service (`metadata.sock`).
    pub protocol Metadata = "metadata";
    request MetadataRequest; response MetadataResponse;
    /// Every namespace. Always allowed.
    ListNamespaces(ListNamespaces) -> Vec<Namespace> [idempotent];
    /// Create a namespace. Always allowed.
    CreateNamespace(CreateNamespace) -> Namespace [];
    /// Change a namespace's labels. `NotFound` if absent.
    UpdateNamespace(UpdateNamespace) -> Namespace [idempotent];
    /// Delete an empty namespace.
    DeleteNamespace(DeleteNamespace) -> () [];
    /// One image. `NotFound` if absent.
    GetImage(GetImage) -> Image [idempotent];
    /// Images matching the filters, in pages.
    ListImages(ListImages) -> Vec<Image> [idempotent, stream];
    /// Create an image.
    CreateImage(CreateImage) -> Image [];
    /// Update an image by field paths. `NotFound` if absent.
    UpdateImage(UpdateImage) -> Image [idempotent];
    /// Delete an image; `Some(report)` when `sync` ran a GC pass.
    DeleteImage(DeleteImage) -> Option<GcReport> [];
    /// One container. `NotFound` if absent.
    GetContainer(GetContainer) -> Container [idempotent];
    /// Containers matching the filters, in pages.
    ListContainers(ListContainers) -> Vec<Container> [idempotent, stream];
    /// Create a container.
    CreateContainer(CreateContainer) -> Container [];
    /// Update a container by field paths. `NotFound` if absent; immutable fields refused.
    UpdateContainer(UpdateContainer) -> Container [idempotent];
    /// Delete a container. `NotFound` if absent.
    DeleteContainer(DeleteContainer) -> () [];
    /// Record a blob in a namespace (idempotent).
    PutContent(PutContent) -> ContentRecord [idempotent];
    /// One content record. `NotFound` if absent.
    GetContent(GetContent) -> ContentRecord [idempotent];
    /// Content records matching the filters, in pages.
    ListContent(ListContent) -> Vec<ContentRecord> [idempotent, stream];
    /// Change a content record's labels. `NotFound` if absent.
    UpdateContent(UpdateContent) -> ContentRecord [idempotent];
    /// Remove a content record. `NotFound` if absent.
    RemoveContent(RemoveContent) -> () [];
    /// Record a snapshot in a namespace (idempotent).
    PutSnapshot(PutSnapshot) -> SnapshotRecord [idempotent];
    /// One snapshot record. `NotFound` if absent.
    GetSnapshot(GetSnapshot) -> SnapshotRecord [idempotent];
    /// Snapshot records of one snapshotter matching the filters, in pages.
    ListSnapshots(ListSnapshots) -> Vec<SnapshotRecord> [idempotent, stream];
    /// Change a snapshot record's labels. `NotFound` if absent.
    UpdateSnapshot(UpdateSnapshot) -> SnapshotRecord [idempotent];
    /// Remove a snapshot record. `NotFound` if absent.
    RemoveSnapshot(RemoveSnapshot) -> () [];
    /// Create a lease.
    CreateLease(CreateLease) -> Lease [];
    /// Leases matching the filters.
    ListLeases(ListLeases) -> Vec<Lease> [idempotent];
    /// Delete a lease and its resource list. `NotFound` if absent.
    DeleteLease(DeleteLease) -> Option<GcReport> [];
    /// Add a resource to a lease (idempotent). `NotFound` if the lease is absent.
    AddLeaseResource(AddLeaseResource) -> () [idempotent];
    /// Remove a resource from a lease (idempotent).
    RemoveLeaseResource(RemoveLeaseResource) -> () [idempotent];
    /// A lease's resources. `NotFound` if the lease is absent.
    ListLeaseResources(ListLeaseResources) -> Vec<LeaseResource> [idempotent];
    /// Run a garbage-collection pass now. Always allowed.
    Gc(Gc) -> GcReport [idempotent];
    /// Push a lease's expiry out (a long job's heartbeat).
    RenewLease(RenewLease) -> Lease [idempotent];
    /// One sandbox. `NotFound` if absent.
    GetSandbox(GetSandbox) -> Sandbox [idempotent];
    /// Sandboxes matching the filters, in pages.
    ListSandboxes(ListSandboxes) -> Vec<Sandbox> [idempotent, stream];
    /// Create a sandbox.
    CreateSandbox(CreateSandbox) -> Sandbox [];
    /// Update a sandbox by field paths. `NotFound` if absent; immutable fields refused.
    UpdateSandbox(UpdateSandbox) -> Sandbox [idempotent];
    /// Delete a sandbox. `NotFound` if absent.
    DeleteSandbox(DeleteSandbox) -> () [];
}
