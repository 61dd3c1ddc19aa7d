//! The runtime service. Its duties arrive with their issue; today it is the bare service:
//! it listens on `runtime.sock`, answers the handshake, `Health` and `Metrics`, and exits
//! cleanly on SIGTERM.
//!
//! # Layout
//! - `lib.rs` — [`run`] and the request handler.
//! - [`bundle`] — a task's bundle directory and its durable exit record.
//! - [`shim`] — `berth-shim`: daemon, reaper, OCI runtime calls, private socket.
//! - [`spec`] — the OCI spec of a container from its image config and options.

pub mod bundle;
pub mod shim;
pub mod spec;

use berth_ipc::runtime::{Runtime, RuntimeRequest, RuntimeResponse};
use berth_ipc::{Context, Handler, Reply};
use berth_service_kit::ServiceEnv;
use tokio::net::UnixListener;
use tokio_util::sync::CancellationToken;

/// The service's request handler.
#[derive(Debug, Default)]
pub struct RuntimeService;

impl Handler<Runtime> for RuntimeService {
    async fn handle(&self, req: RuntimeRequest, _ctx: Context) -> Reply<RuntimeResponse> {
        let _ = req;
        Reply::Unary(Err(berth_ipc::Error::new(berth_ipc::Code::Unimplemented, "not yet")))
    }
}

/// Runs the runtime service on `listener` until `shutdown` is cancelled.
pub async fn run(env: ServiceEnv, listener: UnixListener, shutdown: CancellationToken) -> anyhow::Result<()> {
    berth_service_kit::serve::<Runtime, _>(&env, RuntimeService, listener, shutdown).await
}
