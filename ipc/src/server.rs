//! The server scaffold every service runs: accept with a connection cap, check peer
//! credentials before reading anything, do the handshake, decode requests, run each call
//! (in its own task as soon as it has to wait, so answers may overtake each other), answer
//! `Health` and `Metrics` itself, and shut down gracefully. Running one call and writing
//! frames is in `server/answer.rs`.

mod answer;
mod outbox;

use crate::sync::lock;
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::{Duration, Instant};

use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::UnixListener;
use tokio::net::UnixStream;
use tokio::sync::{Semaphore, mpsc};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::codec;
use crate::error::{Error, Result};
use crate::frame::{self, FrameError, Kind};
use crate::metrics::Recorder;
use crate::peer::{AccessPolicy, Peer};
use crate::protocol::{Hello, Protocol, RequestBody, Welcome};
pub(crate) use answer::write_loop;
use answer::{run_call, send};
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
        let shared = self.shared;
        let slots = Arc::new(Semaphore::new(shared.config.max_connections));
        let tracker = TaskTracker::new();
        while let Some(stream) = crate::socket::accept(&listener, &shutdown, P::NAME).await {
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
        drop(listener);
        tracker.close();
        tracker.wait().await;
        Ok(())
    }
}

const ORD: std::sync::atomic::Ordering = std::sync::atomic::Ordering::Relaxed;

/// Sends a connection-level error and closes.
async fn refuse(mut stream: UnixStream, err: Error) {
    let mut buf = Vec::new();
    if let Ok(payload) = codec::encode(&err) {
        frame::put_frame(&mut buf, Kind::Error, 0, &payload);
        let _ = tokio::time::timeout(Duration::from_millis(100), stream.write_all(&buf)).await;
    }
    let _ = stream.shutdown().await;
}

async fn serve_connection<P: Protocol, H: Handler<P>>(
    shared: &Arc<Shared<P, H>>,
    stream: UnixStream,
    shutdown: CancellationToken,
) {
    let mut peer = match crate::peer::peer_of(&stream) {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!(service = P::NAME, error = %e, "no peer credentials");
            return;
        }
    };
    if !shared.config.access.allows(&peer) {
        shared.recorder.connections_refused.fetch_add(1, ORD);
        tracing::warn!(service = P::NAME, uid = peer.uid, "peer refused");
        let msg = format!("{}: uid {} is not root and not in the berth group", P::NAME, peer.uid);
        refuse(stream, Error::new(crate::Code::PermissionDenied, msg)).await;
        return;
    }
    let (read_half, write_half) = stream.into_split();
    let mut reader = BufReader::with_capacity(64 * 1024, read_half);
    let (out_tx, inbox) = Outbox::new(shared.config.max_queued_bytes);
    let writer = tokio::spawn(inbox.write_loop(write_half, shared.config.write_timeout));

    let greeted = tokio::select! {
        _ = shutdown.cancelled() => Err(Error::unavailable(format!("{}: shutting down", P::NAME))),
        h = handshake::<P, H>(shared, &mut reader) => h,
    };
    match greeted {
        Ok(hello) => {
            peer.client_name = hello.client_name;
            let welcome = Welcome {
                protocol: u32::from(frame::PROTOCOL_VERSION),
                service: P::NAME.to_string(),
                version: shared.config.version.clone(),
                pid: std::process::id(),
            };
            send(&out_tx, Kind::Welcome, 0, &welcome).await;
        }
        Err(err) => {
            shared.recorder.bad_frames.fetch_add(1, ORD);
            tracing::debug!(service = P::NAME, error = %err, "handshake failed");
            send(&out_tx, Kind::Error, 0, &err).await;
            drop(out_tx);
            let _ = writer.await;
            return;
        }
    }

    let peer = Arc::new(peer);
    // Parent of every call's context: cancelled when the client is gone (its answers have
    // nowhere to go) or when the grace time runs out.
    let conn_cancel = CancellationToken::new();
    let stops = Stops { streams: CancellationToken::new(), hard: CancellationToken::new() };
    let inflight = Arc::new(Semaphore::new(shared.config.max_inflight));
    let calls = TaskTracker::new();
    let tokens: Arc<Mutex<HashMap<u64, CancellationToken>>> = Arc::default();
    let mut shutting_down = false;
    let last_active = Arc::new(Mutex::new(Instant::now()));
    loop {
        let waited = tokio::select! {
            _ = shutdown.cancelled() => Wait::Shutdown,
            w = next_frame(shared, &mut reader, &out_tx, &inflight, &last_active) => w,
        };
        let read = match waited {
            Wait::Frame(r) => r,
            Wait::Shutdown => {
                shutting_down = true;
                break;
            }
            Wait::Idle => {
                tracing::debug!(service = P::NAME, "idle connection closed");
                send(
                    &out_tx,
                    Kind::Error,
                    0,
                    &Error::unavailable(format!("{}: connection idle, closed", P::NAME)),
                )
                .await;
                break;
            }
            Wait::Stuck => {
                tracing::warn!(
                    service = P::NAME,
                    uid = peer.uid,
                    "client does not read its answers, connection dropped"
                );
                break;
            }
        };
        *lock(&last_active) = Instant::now();
        let frame = match read {
            Ok(f) => f,
            Err(FrameError::Closed) => break,
            Err(e) => {
                shared.recorder.bad_frames.fetch_add(1, ORD);
                tracing::debug!(service = P::NAME, error = %e, "bad frame, closing connection");
                send(&out_tx, Kind::Error, 0, &e.to_wire()).await;
                break;
            }
        };
        let id = frame.header.id;
        match frame.header.kind {
            Kind::Request if id == 0 => {
                shared.recorder.bad_frames.fetch_add(1, ORD);
                send(&out_tx, Kind::Error, 0, &Error::invalid("request id 0 is reserved")).await;
                break;
            }
            Kind::Request => {}
            Kind::Cancel => {
                if let Some(token) = lock(&tokens).remove(&id) {
                    token.cancel();
                }
                continue;
            }
            other => {
                shared.recorder.bad_frames.fetch_add(1, ORD);
                let err = Error::invalid(format!("unexpected {other:?} frame from a client"));
                send(&out_tx, Kind::Error, 0, &err).await;
                break;
            }
        }
        let body: RequestBody<P::Request> = match codec::decode(&frame.payload) {
            Ok(b) => b,
            Err(e) => {
                shared.recorder.bad_frames.fetch_add(1, ORD);
                send(&out_tx, Kind::Error, 0, &e.context(format!("request {id}"))).await;
                break;
            }
        };
        let permit = tokio::select! {
            _ = shutdown.cancelled() => {
                shutting_down = true;
                break;
            }
            _ = out_tx.dead().cancelled() => break,
            p = inflight.clone().acquire_owned() => p,
        };
        let Ok(permit) = permit else { break };
        let cancel = conn_cancel.child_token();
        lock(&tokens).insert(id, cancel.clone());
        let answers = Answers { outbox: out_tx.clone(), ledger: Arc::default() };
        let ctx = Context { peer: peer.clone(), cancel, answers };
        let shared = shared.clone();
        let out_tx = out_tx.clone();
        let tokens = tokens.clone();
        let stops = stops.clone();
        let last_active = last_active.clone();
        let mut call = Box::pin(async move {
            tokio::select! {
                _ = run_call(&shared, id, body, ctx, &out_tx, &stops.streams) => {}
                _ = stops.hard.cancelled() => {}
            }
            lock(&tokens).remove(&id);
            *lock(&last_active) = Instant::now();
            drop(permit);
        });
        // A call that answers without waiting (most do) is finished here, sparing a task
        // and a wake-up; one that waits continues in its own task, so answers still
        // overtake each other and the reader goes on reading.
        if poll_once(&mut call).await.is_pending() {
            calls.spawn(call);
        }
    }
    // Reading stopped. On shutdown, unary calls in flight get the grace time to answer and
    // streams end at once with `Unavailable`; if the client left or sent garbage, every call
    // is cancelled. Calls still running after the grace time are dropped.
    calls.close();
    if shutting_down {
        stops.streams.cancel();
    } else {
        conn_cancel.cancel();
    }
    if tokio::time::timeout(shared.config.shutdown_grace, calls.wait()).await.is_err() {
        conn_cancel.cancel();
        stops.hard.cancel();
        calls.wait().await;
    }
    drop(out_tx);
    let _ = writer.await;
}

/// What the reader's wait for the next frame ended with.
enum Wait {
    Frame(std::result::Result<frame::Frame, FrameError>),
    Shutdown,
    /// No call in flight and nothing received for the idle timeout.
    Idle,
    /// The client does not take its answers: the writer passed its deadline.
    Stuck,
}

/// Reads the next frame once the connection's answers are under their byte budget (a
/// client that does not read gets no new call started), watching the idle timeout and the
/// writer. A partly read frame is never abandoned except to close the connection.
async fn next_frame<P: Protocol, H: Handler<P>>(
    shared: &Shared<P, H>,
    reader: &mut BufReader<tokio::net::unix::OwnedReadHalf>,
    out: &Outbox,
    inflight: &Semaphore,
    last_active: &Mutex<Instant>,
) -> Wait {
    if !out.room().await {
        return Wait::Stuck;
    }
    let read = frame::read_frame(reader, shared.config.max_frame_len);
    tokio::pin!(read);
    loop {
        let idle = shared.config.idle_timeout.map(|t| *lock(last_active) + t);
        let sleep = async {
            match idle {
                Some(at) => tokio::time::sleep_until(at.into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            r = &mut read => return Wait::Frame(r),
            _ = out.dead().cancelled() => return Wait::Stuck,
            _ = sleep => {
                if inflight.available_permits() < shared.config.max_inflight {
                    // A call (or a stream) is running: the connection is not idle.
                    *lock(last_active) = Instant::now();
                } else if shared.config.idle_timeout.is_some_and(|t| lock(last_active).elapsed() >= t) {
                    return Wait::Idle;
                }
            }
        }
    }
}

/// Polls `fut` once in the caller's task.
async fn poll_once<F: Future + Unpin>(fut: &mut F) -> Poll<F::Output> {
    std::future::poll_fn(|cx| Poll::Ready(Pin::new(&mut *fut).poll(cx))).await
}

/// Tokens that end a connection's calls early.
#[derive(Clone)]
struct Stops {
    /// Ends every stream with `Unavailable` (the service is shutting down).
    streams: CancellationToken,
    /// Drops every call still running (the grace time is over).
    hard: CancellationToken,
}

async fn handshake<P: Protocol, H: Handler<P>>(
    shared: &Shared<P, H>,
    reader: &mut BufReader<tokio::net::unix::OwnedReadHalf>,
) -> Result<Hello> {
    let read = tokio::time::timeout(shared.config.handshake_timeout, frame::read_frame(reader, 64 * 1024));
    let frame = match read.await {
        Err(_) => return Err(Error::unavailable("no hello within the handshake timeout")),
        Ok(Err(e)) => return Err(e.to_wire()),
        Ok(Ok(f)) => f,
    };
    if frame.header.kind != Kind::Hello {
        return Err(Error::invalid(format!("expected a hello frame, got {:?}", frame.header.kind)));
    }
    let hello: Hello = codec::decode(&frame.payload)?;
    if hello.protocol != u32::from(frame::PROTOCOL_VERSION) {
        return Err(Error::precondition(format!(
            "protocol version {} not supported, this service speaks {}",
            hello.protocol,
            frame::PROTOCOL_VERSION
        )));
    }
    if hello.service != P::NAME {
        return Err(Error::invalid(format!("this socket serves {}, not {}", P::NAME, hello.service)));
    }
    Ok(hello)
}
