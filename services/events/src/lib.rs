//! The events service. Its duties arrive with their issue; today it is the bare service:
//! it listens on `events.sock`, answers the handshake, `Health` and `Metrics`, and exits
//! cleanly on SIGTERM.
//!
//! # Layout
//! - `lib.rs` — [`run`] and the request handler.

use berth_ipc::events::{Events, EventsRequest, EventsResponse};
use berth_ipc::{Context, Handler, Reply};
use berth_service_kit::ServiceEnv;
use tokio::net::UnixListener;
use tokio_util::sync::CancellationToken;

/// The service's request handler.
#[derive(Debug, Default)]
pub struct EventsService;

impl Handler<Events> for EventsService {
    async fn handle(&self, req: EventsRequest, _ctx: Context) -> Reply<EventsResponse> {
        match req {}
    }
}

/// Runs the events service on `listener` until `shutdown` is cancelled.
pub async fn run(env: ServiceEnv, listener: UnixListener, shutdown: CancellationToken) -> anyhow::Result<()> {
    berth_service_kit::serve::<Events, _>(&env, EventsService, listener, shutdown).await
}
