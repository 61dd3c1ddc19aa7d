//! The content service: blobs by digest under `<root>/content`, with containerd's
//! semantics (resumable ingests keyed by ref, one writer per ref, verified and durable
//! commits) plus an fd-passing side socket for peers that read blobs in place.
//!
//! # Layout
//! - [`store`] — the blob store on disk: layout, info, list, delete, read, check.
//! - [`ingest`] — writes in progress: locking, resuming, writing, committing.
//! - [`direct`] — appending ingest data with direct I/O through an aligned staging buffer.
//! - [`service`] — the request handler, one `handle_<request>` per message; write sessions.
//! - [`session`] — write sessions and the in-order application of their chunks.
//! - [`local`] — the store behind the shared `ContentStore` trait (for the conformance suite).
//! - [`fdserver`] — the `content-fd.sock` side socket (ReadFd, appending from a passed fd).
//! - [`append`] — reading a passed fd into an ingest (AppendFd).
//! - [`events`] — `/content/create` and `/content/delete`.

pub mod append;
pub mod direct;
pub mod events;
pub mod fdserver;
pub mod ingest;
pub mod local;
pub mod service;
pub mod session;
pub mod store;

use berth_ipc::content::Content;
use berth_ipc::content::readfd::SOCKET_NAME;
use berth_ipc::publisher::Publisher;
use berth_service_kit::ServiceEnv;
use tokio::net::UnixListener;
use tokio_util::sync::CancellationToken;

pub use service::ContentService;
pub use store::Store;

/// Runs the content service on `listener` (and its side socket in the state dir) until
/// `shutdown` is cancelled.
pub async fn run(env: ServiceEnv, listener: UnixListener, shutdown: CancellationToken) -> anyhow::Result<()> {
    let store = Store::open(&env.data_dir()?).map_err(|e| anyhow::anyhow!("{e}"))?;
    let fd_path = env.config.state.join(SOCKET_NAME);
    let fd_listener = berth_ipc::socket::bind(&fd_path, env.config.group_id())
        .map_err(|e| anyhow::anyhow!("bind {}: {e}", fd_path.display()))?;
    let events = events::Events::new(Publisher::in_state_dir(&env.config.state, "content"));
    let service = ContentService::new(store.clone(), events.clone());
    let fd_server =
        fdserver::FdServer { store, sessions: service.sessions(), access: env.server_config().access };
    let fd_task = tokio::spawn(fd_server.serve(fd_listener, shutdown.clone()));
    let result = berth_service_kit::serve::<Content, _>(&env, service, listener, shutdown).await;
    let _ = fd_task.await;
    let _ = std::fs::remove_file(&fd_path);
    events.flush().await;
    result
}
