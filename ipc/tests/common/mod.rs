//! A small protocol and service used by the integration tests, and helpers to run it on a
//! socket in a temp dir and to talk to it with raw frames.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use berth_ipc::frame::{self, Frame, FrameError, Kind};
use berth_ipc::{Client, ClientOptions, Code, Context, Error, Handler, Reply, Server, ServerConfig};
use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt;
use tokio::net::UnixStream;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Echo the text back.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Echo(pub String);

/// Add two numbers; counted, so a repeat would be seen.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Add {
    pub a: u64,
    pub b: u64,
    /// Time the handler takes.
    pub delay_ms: u64,
}

/// Sleep, then answer the time slept.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Sleep {
    pub ms: u64,
}

/// Stream the numbers `0..n`, pausing `delay_ms` between items.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Count {
    pub n: u32,
    pub delay_ms: u64,
}

/// Fail with `NotFound`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Fail(pub String);

berth_ipc::protocol! {
    /// The test service.
    pub protocol TestProto = "test";
    request TestRequest; response TestResponse;
    /// Unary, idempotent.
    Echo(Echo) -> String [idempotent];
    /// Unary, not idempotent.
    Add(Add) -> u64 [];
    /// Unary, idempotent, slow.
    Sleep(Sleep) -> u64 [idempotent];
    /// Streaming.
    Count(Count) -> u32 [idempotent, stream];
    /// Always fails.
    Fail(Fail) -> () [idempotent];
}

/// What the handler has seen, shared across server restarts.
#[derive(Debug, Default)]
pub struct State {
    pub add_started: AtomicU64,
    pub sleep_started: AtomicU64,
    pub count_cancelled: AtomicU64,
    pub count_finished: AtomicU64,
}

impl State {
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::SeqCst)
    }
}

/// The test service's handler.
#[derive(Clone)]
pub struct TestHandler(pub Arc<State>);

impl Handler<TestProto> for TestHandler {
    async fn handle(&self, req: TestRequest, ctx: Context) -> Reply<TestResponse> {
        let state = self.0.clone();
        match req {
            TestRequest::Echo(Echo(s)) => Reply::Unary(Ok(TestResponse::Echo(s))),
            TestRequest::Add(Add { a, b, delay_ms }) => {
                state.add_started.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(delay_ms)).await;
                Reply::Unary(Ok(TestResponse::Add(a + b)))
            }
            TestRequest::Sleep(Sleep { ms }) => {
                // Deliberately ignores ctx.cancel: a call that must run to its end.
                state.sleep_started.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(ms)).await;
                Reply::Unary(Ok(TestResponse::Sleep(ms)))
            }
            TestRequest::Count(Count { n, delay_ms }) => {
                let (tx, reply) = Reply::stream(4);
                tokio::spawn(async move {
                    for i in 0..n {
                        tokio::select! {
                            biased;
                            _ = ctx.cancel.cancelled() => {
                                state.count_cancelled.fetch_add(1, Ordering::SeqCst);
                                return;
                            }
                            sent = tx.send(Ok(TestResponse::Count(i))) => if sent.is_err() { return },
                        }
                        if delay_ms > 0 {
                            tokio::time::sleep(Duration::from_millis(delay_ms)).await;
                        }
                    }
                    state.count_finished.fetch_add(1, Ordering::SeqCst);
                });
                reply
            }
            TestRequest::Fail(Fail(what)) => {
                Reply::Unary(Err(Error::not_found(format!("{what}: not found"))))
            }
        }
    }

    fn gauges(&self) -> Vec<(String, f64)> {
        vec![("adds".to_string(), State::get(&self.0.add_started) as f64)]
    }
}

/// A running test server.
pub struct Running {
    pub shutdown: CancellationToken,
    pub task: JoinHandle<std::io::Result<()>>,
}

impl Running {
    /// Requests shutdown and waits (at most `limit`) for `serve` to return.
    pub async fn stop(self, limit: Duration) {
        self.shutdown.cancel();
        let done = tokio::time::timeout(limit, self.task).await;
        assert!(matches!(done, Ok(Ok(Ok(())))), "serve did not return cleanly within {limit:?}");
    }
}

/// Starts the test service on `path` (replacing a stale socket file).
pub fn start(path: &Path, config: ServerConfig, state: Arc<State>) -> Running {
    let listener = berth_ipc::socket::bind(path, None).expect("bind test socket");
    let shutdown = CancellationToken::new();
    let server = Server::<TestProto, _>::new(TestHandler(state), config);
    let task = tokio::spawn(server.serve(listener, shutdown.clone()));
    Running { shutdown, task }
}

/// A temp dir with a running test service in it.
pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub path: PathBuf,
    pub state: Arc<State>,
    pub server: Running,
}

/// Starts the test service with `config` in a fresh temp dir.
pub fn fixture(config: ServerConfig) -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("test.sock");
    let state = Arc::new(State::default());
    let server = start(&path, config, state.clone());
    Fixture { dir, path, state, server }
}

/// A client with the given deadline.
pub fn client(path: &Path, deadline: Duration) -> Client<TestProto> {
    Client::new(path, ClientOptions { deadline, client_name: "ipc-test".into() })
}

/// One encoded frame.
pub fn frame_bytes(kind: Kind, id: u64, payload: &[u8]) -> Vec<u8> {
    let mut buf = Vec::new();
    frame::put_frame(&mut buf, kind, id, payload);
    buf
}

/// The bytes of a `Hello` for `service`.
pub fn hello_bytes(service: &str) -> Vec<u8> {
    let hello = berth_ipc::Hello {
        protocol: u32::from(frame::PROTOCOL_VERSION),
        service: service.into(),
        client_name: "raw".into(),
    };
    frame_bytes(Kind::Hello, 0, &berth_ipc::codec::encode(&hello).expect("encode hello"))
}

/// Connects without the client library.
pub async fn raw_connect(path: &Path) -> UnixStream {
    UnixStream::connect(path).await.expect("connect")
}

/// Connects and completes the handshake by hand.
pub async fn raw_greeted(path: &Path) -> UnixStream {
    let mut s = raw_connect(path).await;
    s.write_all(&hello_bytes("test")).await.expect("send hello");
    let f = read(&mut s).await.expect("welcome");
    assert_eq!(f.header.kind, Kind::Welcome);
    s
}

/// Reads one frame, failing the test after 5 s.
pub async fn read(s: &mut UnixStream) -> Result<Frame, FrameError> {
    tokio::time::timeout(Duration::from_secs(5), frame::read_frame(s, frame::MAX_FRAME_LEN))
        .await
        .expect("the service answered within 5 s")
}

/// Asserts that the service closes the connection (EOF or reset) without sending anything more.
pub async fn expect_closed(s: &mut UnixStream) {
    match read(s).await {
        Err(FrameError::Closed) => {}
        Err(FrameError::Io(e)) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        other => panic!("expected the connection to be closed, got {other:?}"),
    }
}

/// Asserts a connection-level `Error` frame (id 0), then the close; returns the error.
pub async fn expect_error_then_close(s: &mut UnixStream) -> Error {
    let f = read(s).await.expect("an error frame");
    assert_eq!(f.header.kind, Kind::Error, "expected an error frame");
    assert_eq!(f.header.id, 0, "a connection-level error has id 0");
    let err: Error = berth_ipc::codec::decode(&f.payload).expect("error payload decodes");
    expect_closed(s).await;
    err
}

/// Asserts that a fresh client gets an answer: the service still serves good clients.
pub async fn assert_serves(path: &Path) {
    let c = client(path, Duration::from_secs(5));
    let got = c.call(Echo("still here".into())).await.expect("a good client is served");
    assert_eq!(got, "still here");
}

/// Whether `err` is `Unavailable`.
pub fn is_unavailable(err: &Error) -> bool {
    err.code == Code::Unavailable
}
