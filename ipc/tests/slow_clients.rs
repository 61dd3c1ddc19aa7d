//! Clients that do not read or do not talk: a client that never reads its answers is
//! dropped after the write timeout while the answers it pins stay under the byte budget, an
//! idle connection is closed after the idle timeout, and an open stream is never idle.

mod common;

use std::time::{Duration, Instant};

use berth_ipc::frame::Kind;
use berth_ipc::{Code, ServerConfig};
use common::{
    Count, Echo, TestRequest, assert_serves, expect_error_then_close, fixture, frame_bytes, raw_greeted, read,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn request(id: u64, req: TestRequest) -> Vec<u8> {
    let body = berth_ipc::protocol::RequestBody::Service(req);
    frame_bytes(Kind::Request, id, &berth_ipc::codec::encode(&body).expect("encode request"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_reads_is_dropped_and_others_are_served() {
    let config = ServerConfig {
        max_queued_bytes: 1 << 20,
        write_timeout: Duration::from_millis(500),
        ..ServerConfig::default()
    };
    let fx = fixture(config);
    let s = raw_greeted(&fx.path).await;
    let (mut rd, mut wr) = s.into_split();
    // 4000 requests for 64 KiB answers each: 256 MiB if the service queued them all.
    let big = "x".repeat(64 << 10);
    let sender = tokio::spawn(async move {
        for id in 1..=4000u64 {
            if wr.write_all(&request(id, TestRequest::Echo(Echo(big.clone())))).await.is_err() {
                return id;
            }
        }
        4001
    });
    // While that client reads nothing, others are served.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_serves(&fx.path).await;
    // Let the write deadline pass, then take what the service sent: it must end (EOF or
    // reset) and hold far less than every answer.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut got = Vec::new();
    let drained = tokio::time::timeout(Duration::from_secs(10), rd.read_to_end(&mut got)).await;
    assert!(drained.is_ok(), "the service still holds the connection of a client that never reads");
    assert!(got.len() < 32 << 20, "the service sent {} bytes after the deadline", got.len());
    let stopped_at =
        tokio::time::timeout(Duration::from_secs(10), sender).await.expect("sender ends").expect("join");
    assert!(stopped_at <= 4000, "the service kept reading requests it could not answer");
    assert_serves(&fx.path).await;
    fx.server.stop(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_connection_is_closed_after_the_idle_timeout() {
    let config = ServerConfig { idle_timeout: Some(Duration::from_millis(300)), ..ServerConfig::default() };
    let fx = fixture(config);
    let started = Instant::now();
    let mut s = raw_greeted(&fx.path).await;
    let err = expect_error_then_close(&mut s).await;
    assert_eq!(err.code, Code::Unavailable);
    assert!(err.message.contains("idle"), "{}", err.message);
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(300), "closed after {waited:?}, before the idle timeout");
    // The client library reconnects after an idle close.
    let c = common::client(&fx.path, Duration::from_secs(5));
    assert_eq!(c.call(Echo("one".into())).await.expect("first call"), "one");
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(c.call(Echo("two".into())).await.expect("call after an idle close"), "two");
    fx.server.stop(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_stream_is_not_idle() {
    let config = ServerConfig { idle_timeout: Some(Duration::from_millis(300)), ..ServerConfig::default() };
    let fx = fixture(config);
    let mut s = raw_greeted(&fx.path).await;
    // Items at 0 s, 1 s and 2 s, then the end: silent far longer than the idle timeout.
    s.write_all(&request(1, TestRequest::Count(Count { n: 3, delay_ms: 1000 }))).await.expect("send");
    for want in 0..3u32 {
        let f = read(&mut s).await.expect("a stream item");
        assert_eq!(f.header.kind, Kind::StreamItem, "item {want}");
    }
    let f = read(&mut s).await.expect("the stream end");
    assert_eq!(f.header.kind, Kind::StreamEnd);
    // With the stream over, the connection is idle and closed.
    expect_error_then_close(&mut s).await;
    fx.server.stop(Duration::from_secs(5)).await;
}
