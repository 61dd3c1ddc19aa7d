//! The server scaffold every service runs: accept with a connection cap, check peer
//! credentials before reading anything, do the handshake, decode requests, run each call
//! (in its own task as soon as it has to wait, so answers may overtake each other), answer
//! `Health` and `Metrics` itself, and shut down gracefully. Running one call and writing
//! frames is in `server/answer.rs`; one connection's life in `server/connection.rs`.

mod answer;
mod connection;
mod outbox;

use crate::sync::lock;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::net::UnixListener;
use tokio::sync::{Semaphore, mpsc};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::error::{Error, Result};
use crate::frame;
use crate::metrics::Recorder;
use crate::peer::{AccessPolicy, Peer};
use crate::protocol::Protocol;
pub(crate) use answer::write_loop;
use connection::{refuse, serve_connection};
use outbox::Outbox;

/// How a handler answers one request.
pub enum Reply<R> {
    /// One response or an error.
    Unary(Result<R>),
    /// A stream of items; the stream ends when the sender is dropped, or with an error item.
    Stream(mpsc::Receiver<Result<R>>),
}

impl<R> Reply<R> {
    /// A stream answer and the sender that feeds it (bounded to `capacity` items in flight).
    pub fn stream(capacity: usize) -> (mpsc::Sender<Result<R>>, Reply<R>) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        (tx, Reply::Stream(rx))
    }
}

impl<R> From<Result<R>> for Reply<R> {
    fn from(r: Result<R>) -> Self {
        Reply::Unary(r)
    }
}

/// What a handler knows about the call it serves.
#[derive(Debug, Clone)]
pub struct Context {
    /// Who called.
    pub peer: Arc<Peer>,
    /// Cancelled when the client cancels the call or disconnects; on shutdown, at once for a
    /// stream and after the grace time for a unary call.
    pub cancel: CancellationToken,
    answers: Answers,
}

impl Context {
    /// Reserves room for about `bytes` of answer before producing it (reading a chunk of a
    /// blob, say), waiting while the connection's earlier answers are not taken by the
    /// client. The reservation travels with this call's next answer frame and is released
    /// once that is written, so what a connection's calls hold is bounded by
    /// `max_queued_bytes` however many calls are in flight. Returns at once (reserving
    /// nothing) if the connection is gone.
    pub async fn reserve(&self, bytes: usize) {
        if let Some(credit) = self.answers.outbox.reserve(bytes).await {
            lock(&self.answers.ledger).push_back(credit);
        }
    }
}

/// A call's reservations, oldest first (see [`Context::reserve`]).
#[derive(Clone)]
struct Answers {
    outbox: Outbox,
    ledger: Arc<Mutex<std::collections::VecDeque<tokio::sync::OwnedSemaphorePermit>>>,
}

impl Answers {
    fn take(&self) -> Option<tokio::sync::OwnedSemaphorePermit> {
        lock(&self.ledger).pop_front()
    }
}

impl std::fmt::Debug for Answers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Answers").field("reserved", &lock(&self.ledger).len()).finish()
    }
}

/// A service's request handler.
pub trait Handler<P: Protocol>: Send + Sync + 'static {
    /// Answers one request.
    fn handle(&self, req: P::Request, ctx: Context) -> impl Future<Output = Reply<P::Response>> + Send;

    /// Service-specific figures added to `Metrics`.
    fn gauges(&self) -> Vec<(String, f64)> {
        Vec::new()
    }
}

/// Limits and identity of a server.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// The version reported in `Welcome` and `Health`.
    pub version: String,
    /// Who may connect.
    pub access: AccessPolicy,
    /// Connections served at once; more are refused with `Unavailable`.
    pub max_connections: usize,
    /// Requests in flight on one connection; the reader waits when it is reached.
    pub max_inflight: usize,
    /// Time a new connection has to send `Hello`.
    pub handshake_timeout: Duration,
    /// Largest frame accepted.
    pub max_frame_len: u32,
    /// Time in-flight requests get to finish on shutdown.
    pub shutdown_grace: Duration,
    /// Answer bytes queued on one connection and not yet taken by the client; calls wait
    /// (and no new request is read) while it is reached.
    pub max_queued_bytes: usize,
    /// Time a write to a client may make no progress before the connection is dropped.
    pub write_timeout: Duration,
    /// Time a connection with no call in flight (an open stream is a call) may stay silent
    /// before it is closed; `None` keeps it forever.
    pub idle_timeout: Option<Duration>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            version: env!("CARGO_PKG_VERSION").to_string(),
            access: AccessPolicy::default(),
            max_connections: 4096,
            max_inflight: 1024,
            handshake_timeout: Duration::from_secs(5),
            max_frame_len: frame::MAX_FRAME_LEN,
            shutdown_grace: Duration::from_secs(5),
            max_queued_bytes: 64 << 20,
            write_timeout: Duration::from_secs(30),
            idle_timeout: Some(Duration::from_secs(600)),
        }
    }
}

/// A service's server: the handler plus everything the scaffold keeps.
pub struct Server<P: Protocol, H: Handler<P>> {
    shared: Arc<Shared<P, H>>,
}

struct Shared<P: Protocol, H: Handler<P>> {
    handler: H,
    config: ServerConfig,
    recorder: Recorder,
    started: Instant,
    _proto: std::marker::PhantomData<P>,
}

impl<P: Protocol, H: Handler<P>> Server<P, H> {
    /// A server for `handler`.
    pub fn new(handler: H, config: ServerConfig) -> Self {
        Server {
            shared: Arc::new(Shared {
                handler,
                config,
                recorder: Recorder::default(),
                started: Instant::now(),
                _proto: std::marker::PhantomData,
            }),
        }
    }

    /// Serves `listener` until `shutdown` is cancelled, then stops accepting, lets in-flight
    /// calls finish (up to the grace time) and returns.
    pub async fn serve(self, listener: UnixListener, shutdown: CancellationToken) -> std::io::Result<()> {
        let (tx, rx) = tokio::sync::mpsc::channel(16);
        let accept = async {
            while let Some(stream) = crate::socket::accept(&listener, &shutdown, P::NAME).await {
                if tx.send(stream).await.is_err() {
                    break;
                }
            }
            drop(tx);
        };
        let ((), served) = tokio::join!(accept, self.serve_streams(rx, shutdown.clone()));
        drop(listener);
        served
    }

    /// Serves the connections `incoming` hands over (accepted elsewhere: a socket shared with
    /// another protocol, as the CRI service's) until it ends or `shutdown` is cancelled, then
    /// lets in-flight calls finish and returns.
    pub async fn serve_streams(
        self,
        mut incoming: tokio::sync::mpsc::Receiver<tokio::net::UnixStream>,
        shutdown: CancellationToken,
    ) -> std::io::Result<()> {
        let shared = self.shared;
        let slots = Arc::new(Semaphore::new(shared.config.max_connections));
        let tracker = TaskTracker::new();
        loop {
            let stream = tokio::select! {
                _ = shutdown.cancelled() => break,
                s = incoming.recv() => match s { Some(s) => s, None => break },
            };
            let shared = shared.clone();
            let slots = slots.clone();
            let shutdown = shutdown.clone();
            tracker.spawn(async move {
                let Ok(permit) = slots.try_acquire_owned() else {
                    shared.recorder.connections_refused.fetch_add(1, ORD);
                    refuse(stream, Error::unavailable(format!("{}: too many connections", P::NAME))).await;
                    return;
                };
                shared.recorder.connections_total.fetch_add(1, ORD);
                shared.recorder.connections_open.fetch_add(1, ORD);
                serve_connection(&shared, stream, shutdown).await;
                shared.recorder.connections_open.fetch_sub(1, ORD);
                drop(permit);
            });
        }
        tracker.close();
        tracker.wait().await;
        Ok(())
    }
}

const ORD: std::sync::atomic::Ordering = std::sync::atomic::Ordering::Relaxed;
