//! The `snapshot` service's wire vocabulary: snapshots with containerd's semantics
//! (prepare, view, commit, mounts, remove, stat, update, usage, list, cleanup), layer apply,
//! batch unpack of an image's layers under chainIDs, and diff.
//!
//! Every request names its snapshotter (`overlayfs` or `native`); an empty name means the
//! service's default, and its namespace (an identifier, see [`crate::names`]). Keys of
//! active, view and committed snapshots share one key space per snapshotter **and
//! namespace**: the same key in two namespaces names two snapshots, a parent is looked up in
//! the request's namespace only, and a namespace never sees, mounts, commits onto or removes
//! another's snapshots (an unpack in one namespace never trusts a chain another committed).
//! Errors follow containerd: `NotFound` for a missing key or parent,
//! `AlreadyExists` for a taken key, `FailedPrecondition` when the kind is wrong (committing a
//! view, preparing on an active parent, removing a snapshot with children). The events the
//! service publishes are `SnapshotPrepare`, `SnapshotCommit` and `SnapshotRemove` of
//! [`crate::events::payload`].

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::digest::Digest;

/// Label on a layer blob naming its uncompressed digest.
pub const LABEL_UNCOMPRESSED: &str = "containerd.io/uncompressed";

/// What a snapshot is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Kind {
    /// Writable, not yet committed.
    Active,
    /// A read-only view of a committed parent.
    View,
    /// Read-only, may be a parent.
    Committed,
}

impl Kind {
    /// Lowercase name, as the CLI and filters show it.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Active => "active",
            Kind::View => "view",
            Kind::Committed => "committed",
        }
    }
}

/// A snapshot's record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Info {
    /// Its key (active, view) or name (committed).
    pub name: String,
    /// The committed snapshot it is built on.
    pub parent: Option<String>,
    /// Its kind.
    pub kind: Kind,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// Creation time, ms since the epoch.
    pub created_ms: u64,
    /// Last change, ms since the epoch.
    pub updated_ms: u64,
}

/// One mount, as `mount(8)` would take it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mount {
    /// Filesystem type: `bind` or `overlay`.
    pub kind: String,
    /// The source (`overlay` for overlay mounts).
    pub source: String,
    /// Options (`ro`, `rbind`, `lowerdir=…`).
    pub options: Vec<String>,
}

/// Disk use of a snapshot's own layer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// Bytes allocated.
    pub size: u64,
    /// Inodes.
    pub inodes: u64,
}

/// `Prepare`: a new active snapshot on `parent`. `AlreadyExists` if `key` is taken,
/// `NotFound` if the parent is missing, `FailedPrecondition` if it is not committed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Prepare {
    /// Snapshotter (empty: default).
    pub snapshotter: String,
    /// The new key.
    pub key: String,
    /// A committed snapshot.
    pub parent: Option<String>,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// The namespace the snapshot lives in (its key and parent are looked up there).
    pub namespace: String,
}

/// `View`: a read-only snapshot of `parent`; same rules as [`Prepare`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct View {
    /// Snapshotter (empty: default).
    pub snapshotter: String,
    /// The new key.
    pub key: String,
    /// A committed snapshot.
    pub parent: Option<String>,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// The namespace the snapshot lives in (its key and parent are looked up there).
    pub namespace: String,
}

/// `Commit`: turn the active snapshot `key` into the committed `name`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Commit {
    /// Snapshotter (empty: default).
    pub snapshotter: String,
    /// The committed name.
    pub name: String,
    /// The active key.
    pub key: String,
    /// Labels to add.
    pub labels: BTreeMap<String, String>,
    /// The namespace the snapshot lives in (its key and parent are looked up there).
    pub namespace: String,
}

/// A request naming one snapshot: `Mounts`, `Remove`, `Stat`, `Usage`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KeyRef {
    /// Snapshotter (empty: default).
    pub snapshotter: String,
    /// The key.
    pub key: String,
    /// The namespace the snapshot lives in (its key and parent are looked up there).
    pub namespace: String,
}

/// `Mounts` of an active snapshot or view.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Mounts(pub KeyRef);
/// `Remove` a snapshot; `FailedPrecondition` while it has children.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Remove(pub KeyRef);
/// `Stat` a snapshot.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Stat(pub KeyRef);
/// `Usage` of a snapshot's own layer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GetUsage(pub KeyRef);

/// `Update`: change labels. `fieldpaths` empty replaces all labels; `labels` replaces them
/// all; `labels.k` sets or (absent from `info.labels`) removes one.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Update {
    /// Snapshotter (empty: default).
    pub snapshotter: String,
    /// The snapshot's key.
    pub key: String,
    /// The new labels.
    pub labels: BTreeMap<String, String>,
    /// Which fields to change.
    pub fieldpaths: Vec<String>,
    /// The namespace the snapshot lives in (its key and parent are looked up there).
    pub namespace: String,
}

/// `List` snapshots matching any of `filters` (containerd syntax over `name`, `parent`,
/// `kind`, `labels.*`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct List {
    /// Snapshotter (empty: default).
    pub snapshotter: String,
    /// Filters; empty matches all.
    pub filters: Vec<String>,
    /// The namespace whose snapshots are listed (ignored with `all_namespaces`).
    pub namespace: String,
    /// List every namespace's snapshots, names and parents shown as `<namespace>/<key>`
    /// (garbage collection's view).
    pub all_namespaces: bool,
}

/// `Cleanup`: remove directories that no snapshot owns; returns how many.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Cleanup {
    /// Snapshotter (empty: default).
    pub snapshotter: String,
}

/// `Apply`: extract a layer blob from content into the active snapshot `key`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Apply {
    /// Snapshotter (empty: default).
    pub snapshotter: String,
    /// An active snapshot.
    pub key: String,
    /// The blob's digest in content.
    pub digest: Digest,
    /// Its media type (gzip, zstd or plain tar is told by it, else by magic bytes).
    pub media_type: String,
    /// The namespace the snapshot lives in (its key and parent are looked up there).
    pub namespace: String,
}

/// What an apply found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Applied {
    /// sha256 of the uncompressed stream, trailing bytes included.
    pub diff_id: Digest,
    /// Uncompressed bytes.
    pub size: u64,
}

/// One layer of [`Unpack`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Layer {
    /// Blob digest in content.
    pub digest: Digest,
    /// Media type.
    pub media_type: String,
    /// The diff_id the image config promises; the unpack fails with `DataLoss` otherwise.
    pub diff_id: Digest,
}

/// `Unpack`: apply an image's layers (concurrently on overlayfs) and commit them in order
/// under their chainIDs. Chains already present are not unpacked again.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Unpack {
    /// Snapshotter (empty: default).
    pub snapshotter: String,
    /// Layers, base first.
    pub layers: Vec<Layer>,
    /// Labels put on each committed snapshot.
    pub labels: BTreeMap<String, String>,
    /// The namespace the snapshot lives in (its key and parent are looked up there).
    pub namespace: String,
}

/// `UnpackFollow`: an [`Unpack`] of layers that may still be downloading into content.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UnpackFollow(pub Unpack);

/// What an unpack did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unpacked {
    /// The chainID of the top layer (the snapshot to prepare a container on).
    pub chain_id: Digest,
    /// How many layers were actually extracted (0 when all were present).
    pub extracted: u32,
}

/// `Diff`: the changes from `lower` (committed, or none) to `upper` as a gzip layer written
/// into content, labelled with its diff_id.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Diff {
    /// Snapshotter (empty: default).
    pub snapshotter: String,
    /// The base; `None` means the empty tree.
    pub lower: Option<String>,
    /// The changed snapshot (active or committed).
    pub upper: String,
    /// Labels for the blob besides the uncompressed label.
    pub labels: BTreeMap<String, String>,
    /// The namespace the snapshot lives in (its key and parent are looked up there).
    pub namespace: String,
}

/// The layer a diff produced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Descriptor {
    /// Media type (`application/vnd.oci.image.layer.v1.tar+gzip`).
    pub media_type: String,
    /// Digest of the compressed blob.
    pub digest: Digest,
    /// Its size.
    pub size: u64,
    /// Digest of the uncompressed tar.
    pub diff_id: Digest,
}

/// OCI gzip layer media type.
pub const MEDIA_TYPE_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

crate::protocol! {
    /// The snapshot service (`snapshot.sock`).
    pub protocol Snapshot = "snapshot";
    request SnapshotRequest; response SnapshotResponse;
    /// New active snapshot. Allowed when the key is free and the parent committed.
    Prepare(Prepare) -> Vec<Mount> [];
    /// New view. Same rules as `Prepare`.
    View(View) -> Vec<Mount> [];
    /// Commit an active snapshot. Allowed for active snapshots only.
    Commit(Commit) -> () [];
    /// Mounts of an active snapshot or view.
    Mounts(Mounts) -> Vec<Mount> [idempotent];
    /// Remove a snapshot without children.
    Remove(Remove) -> () [];
    /// A snapshot's record.
    Stat(Stat) -> Info [idempotent];
    /// Change labels.
    Update(Update) -> Info [idempotent];
    /// Disk use of a snapshot's own layer.
    Usage(GetUsage) -> Usage [idempotent];
    /// Snapshots matching the filters.
    List(List) -> Vec<Info> [idempotent];
    /// Drop orphan directories.
    Cleanup(Cleanup) -> u64 [idempotent];
    /// Extract a layer into an active snapshot.
    Apply(Apply) -> Applied [];
    /// Apply and commit an image's layers under chainIDs.
    Unpack(Unpack) -> Unpacked [idempotent];
    /// Produce a layer from two snapshots.
    Diff(Diff) -> Descriptor [];
    /// `Unpack` of layers that may still be downloading: a layer not yet in content is read
    /// from the ingest expected to become it, as its bytes arrive (content's `Follow`).
    UnpackFollow(UnpackFollow) -> Unpacked [idempotent];
}
