//! Hostile peers: each malformed conversation is refused or closed with a typed error, and
//! the service keeps answering a good client afterwards.

mod common;

use std::time::Duration;

use berth_ipc::frame::{HEADER_LEN, Header, Kind};
use berth_ipc::{Code, ServerConfig};
use common::{
    assert_serves, expect_error_then_close, fixture, frame_bytes, hello_bytes, raw_connect, raw_greeted, read,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_gib_length_is_refused() {
    let fx = fixture(ServerConfig::default());
    // Before the handshake.
    let mut s = raw_connect(&fx.path).await;
    s.write_all(&Header::encode(Kind::Hello, 0, u32::MAX)).await.expect("send");
    assert_eq!(expect_error_then_close(&mut s).await.code, Code::OutOfRange);
    // After it.
    let mut s = raw_greeted(&fx.path).await;
    s.write_all(&Header::encode(Kind::Request, 1, u32::MAX)).await.expect("send");
    let err = expect_error_then_close(&mut s).await;
    assert_eq!(err.code, Code::OutOfRange);
    assert_eq!(err.message, "frame of 4294967295 bytes exceeds the limit of 16777216");
    assert_serves(&fx.path).await;
    fx.server.stop(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_bytes_are_refused() {
    let fx = fixture(ServerConfig::default());
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let noise: Vec<u8> = (0..8192)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    for greeted in [false, true] {
        let mut s = if greeted { raw_greeted(&fx.path).await } else { raw_connect(&fx.path).await };
        // The service may close before reading everything: a failed write is fine.
        let _ = s.write_all(&noise).await;
        assert_eq!(expect_error_then_close(&mut s).await.code, Code::InvalidArgument);
        assert_serves(&fx.path).await;
    }
    let m = common::client(&fx.path, Duration::from_secs(5)).metrics().await.expect("metrics");
    assert!(m.bad_frames >= 2, "bad frames counted: {}", m.bad_frames);
    fx.server.stop(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_magic_and_wrong_version() {
    let fx = fixture(ServerConfig::default());
    let mut hello = hello_bytes("test");
    hello[0..4].copy_from_slice(b"HTTP");
    let mut s = raw_connect(&fx.path).await;
    s.write_all(&hello).await.expect("send");
    let err = expect_error_then_close(&mut s).await;
    assert_eq!(err.code, Code::InvalidArgument);
    assert!(err.message.starts_with("bad magic"), "{err}");
    assert_serves(&fx.path).await;

    let mut hello = hello_bytes("test");
    hello[4] = 2;
    let mut s = raw_connect(&fx.path).await;
    s.write_all(&hello).await.expect("send");
    let err = expect_error_then_close(&mut s).await;
    assert_eq!(err.code, Code::FailedPrecondition);
    assert_eq!(err.message, "protocol version 2 not supported, this side speaks 1");
    assert_serves(&fx.path).await;

    // A right header whose Hello claims another protocol version.
    let hello = berth_ipc::Hello { protocol: 7, service: "test".into(), client_name: "raw".into() };
    let mut s = raw_connect(&fx.path).await;
    let payload = berth_ipc::codec::encode(&hello).expect("encode");
    s.write_all(&frame_bytes(Kind::Hello, 0, &payload)).await.expect("send");
    assert_eq!(expect_error_then_close(&mut s).await.code, Code::FailedPrecondition);

    // A wrong version after the handshake.
    let mut s = raw_greeted(&fx.path).await;
    let mut req = frame_bytes(Kind::Request, 1, &[]);
    req[4] = 0;
    s.write_all(&req).await.expect("send");
    assert_eq!(expect_error_then_close(&mut s).await.code, Code::FailedPrecondition);
    assert_serves(&fx.path).await;
    fx.server.stop(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncated_frame_then_close() {
    let fx = fixture(ServerConfig::default());
    let before =
        common::client(&fx.path, Duration::from_secs(5)).metrics().await.expect("metrics").bad_frames;
    // Inside the header, before the handshake.
    let mut s = raw_connect(&fx.path).await;
    s.write_all(&hello_bytes("test")[..HEADER_LEN - 5]).await.expect("send");
    s.shutdown().await.expect("half close");
    let mut rest = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut rest))
        .await
        .expect("the service closes the connection");
    // Inside a payload, after the handshake.
    let mut s = raw_greeted(&fx.path).await;
    let req = frame_bytes(Kind::Request, 1, &[0u8; 64]);
    s.write_all(&req[..HEADER_LEN + 10]).await.expect("send");
    s.shutdown().await.expect("half close");
    let mut rest = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut rest))
        .await
        .expect("the service closes the connection");
    assert_serves(&fx.path).await;
    let after = common::client(&fx.path, Duration::from_secs(5)).metrics().await.expect("metrics").bad_frames;
    assert_eq!(after - before, 2, "both truncated frames counted as bad");
    fx.server.stop(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_before_hello_and_hello_for_another_service() {
    let fx = fixture(ServerConfig::default());
    let mut s = raw_connect(&fx.path).await;
    let body = berth_ipc::codec::encode(&berth_ipc::protocol::RequestBody::<()>::Common(
        berth_ipc::protocol::CommonRequest::Health,
    ))
    .expect("encode");
    s.write_all(&frame_bytes(Kind::Request, 1, &body)).await.expect("send");
    let err = expect_error_then_close(&mut s).await;
    assert_eq!(err.code, Code::InvalidArgument);
    assert_eq!(err.message, "expected a hello frame, got Request");
    assert_serves(&fx.path).await;

    let mut s = raw_connect(&fx.path).await;
    s.write_all(&hello_bytes("content")).await.expect("send");
    let err = expect_error_then_close(&mut s).await;
    assert_eq!(err.code, Code::InvalidArgument);
    assert_eq!(err.message, "this socket serves test, not content");
    assert_serves(&fx.path).await;

    // A typed client of another service gets the error, not a hang.
    let wrong = berth_ipc::Client::<berth_ipc::launcher::Launcher>::new(
        &fx.path,
        berth_ipc::ClientOptions { deadline: Duration::from_secs(2), client_name: "wrong".into() },
    );
    let err = wrong.health().await.expect_err("wrong service");
    assert_eq!(err.code, Code::InvalidArgument, "{err}");
    fx.server.stop(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undecodable_request_payload() {
    let fx = fixture(ServerConfig::default());
    for payload in [&[0xffu8, 0xff, 0xff][..], &[1, 200][..], &[][..]] {
        let mut s = raw_greeted(&fx.path).await;
        s.write_all(&frame_bytes(Kind::Request, 5, payload)).await.expect("send");
        let err = expect_error_then_close(&mut s).await;
        assert_eq!(err.code, Code::InvalidArgument, "{err}");
        assert!(err.message.starts_with("request 5: undecodable payload"), "{err}");
        assert_serves(&fx.path).await;
    }
    // Request id 0 is reserved for connection-level errors.
    let mut s = raw_greeted(&fx.path).await;
    let body = berth_ipc::codec::encode(&berth_ipc::protocol::RequestBody::<()>::Common(
        berth_ipc::protocol::CommonRequest::Health,
    ))
    .expect("encode");
    s.write_all(&frame_bytes(Kind::Request, 0, &body)).await.expect("send");
    let err = expect_error_then_close(&mut s).await;
    assert_eq!((err.code, err.message.as_str()), (Code::InvalidArgument, "request id 0 is reserved"));
    // A frame kind only a service sends.
    let mut s = raw_greeted(&fx.path).await;
    s.write_all(&frame_bytes(Kind::Welcome, 1, &[])).await.expect("send");
    assert_eq!(expect_error_then_close(&mut s).await.code, Code::InvalidArgument);
    // An unknown kind.
    let mut s = raw_greeted(&fx.path).await;
    let mut f = frame_bytes(Kind::Request, 1, &[]);
    f[5] = 42;
    s.write_all(&f).await.expect("send");
    assert_eq!(expect_error_then_close(&mut s).await.code, Code::InvalidArgument);
    assert_serves(&fx.path).await;
    fx.server.stop(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_idle_connections() {
    raise_nofile_limit(4096);
    let fx = fixture(ServerConfig::default());
    let mut idle = Vec::new();
    for i in 0..1000u32 {
        // Half never say hello; half greet and then say nothing.
        let s = if i.is_multiple_of(2) { raw_connect(&fx.path).await } else { raw_greeted(&fx.path).await };
        idle.push(s);
    }
    assert_serves(&fx.path).await;
    let c = common::client(&fx.path, Duration::from_secs(5));
    let m = c.metrics().await.expect("metrics");
    assert!(m.connections_open >= 1001, "idle connections held open: {}", m.connections_open);
    // An idle greeted connection still works when it finally speaks.
    let mut s = idle.pop().expect("one");
    let body = berth_ipc::codec::encode(&berth_ipc::protocol::RequestBody::<()>::Common(
        berth_ipc::protocol::CommonRequest::Health,
    ))
    .expect("encode");
    s.write_all(&frame_bytes(Kind::Request, 9, &body)).await.expect("send");
    let f = read(&mut s).await.expect("answer");
    assert_eq!((f.header.kind, f.header.id), (Kind::Response, 9));
    drop(idle);
    drop(s);
    // The server notices the closes and frees the slots.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let open = c.metrics().await.expect("metrics").connections_open;
        if open == 1 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{open} connections still open");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    fx.server.stop(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_connection_is_closed_after_the_handshake_timeout() {
    let config = ServerConfig { handshake_timeout: Duration::from_millis(200), ..ServerConfig::default() };
    let fx = fixture(config);
    let mut s = raw_connect(&fx.path).await;
    let err = expect_error_then_close(&mut s).await;
    assert_eq!(err.code, Code::Unavailable);
    assert_eq!(err.message, "no hello within the handshake timeout");
    assert_serves(&fx.path).await;
    // Closed right away, with nothing sent at all.
    let mut s = raw_connect(&fx.path).await;
    s.shutdown().await.expect("half close");
    expect_error_then_close(&mut s).await;
    fx.server.stop(Duration::from_secs(5)).await;
}

/// Two fds per connection live in this process: lift the soft limit.
fn raise_nofile_limit(want: u64) {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).expect("getrlimit");
    if soft < want {
        setrlimit(Resource::RLIMIT_NOFILE, hard.max(want), hard.max(want)).expect("raise RLIMIT_NOFILE");
    }
}
