//! The snapshot service: turns image layers into file systems a container can mount, and a
//! container's changes back into a layer. Two backends live side by side, `overlayfs`
//! (default; one directory per layer, stacked by overlay mounts) and `native` (full copies,
//! for file systems without overlay), each with its own key index (a small fsynced JSON
//! file; see [`index`] for why not fjall). Layers are applied by a safe extractor of its
//! own over the `tar` crate's entry iterator: every path is resolved inside the snapshot
//! root with `openat2(RESOLVE_IN_ROOT)`, nothing is ever followed at the final component,
//! and a stranger's tarball cannot write, link, chmod, chown or touch anything outside.
//!
//! # Layout
//! - [`service`] — the request handler, one `handle_<request>` per message.
//! - [`backend`] — a backend's operations with containerd's semantics, and its mounts.
//! - [`index`] — the key index and its durable file; [`scope`] — namespaces in its keys.
//! - [`mounts`] — mount lists of snapshots and views.
//! - [`layer`] — applying a layer: decompression and diff_id, names, the extractor,
//!   metadata, whiteouts.
//! - [`unpack`] — batch unpack of an image's layers under chainIDs; [`follow`] reads a layer
//!   still downloading.
//! - [`diff`] — producing a layer from two snapshots; [`tarwrite`] writes it; [`walk`] reads
//!   the trees by directory fds, safe against a live container.
//! - [`blobs`] — where layer blobs come from and diffs go; [`content`] is the content
//!   service's side of it (blob fds by SCM_RIGHTS, diff uploads).
//! - [`store`] — the [`store::Snapshotter`] trait the local store and the socket proxy share.
//! - [`copy`] — the native backend's tree copy, and disk usage.
//! - [`filters`] — `List` filter fields.
//! - [`events`] — `/snapshot/*` events.
//! - `sys` — xattr syscalls (the crate's only `unsafe`).

pub mod backend;
pub mod blobs;
pub mod content;
pub mod copy;
pub mod diff;
pub mod events;
pub mod filters;
pub mod follow;
pub mod index;
pub mod layer;
pub mod mounts;
pub mod scope;
pub mod service;
pub mod store;
mod sys;
pub mod tarwrite;
pub mod unpack;
pub mod walk;

use std::sync::Arc;

use berth_ipc::snapshot::Snapshot;
use berth_service_kit::ServiceEnv;
use tokio::net::UnixListener;
use tokio_util::sync::CancellationToken;

pub use backend::{Backend, BackendKind};
pub use blobs::{Blobs, DirBlobs};
pub use service::SnapshotService;

/// Builds the service for `env`, reading and writing blobs through `blobs`, publishing no
/// events (in-process use).
pub fn build(env: &ServiceEnv, blobs: Arc<dyn Blobs>) -> anyhow::Result<SnapshotService> {
    build_with_events(env, blobs, events::Events::none())
}

/// Builds the service with an event sink.
pub fn build_with_events(
    env: &ServiceEnv,
    blobs: Arc<dyn Blobs>,
    events: events::Events,
) -> anyhow::Result<SnapshotService> {
    let cfg = &env.config.snapshot;
    let root = &env.config.root;
    let mut overlay = Backend::open(root, BackendKind::Overlay, cfg.max_layer_bytes)?;
    let mut native = Backend::open(root, BackendKind::Native, cfg.max_layer_bytes)?;
    let limits = layer::Limits {
        bytes: cfg.max_layer_bytes,
        header_bytes: cfg.max_header_bytes,
        entries: cfg.max_layer_entries,
        memory_bytes: cfg.max_layer_memory_bytes,
    };
    overlay.limits = limits;
    native.limits = limits;
    // A crash between a snapshot dir and its record (either way round) leaves a dir no
    // record owns; nothing is in flight yet, so every such dir is an orphan.
    for b in [&overlay, &native] {
        match b.cleanup() {
            Ok(0) => {}
            Ok(n) => tracing::info!(backend = b.kind().name(), removed = n, "removed orphan snapshot dirs"),
            Err(e) => tracing::warn!(backend = b.kind().name(), error = %e, "orphan snapshot dirs"),
        }
    }
    let default = BackendKind::parse(&cfg.default_snapshotter)?;
    let parallel = match cfg.parallel_unpack {
        0 => std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2),
        n => n,
    };
    Ok(SnapshotService::new(overlay, native, default, blobs, parallel, events))
}

/// Runs the snapshot service on `listener` until `shutdown` is cancelled.
pub async fn run(env: ServiceEnv, listener: UnixListener, shutdown: CancellationToken) -> anyhow::Result<()> {
    let client = berth_ipc::Client::in_state_dir(&env.config.state, env.client_options());
    let blobs: Arc<dyn Blobs> =
        Arc::new(content::ContentBlobs(berth_ipc::content::proxy::ContentClient::new(client)));
    run_with(env, listener, shutdown, blobs).await
}

/// Runs the service with a given blob store (tests use a [`DirBlobs`]).
pub async fn run_with(
    env: ServiceEnv,
    listener: UnixListener,
    shutdown: CancellationToken,
    blobs: Arc<dyn Blobs>,
) -> anyhow::Result<()> {
    let events =
        events::Events::new(berth_ipc::publisher::Publisher::in_state_dir(&env.config.state, "snapshot"));
    let service = build_with_events(&env, blobs, events.clone())?;
    let result = berth_service_kit::serve::<Snapshot, _>(&env, service, listener, shutdown).await;
    events.flush().await;
    result
}
