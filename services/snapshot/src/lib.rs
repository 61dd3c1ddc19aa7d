//! The snapshot service. Its duties arrive with their issue; today it is the bare service:
//! it listens on `snapshot.sock`, answers the handshake, `Health` and `Metrics`, and exits
//! cleanly on SIGTERM.
//!
//! # Layout
//! - `lib.rs` — [`run`] and the request handler.

use berth_ipc::snapshot::{Snapshot, SnapshotRequest, SnapshotResponse};
use berth_ipc::{Context, Handler, Reply};
use berth_service_kit::ServiceEnv;
use tokio::net::UnixListener;
use tokio_util::sync::CancellationToken;

/// The service's request handler.
#[derive(Debug, Default)]
pub struct SnapshotService;

impl Handler<Snapshot> for SnapshotService {
    async fn handle(&self, req: SnapshotRequest, _ctx: Context) -> Reply<SnapshotResponse> {
        match req {}
    }
}

/// Runs the snapshot service on `listener` until `shutdown` is cancelled.
pub async fn run(env: ServiceEnv, listener: UnixListener, shutdown: CancellationToken) -> anyhow::Result<()> {
    berth_service_kit::serve::<Snapshot, _>(&env, SnapshotService, listener, shutdown).await
}
