//! One connection's life: admit the peer, greet it, read its calls (each run in place or in
//! its own task), and wind the calls down when reading stops.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::{Duration, Instant};

use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::UnixStream;
use tokio::net::unix::OwnedReadHalf;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::answer::{run_call, send};
use super::outbox::Outbox;
use super::{Answers, Context, Handler, ORD, Shared};
use crate::codec;
use crate::error::{Error, Result};
use crate::frame::{self, FrameError, Kind};
use crate::peer::Peer;
use crate::protocol::{Hello, Protocol, RequestBody, Welcome};
use crate::sync::lock;

type Reader = BufReader<OwnedReadHalf>;

/// Serves one accepted connection until the client leaves, breaks the protocol, idles out,
/// stops reading its answers, or the service shuts down.
pub(super) async fn serve_connection<P: Protocol, H: Handler<P>>(
    shared: &Arc<Shared<P, H>>,
    stream: UnixStream,
    shutdown: CancellationToken,
) {
    let Some((peer, stream)) = admit(shared, stream).await else { return };
    let (read_half, write_half) = stream.into_split();
    let mut reader = BufReader::with_capacity(64 * 1024, read_half);
    let (out_tx, inbox) = Outbox::new(shared.config.max_queued_bytes);
    let writer = tokio::spawn(inbox.write_loop(write_half, shared.config.write_timeout));
    if let Some(peer) = greet(shared, &mut reader, &out_tx, &shutdown, peer).await {
        let calls = Calls::new(shared, peer);
        let shutting_down = calls.read(shared, &mut reader, &out_tx, &shutdown).await;
        calls.wind_down(shared, shutting_down).await;
    }
    drop(out_tx);
    let _ = writer.await;
}

/// The connection's peer, if it may talk to this service; a peer it may not is told why.
async fn admit<P: Protocol, H: Handler<P>>(
    shared: &Shared<P, H>,
    stream: UnixStream,
) -> Option<(Peer, UnixStream)> {
    let peer = match crate::peer::peer_of(&stream) {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!(service = P::NAME, error = %e, "no peer credentials");
            return None;
        }
    };
    if !shared.config.access.allows(&peer) {
        shared.recorder.connections_refused.fetch_add(1, ORD);
        tracing::warn!(service = P::NAME, uid = peer.uid, "peer refused");
        let msg = format!("{}: uid {} is not root and not in the berth group", P::NAME, peer.uid);
        refuse(stream, Error::new(crate::Code::PermissionDenied, msg)).await;
        return None;
    }
    Some((peer, stream))
}

/// The handshake: `Hello` in, `Welcome` (or the error) out. The peer, named as the client
/// says, once greeted.
async fn greet<P: Protocol, H: Handler<P>>(
    shared: &Shared<P, H>,
    reader: &mut Reader,
    out: &Outbox,
    shutdown: &CancellationToken,
    mut peer: Peer,
) -> Option<Peer> {
    let greeted = tokio::select! {
        _ = shutdown.cancelled() => Err(Error::unavailable(format!("{}: shutting down", P::NAME))),
        h = handshake::<P, H>(shared, reader) => h,
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
            send(out, Kind::Welcome, 0, &welcome).await;
            Some(peer)
        }
        Err(err) => {
            shared.recorder.bad_frames.fetch_add(1, ORD);
            tracing::debug!(service = P::NAME, error = %err, "handshake failed");
            send(out, Kind::Error, 0, &err).await;
            None
        }
    }
}

/// A connection's calls in flight and the tokens that stop them.
struct Calls {
    peer: Arc<Peer>,
    /// Parent of every call's context: cancelled when the client is gone (its answers have
    /// nowhere to go) or when the grace time runs out.
    cancel: CancellationToken,
    stops: Stops,
    inflight: Arc<Semaphore>,
    tasks: TaskTracker,
    tokens: Arc<Mutex<HashMap<u64, CancellationToken>>>,
    last_active: Arc<Mutex<Instant>>,
}

/// What reading one frame asks of the loop.
enum Next<R> {
    Call(u64, RequestBody<R>),
    /// A cancel (handled) or nothing to start.
    Skip,
    /// Stop reading: `true` when the service is shutting down.
    Stop(bool),
}

impl Calls {
    fn new<P: Protocol, H: Handler<P>>(shared: &Shared<P, H>, peer: Peer) -> Self {
        Calls {
            peer: Arc::new(peer),
            cancel: CancellationToken::new(),
            stops: Stops { streams: CancellationToken::new(), hard: CancellationToken::new() },
            inflight: Arc::new(Semaphore::new(shared.config.max_inflight)),
            tasks: TaskTracker::new(),
            tokens: Arc::default(),
            last_active: Arc::new(Mutex::new(Instant::now())),
        }
    }

    /// Reads and starts calls until reading stops; `true` when it stopped for shutdown.
    async fn read<P: Protocol, H: Handler<P>>(
        &self,
        shared: &Arc<Shared<P, H>>,
        reader: &mut Reader,
        out: &Outbox,
        shutdown: &CancellationToken,
    ) -> bool {
        loop {
            let (id, body) = match self.next_request(shared, reader, out, shutdown).await {
                Next::Call(id, body) => (id, body),
                Next::Skip => continue,
                Next::Stop(shutting_down) => return shutting_down,
            };
            let permit = tokio::select! {
                _ = shutdown.cancelled() => return true,
                _ = out.dead().cancelled() => return false,
                p = self.inflight.clone().acquire_owned() => p,
            };
            let Ok(permit) = permit else { return false };
            self.start(shared, id, body, out, permit).await;
        }
    }

    /// Waits for the next frame and checks it is a request this connection may start.
    async fn next_request<P: Protocol, H: Handler<P>>(
        &self,
        shared: &Shared<P, H>,
        reader: &mut Reader,
        out: &Outbox,
        shutdown: &CancellationToken,
    ) -> Next<P::Request> {
        let waited = tokio::select! {
            _ = shutdown.cancelled() => Wait::Shutdown,
            w = next_frame(shared, reader, out, &self.inflight, &self.last_active) => w,
        };
        let read = match waited {
            Wait::Frame(r) => r,
            Wait::Shutdown => return Next::Stop(true),
            Wait::Idle => {
                tracing::debug!(service = P::NAME, "idle connection closed");
                let err = Error::unavailable(format!("{}: connection idle, closed", P::NAME));
                send(out, Kind::Error, 0, &err).await;
                return Next::Stop(false);
            }
            Wait::Stuck => {
                tracing::warn!(
                    service = P::NAME,
                    uid = self.peer.uid,
                    "client does not read its answers, connection dropped"
                );
                return Next::Stop(false);
            }
        };
        *lock(&self.last_active) = Instant::now();
        let frame = match read {
            Ok(f) => f,
            Err(FrameError::Closed) => return Next::Stop(false),
            Err(e) => {
                shared.recorder.bad_frames.fetch_add(1, ORD);
                tracing::debug!(service = P::NAME, error = %e, "bad frame, closing connection");
                send(out, Kind::Error, 0, &e.to_wire()).await;
                return Next::Stop(false);
            }
        };
        let id = frame.header.id;
        let refused = match frame.header.kind {
            Kind::Request if id == 0 => Error::invalid("request id 0 is reserved"),
            Kind::Request => match codec::decode(&frame.payload) {
                Ok(body) => return Next::Call(id, body),
                Err(e) => e.context(format!("request {id}")),
            },
            Kind::Cancel => {
                if let Some(token) = lock(&self.tokens).remove(&id) {
                    token.cancel();
                }
                return Next::Skip;
            }
            other => Error::invalid(format!("unexpected {other:?} frame from a client")),
        };
        shared.recorder.bad_frames.fetch_add(1, ORD);
        send(out, Kind::Error, 0, &refused).await;
        Next::Stop(false)
    }

    /// Runs call `id`: to its end here if it answers without waiting (most do, sparing a task
    /// and a wake-up), else in its own task, so answers still overtake each other and the
    /// reader goes on reading.
    async fn start<P: Protocol, H: Handler<P>>(
        &self,
        shared: &Arc<Shared<P, H>>,
        id: u64,
        body: RequestBody<P::Request>,
        out: &Outbox,
        permit: OwnedSemaphorePermit,
    ) {
        let cancel = self.cancel.child_token();
        lock(&self.tokens).insert(id, cancel.clone());
        let answers = Answers { outbox: out.clone(), ledger: Arc::default() };
        let ctx = Context { peer: self.peer.clone(), cancel, answers };
        let (shared, out) = (shared.clone(), out.clone());
        let (tokens, stops, last_active) =
            (self.tokens.clone(), self.stops.clone(), self.last_active.clone());
        let mut call = Box::pin(async move {
            tokio::select! {
                _ = run_call(&shared, id, body, ctx, &out, &stops.streams) => {}
                _ = stops.hard.cancelled() => {}
            }
            lock(&tokens).remove(&id);
            *lock(&last_active) = Instant::now();
            drop(permit);
        });
        if poll_once(&mut call).await.is_pending() {
            self.tasks.spawn(call);
        }
    }

    /// Reading stopped. On shutdown, unary calls in flight get the grace time to answer and
    /// streams end at once with `Unavailable`; if the client left or sent garbage, every call
    /// is cancelled. Calls still running after the grace time are dropped.
    async fn wind_down<P: Protocol, H: Handler<P>>(self, shared: &Shared<P, H>, shutting_down: bool) {
        self.tasks.close();
        if shutting_down {
            self.stops.streams.cancel();
        } else {
            self.cancel.cancel();
        }
        if tokio::time::timeout(shared.config.shutdown_grace, self.tasks.wait()).await.is_err() {
            self.cancel.cancel();
            self.stops.hard.cancel();
            self.tasks.wait().await;
        }
    }
}

/// Sends a connection-level error and closes.
pub(super) async fn refuse(mut stream: UnixStream, err: Error) {
    let mut buf = Vec::new();
    if let Ok(payload) = codec::encode(&err) {
        frame::put_frame(&mut buf, Kind::Error, 0, &payload);
        let _ = tokio::time::timeout(Duration::from_millis(100), stream.write_all(&buf)).await;
    }
    let _ = stream.shutdown().await;
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
    reader: &mut Reader,
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

async fn handshake<P: Protocol, H: Handler<P>>(shared: &Shared<P, H>, reader: &mut Reader) -> Result<Hello> {
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
