//! The client across service restarts: idempotent calls wait and retry, calls that are not
//! safe to repeat are not repeated, and a missing service is `Unavailable` at the deadline.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use berth_ipc::{Code, ServerConfig};
use common::{Add, Count, Echo, Sleep, State, client, fixture, is_unavailable, start};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotent_call_survives_a_restart() {
    let fx = fixture(ServerConfig::default());
    let c = client(&fx.path, Duration::from_secs(5));
    assert_eq!(c.call(Echo("before".into())).await.expect("echo"), "before");
    let first_pid_conn = c.metrics().await.expect("metrics").connections_total;
    assert_eq!(first_pid_conn, 1);

    fx.server.stop(Duration::from_secs(5)).await;
    assert!(fx.path.exists(), "the stale socket file is left behind, as after a crash");
    let started = Instant::now();
    let pending = tokio::spawn({
        let c = c.clone();
        async move { c.call(Echo("across".into())).await }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!pending.is_finished(), "the call waits for the service instead of failing");
    let second = start(&fx.path, ServerConfig::default(), fx.state.clone());
    assert_eq!(pending.await.expect("join").expect("call made during the restart"), "across");
    assert!(started.elapsed() >= Duration::from_millis(300));
    // Later calls use the new connection.
    assert_eq!(c.call(Add { a: 2, b: 3, delay_ms: 0 }).await.expect("add"), 5);
    second.stop(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_service_is_unavailable_at_the_deadline() {
    let dir = tempfile::tempdir().expect("tempdir");
    let c = client(&dir.path().join("nobody.sock"), Duration::from_millis(300));
    let started = Instant::now();
    let err = c.call(Echo("x".into())).await.expect_err("nobody answers");
    let took = started.elapsed();
    assert_eq!(err.code, Code::Unavailable, "{err}");
    assert!(took >= Duration::from_millis(300), "gave up early: {took:?}");
    assert!(took < Duration::from_secs(2), "overran the deadline: {took:?}");
    // Non-idempotent calls that were never sent and streams fail the same way.
    assert!(is_unavailable(&c.call(Add { a: 1, b: 1, delay_ms: 0 }).await.expect_err("add")));
    assert!(is_unavailable(&c.stream(Count { n: 1, delay_ms: 0 }).await.err().expect("stream")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn call_lost_after_sending_is_repeated_only_if_idempotent() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("test.sock");
    let state = Arc::new(State::default());
    // A short grace time: calls still running at shutdown are dropped, their connection dies.
    let config = ServerConfig { shutdown_grace: Duration::from_millis(50), ..ServerConfig::default() };
    let first = start(&path, config.clone(), state.clone());
    let c = client(&path, Duration::from_secs(5));
    c.call(Echo("connect".into())).await.expect("connect");

    let add = tokio::spawn({
        let c = c.clone();
        async move { c.call(Add { a: 1, b: 2, delay_ms: 2000 }).await }
    });
    let sleep = tokio::spawn({
        let c = c.clone();
        async move { c.call(Sleep { ms: 400 }).await }
    });
    while State::get(&state.add_started) == 0 || State::get(&state.sleep_started) == 0 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    first.stop(Duration::from_secs(5)).await;
    let second = start(&path, config, state.clone());

    let err = add.await.expect("join").expect_err("a lost non-idempotent call fails");
    assert_eq!(err.code, Code::Unavailable, "{err}");
    assert!(err.message.contains("not safe to repeat"), "{err}");
    assert_eq!(sleep.await.expect("join").expect("idempotent call retried"), 400);
    assert_eq!(State::get(&state.sleep_started), 2, "the idempotent call ran again");
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(State::get(&state.add_started), 1, "the non-idempotent call was not repeated");
    second.stop(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_cut_by_shutdown_ends_unavailable() {
    let fx = fixture(ServerConfig::default());
    let c = client(&fx.path, Duration::from_secs(5));
    let mut s = c.stream(Count { n: u32::MAX, delay_ms: 5 }).await.expect("stream");
    assert_eq!(s.next().await.expect("item").expect("ok"), 0);
    fx.server.shutdown.cancel();
    let err = loop {
        match s.next().await.expect("no clean end on shutdown") {
            Ok(_) => continue,
            Err(e) => break e,
        }
    };
    assert_eq!(err.code, Code::Unavailable, "{err}");
    assert!(s.next().await.is_none());
    let done = tokio::time::timeout(Duration::from_secs(5), fx.server.task).await;
    assert!(matches!(done, Ok(Ok(Ok(())))), "serve returns promptly");
    let deadline = Instant::now() + Duration::from_secs(3);
    while State::get(&fx.state.count_cancelled) == 0 {
        assert!(Instant::now() < deadline, "the producer never saw ctx.cancel");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
