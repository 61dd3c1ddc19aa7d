//! The content service. Its duties arrive with their issue; today it is the bare service:
//! it listens on `content.sock`, answers the handshake, `Health` and `Metrics`, and exits
//! cleanly on SIGTERM.
//!
//! # Layout
//! - `lib.rs` — [`run`] and the request handler.

use berth_ipc::content::{Content, ContentRequest, ContentResponse};
use berth_ipc::{Context, Handler, Reply};
use berth_service_kit::ServiceEnv;
use tokio::net::UnixListener;
use tokio_util::sync::CancellationToken;

/// The service's request handler.
#[derive(Debug, Default)]
pub struct ContentService;

impl Handler<Content> for ContentService {
    async fn handle(&self, req: ContentRequest, _ctx: Context) -> Reply<ContentResponse> {
        match req {}
    }
}

/// Runs the content service on `listener` until `shutdown` is cancelled.
pub async fn run(env: ServiceEnv, listener: UnixListener, shutdown: CancellationToken) -> anyhow::Result<()> {
    berth_service_kit::serve::<Content, _>(&env, ContentService, listener, shutdown).await
}
