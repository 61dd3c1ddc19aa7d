//! The typed client: one multiplexed connection per [`Client`], reconnecting when the
//! service restarts. Idempotent calls (and calls that never left this process) are retried
//! until the deadline; only then does the caller see `Unavailable`.

mod conn;
mod stream;

use crate::sync::lock;
use std::marker::PhantomData;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::UnixStream;
use tokio::sync::{mpsc, oneshot};

use conn::{Calls, Conn, Pending, read_loop};
pub use stream::Stream;

use crate::codec;
use crate::error::{Code, Error, Result};
use crate::frame::{self, Frame, FrameError, Kind};
use crate::metrics::MetricsSnapshot;
use crate::protocol::{
    Call, CommonRequest, CommonResponse, Health, Hello, Protocol, RequestBody, ResponseBody, Welcome,
};

/// How a client behaves.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// How long a call may wait for the service to come (back) up before `Unavailable`.
    pub deadline: Duration,
    /// The name sent in `Hello`.
    pub client_name: String,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions { deadline: Duration::from_secs(10), client_name: default_client_name() }
    }
}

fn default_client_name() -> String {
    let exe = std::env::args().next().unwrap_or_default();
    let base = Path::new(&exe).file_name().map(|s| s.to_string_lossy().into_owned());
    format!("{}[{}]", base.unwrap_or_else(|| "client".into()), std::process::id())
}

/// A typed client of one service.
pub struct Client<P: Protocol> {
    inner: Arc<Inner>,
    _proto: PhantomData<fn() -> P>,
}

impl<P: Protocol> Clone for Client<P> {
    fn clone(&self) -> Self {
        Client { inner: self.inner.clone(), _proto: PhantomData }
    }
}

struct Inner {
    path: PathBuf,
    service: &'static str,
    options: ClientOptions,
    /// The live connection, if any (checked without waiting on every call).
    conn: Mutex<Option<Arc<Conn>>>,
    /// Held while connecting, so that concurrent callers make one connection, not many.
    connecting: tokio::sync::Mutex<()>,
}

/// How many times one call's deadline starts afresh after its connection was lost.
const MAX_REARMS: u32 = 5;

/// Why a call did not get an answer on a connection.
enum Lost {
    /// The request never reached the socket: retrying cannot repeat it.
    NotSent,
    /// The connection died after the request was queued.
    AfterSend,
}

impl<P: Protocol> Client<P> {
    /// A client of the service listening at `socket`. Nothing is connected until the first call.
    pub fn new(socket: impl Into<PathBuf>, options: ClientOptions) -> Self {
        Client {
            inner: Arc::new(Inner {
                path: socket.into(),
                service: P::NAME,
                options,
                conn: Mutex::new(None),
                connecting: tokio::sync::Mutex::new(()),
            }),
            _proto: PhantomData,
        }
    }

    /// A client of the service's socket in `state_dir` (`<state>/<name>.sock`).
    pub fn in_state_dir(state_dir: &Path, options: ClientOptions) -> Self {
        Client::new(state_dir.join(format!("{}.sock", P::NAME)), options)
    }

    /// The socket path.
    pub fn socket(&self) -> &Path {
        &self.inner.path
    }

    /// Makes one call and returns its reply.
    pub async fn call<C: Call<Protocol = P>>(&self, req: C) -> Result<C::Reply> {
        const { assert!(!C::STREAMING, "use Client::stream for streaming calls") };
        let resp = self.unary(RequestBody::Service(req.into_request()), C::IDEMPOTENT).await?;
        match resp {
            ResponseBody::Service(r) => C::from_response(r)
                .ok_or_else(|| Error::internal(format!("{}: reply of the wrong type", P::NAME))),
            ResponseBody::Common(_) => Err(Error::internal(format!("{}: reply of the wrong type", P::NAME))),
        }
    }

    /// Makes one call that is not idempotent by itself but that the caller made safe to
    /// repeat, and retries it like an idempotent one when the connection is lost after the
    /// request was sent. The caller must take the answers a repeat can give for what they
    /// are: `AlreadyExists` from a create with a client-chosen id, `NotFound` from a delete,
    /// or re-check the state (a commit whose answer was lost is looked up by digest).
    pub async fn call_repeatable<C: Call<Protocol = P>>(&self, req: C) -> Result<C::Reply> {
        const { assert!(!C::STREAMING, "use Client::stream for streaming calls") };
        let resp = self.unary(RequestBody::Service(req.into_request()), true).await?;
        match resp {
            ResponseBody::Service(r) => C::from_response(r)
                .ok_or_else(|| Error::internal(format!("{}: reply of the wrong type", P::NAME))),
            ResponseBody::Common(_) => Err(Error::internal(format!("{}: reply of the wrong type", P::NAME))),
        }
    }

    /// How long a call waits for the service to come (back) up.
    pub fn deadline(&self) -> Duration {
        self.inner.options.deadline
    }

    /// Starts a streaming call. The stream is not resumed after a lost connection: the
    /// caller decides how to continue (events resume by sequence number, reads by offset).
    pub async fn stream<C: Call<Protocol = P>>(&self, req: C) -> Result<Stream<C>> {
        const { assert!(C::STREAMING, "use Client::call for unary calls") };
        let payload = codec::encode(&RequestBody::<P::Request>::Service(req.into_request()))?;
        let deadline = Instant::now() + self.inner.options.deadline;
        loop {
            let conn = self.connection(deadline).await?;
            let (tx, rx) = mpsc::channel(64);
            let id = conn.next_id.fetch_add(1, Ordering::Relaxed);
            let registered = lock(&conn.pending).register(id, Pending::Stream(tx));
            let mut buf = Vec::with_capacity(frame::HEADER_LEN + payload.len());
            frame::put_frame(&mut buf, Kind::Request, id, &payload);
            if !registered || conn.out.send(buf).await.is_err() {
                lock(&conn.pending).map.remove(&id);
                self.forget(&conn);
                if Instant::now() < deadline {
                    continue;
                }
                return Err(self.unavailable("connection lost"));
            }
            return Ok(Stream { rx, id, conn, done: false, service: P::NAME, _call: PhantomData });
        }
    }

    /// The service's `Health`.
    pub async fn health(&self) -> Result<Health> {
        match self.unary(RequestBody::Common(CommonRequest::Health), true).await? {
            ResponseBody::Common(CommonResponse::Health(h)) => Ok(h),
            _ => Err(Error::internal(format!("{}: reply of the wrong type", P::NAME))),
        }
    }

    /// The service's `Metrics`.
    pub async fn metrics(&self) -> Result<MetricsSnapshot> {
        match self.unary(RequestBody::Common(CommonRequest::Metrics), true).await? {
            ResponseBody::Common(CommonResponse::Metrics(m)) => Ok(m),
            _ => Err(Error::internal(format!("{}: reply of the wrong type", P::NAME))),
        }
    }

    /// The `Welcome` of the current connection (connecting if needed).
    pub async fn welcome(&self) -> Result<Welcome> {
        let deadline = Instant::now() + self.inner.options.deadline;
        Ok(self.connection(deadline).await?.welcome.clone())
    }

    async fn unary(
        &self,
        body: RequestBody<P::Request>,
        idempotent: bool,
    ) -> Result<ResponseBody<P::Response>> {
        let payload = codec::encode(&body)?;
        let deadline = Instant::now() + self.inner.options.deadline;
        let mut deadline = deadline;
        let mut backoff = Duration::from_millis(2);
        // A long call (an unpack) whose service dies after minutes waits the whole deadline
        // for the restart, counted from the loss, not from the call's start; a service that
        // keeps dying under the same call gets a bounded number of such fresh waits.
        let mut rearms = 0;
        loop {
            let conn = self.connection(deadline).await?;
            match Self::unary_on(&conn, &payload).await {
                Ok(frame) => return decode_answer::<P>(frame),
                Err(lost) => {
                    self.forget(&conn);
                    let retry = matches!(lost, Lost::NotSent) || idempotent;
                    if !retry {
                        return Err(
                            self.unavailable("connection lost during a call that is not safe to repeat")
                        );
                    }
                    if matches!(lost, Lost::AfterSend) && rearms < MAX_REARMS {
                        rearms += 1;
                        deadline = deadline.max(Instant::now() + self.inner.options.deadline);
                    }
                    if Instant::now() >= deadline {
                        return Err(self.unavailable("connection lost, retries exhausted"));
                    }
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_millis(100));
                }
            }
        }
    }

    async fn unary_on(conn: &Conn, payload: &[u8]) -> Result<Frame, Lost> {
        let (tx, rx) = oneshot::channel();
        let id = conn.next_id.fetch_add(1, Ordering::Relaxed);
        if !lock(&conn.pending).register(id, Pending::Unary(tx)) {
            return Err(Lost::NotSent);
        }
        let mut buf = Vec::with_capacity(frame::HEADER_LEN + payload.len());
        frame::put_frame(&mut buf, Kind::Request, id, payload);
        if conn.out.send(buf).await.is_err() {
            lock(&conn.pending).map.remove(&id);
            return Err(Lost::NotSent);
        }
        rx.await.map_err(|_| Lost::AfterSend)
    }

    fn unavailable(&self, what: &str) -> Error {
        Error::unavailable(format!("{} service at {}: {what}", self.inner.service, self.inner.path.display()))
    }

    fn forget(&self, dead: &Arc<Conn>) {
        let mut slot = lock(&self.inner.conn);
        if slot.as_ref().is_some_and(|c| Arc::ptr_eq(c, dead)) {
            *slot = None;
        }
    }

    /// The live connection, if there is one.
    fn live(&self) -> Option<Arc<Conn>> {
        let mut slot = lock(&self.inner.conn);
        match slot.as_ref() {
            Some(c) if c.alive() => Some(c.clone()),
            _ => {
                *slot = None;
                None
            }
        }
    }

    /// The live connection, or a new one, retrying until `deadline`.
    async fn connection(&self, deadline: Instant) -> Result<Arc<Conn>> {
        if let Some(c) = self.live() {
            return Ok(c);
        }
        let _connecting = self.inner.connecting.lock().await;
        if let Some(c) = self.live() {
            return Ok(c); // another caller connected while we waited
        }
        let mut backoff = Duration::from_millis(1);
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            let err = match tokio::time::timeout(remaining.max(Duration::from_millis(1)), self.connect_once())
                .await
            {
                Ok(Ok(conn)) => {
                    let conn = Arc::new(conn);
                    *lock(&self.inner.conn) = Some(conn.clone());
                    return Ok(conn);
                }
                Ok(Err(e)) => e,
                Err(_) => self.unavailable("no answer to hello"),
            };
            if err.code != Code::Unavailable {
                return Err(err);
            }
            if Instant::now() >= deadline {
                return Err(err.context(format!("gave up after {:?}", self.inner.options.deadline)));
            }
            tokio::time::sleep(backoff.min(deadline.saturating_duration_since(Instant::now()))).await;
            backoff = (backoff * 2).min(Duration::from_millis(50));
        }
    }

    async fn connect_once(&self) -> Result<Conn> {
        let stream = UnixStream::connect(&self.inner.path).await.map_err(|e| {
            let code = match e.kind() {
                std::io::ErrorKind::PermissionDenied => Code::PermissionDenied,
                _ => Code::Unavailable,
            };
            Error::new(code, format!("{} service at {}: {e}", self.inner.service, self.inner.path.display()))
        })?;
        let (read_half, mut write_half) = stream.into_split();
        let hello = Hello {
            protocol: u32::from(frame::PROTOCOL_VERSION),
            service: P::NAME.to_string(),
            client_name: self.inner.options.client_name.clone(),
        };
        let mut buf = Vec::new();
        frame::put_frame(&mut buf, Kind::Hello, 0, &codec::encode(&hello)?);
        // A service that refuses us (full, wrong peer) may have written its error and closed
        // before our hello arrived: then the write fails but the error is still there to read.
        let wrote = write_half.write_all(&buf).await;
        let mut reader = BufReader::with_capacity(64 * 1024, read_half);
        let first = match frame::read_frame(&mut reader, frame::MAX_FRAME_LEN).await {
            Ok(f) => f,
            Err(e) => {
                return Err(match wrote {
                    Err(w) => self.unavailable(&w.to_string()),
                    Ok(()) => self.frame_error(e),
                });
            }
        };
        let welcome: Welcome = match first.header.kind {
            Kind::Welcome => codec::decode(&first.payload)?,
            Kind::Error => {
                let err: Error = codec::decode(&first.payload)?;
                return Err(err.context(format!("{} service", self.inner.service)));
            }
            other => {
                return Err(Error::invalid(format!(
                    "{} service sent {other:?} instead of welcome",
                    self.inner.service
                )));
            }
        };
        let (out_tx, out_rx) = mpsc::channel(256);
        let pending: Arc<Mutex<Calls>> = Arc::default();
        let writer_pending = pending.clone();
        tokio::spawn(async move {
            crate::server::write_loop(write_half, out_rx).await;
            lock(&writer_pending).close();
        });
        let reader = tokio::spawn(read_loop(reader, pending.clone()));
        Ok(Conn { out: out_tx, pending, next_id: AtomicU64::new(1), welcome, reader })
    }

    fn frame_error(&self, e: FrameError) -> Error {
        let err = e.to_wire();
        err.context(format!("{} service at {}", self.inner.service, self.inner.path.display()))
    }
}

fn decode_answer<P: Protocol>(frame: Frame) -> Result<ResponseBody<P::Response>> {
    match frame.header.kind {
        Kind::Response | Kind::StreamItem => codec::decode(&frame.payload),
        Kind::Error => Err(codec::decode::<Error>(&frame.payload)?),
        other => Err(Error::internal(format!("{}: unexpected {other:?} frame", P::NAME))),
    }
}
