//! berth's client library: one handle with a typed client per service, found through the
//! state dir, and distribution (import, export, pull, push, unpack) as in containerd 1.x:
//! blobs into content under a lease, records with GC reference labels in metadata, layers
//! unpacked through the snapshot service, the image record last.
//!
//! # Layout
//! - `lib.rs` — [`Services`].
//! - [`oci`] — media types, descriptors, manifests, indexes, configs, platforms.
//! - [`config_check`] — hostile `User`, `WorkingDir`, `Volumes` refused on the way in.
//! - [`reference`] — Docker-style reference normalization.
//! - [`registry`] — the OCI distribution API client (auth, manifests, blobs, uploads).
//! - [`watchdog`] — stall timeouts on registry responses (slow-loris, silent peers).
//! - [`progress`] — per-blob progress reports.
//! - [`pull`] — pull with parallel, resumable layer downloads.
//! - [`push`] — push, skipping blobs the registry has.
//! - [`export`] — OCI layout tar export.
//! - [`check`] — is an image complete?
//! - [`commit`] — a container's changes as a new image.
//! - [`commit_pause`] — freezing a running container while it is committed.
//! - [`session`] — a job's namespace, lease and blob writes.
//! - [`image`] — resolve, record with GC labels, unpack, create the image record.
//! - [`archive`] — tar entries streamed from a blocking reader.
//! - [`import`] — OCI layout and docker-archive import.
//! - [`mount`] — read-only views of images on a directory.
//! - [`names`] — the one normalization of image names users type.
//! - [`rootfs`] — single-layer images from rootfs tarballs.
//! - [`time`] — RFC 3339 times without a date library.
//! - [`unpack`] — unpacking a stored image (`images unpack`, before `run`).

pub mod archive;
pub mod check;
pub mod commit;
pub mod commit_pause;
pub use berth_oci::config_check;
pub mod content_ns;
pub mod export;
pub mod image;
pub mod import;
pub mod mount;
pub mod names;
pub mod oci;
pub mod progress;
pub mod pull;
pub mod pull_docs;
pub mod push;
pub mod reference;
pub mod registry;
pub mod registry_auth;
pub mod rootfs;
pub mod session;
pub mod time;
pub mod unpack;
pub mod watchdog;

use std::path::{Path, PathBuf};

use berth_ipc::content::Content;
use berth_ipc::events::Events;
use berth_ipc::launcher::Launcher;
use berth_ipc::metadata::Metadata;
use berth_ipc::runtime::Runtime;
use berth_ipc::snapshot::Snapshot;
use berth_ipc::{Client, ClientOptions};

/// The default state dir.
pub const DEFAULT_STATE: &str = "/run/berth";

/// A client of every berth service, addressed through one state dir.
#[derive(Clone)]
pub struct Services {
    state: PathBuf,
    /// The launcher's control socket.
    pub launcher: Client<Launcher>,
    /// The content service.
    pub content: Client<Content>,
    /// The metadata service.
    pub metadata: Client<Metadata>,
    /// The snapshot service.
    pub snapshot: Client<Snapshot>,
    /// The runtime service.
    pub runtime: Client<Runtime>,
    /// The events service.
    pub events: Client<Events>,
    /// The CRI service (its berth-protocol side).
    pub cri: Client<berth_ipc::cri::Cri>,
}

impl Services {
    /// Clients of the services whose sockets are in `state`.
    pub fn new(state: &Path, options: ClientOptions) -> Self {
        Services {
            state: state.to_path_buf(),
            launcher: Client::in_state_dir(state, options.clone()),
            content: Client::in_state_dir(state, options.clone()),
            metadata: Client::in_state_dir(state, options.clone()),
            snapshot: Client::in_state_dir(state, options.clone()),
            runtime: Client::in_state_dir(state, options.clone()),
            events: Client::in_state_dir(state, options.clone()),
            cri: Client::in_state_dir(state, options),
        }
    }

    /// The state dir.
    pub fn state(&self) -> &Path {
        &self.state
    }

    /// `Health` of every service, in start order: `(name, result)`.
    pub async fn health_all(&self) -> Vec<(&'static str, berth_ipc::Result<berth_ipc::Health>)> {
        vec![
            ("events", self.events.health().await),
            ("content", self.content.health().await),
            ("snapshot", self.snapshot.health().await),
            ("metadata", self.metadata.health().await),
            ("runtime", self.runtime.health().await),
            ("cri", self.cri.health().await),
        ]
    }
}
