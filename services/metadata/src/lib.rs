//! The metadata service. Its duties arrive with their issue; today it is the bare service:
//! it listens on `metadata.sock`, answers the handshake, `Health` and `Metrics`, and exits
//! cleanly on SIGTERM.
//!
//! # Layout
//! - `lib.rs` — [`run`] and the request handler.

use berth_ipc::metadata::{Metadata, MetadataRequest, MetadataResponse};
use berth_ipc::{Context, Handler, Reply};
use berth_service_kit::ServiceEnv;
use tokio::net::UnixListener;
use tokio_util::sync::CancellationToken;

/// The service's request handler.
#[derive(Debug, Default)]
pub struct MetadataService;

impl Handler<Metadata> for MetadataService {
    async fn handle(&self, req: MetadataRequest, _ctx: Context) -> Reply<MetadataResponse> {
        match req {}
    }
}

/// Runs the metadata service on `listener` until `shutdown` is cancelled.
pub async fn run(env: ServiceEnv, listener: UnixListener, shutdown: CancellationToken) -> anyhow::Result<()> {
    berth_service_kit::serve::<Metadata, _>(&env, MetadataService, listener, shutdown).await
}
