//! The connection cap and graceful shutdown.

mod common;

use std::time::{Duration, Instant};

use berth_ipc::{Code, ServerConfig};
use common::{Echo, Sleep, State, client, expect_error_then_close, fixture, raw_connect, raw_greeted};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn third_connection_over_a_cap_of_two_is_unavailable() {
    let fx = fixture(ServerConfig { max_connections: 2, ..ServerConfig::default() });
    let first = raw_greeted(&fx.path).await;
    let second = raw_greeted(&fx.path).await;
    let mut third = raw_connect(&fx.path).await;
    let err = expect_error_then_close(&mut third).await;
    assert_eq!(err.code, Code::Unavailable);
    assert_eq!(err.message, "test: too many connections");
    // A client retries while the service is full, then reports Unavailable.
    let c = client(&fx.path, Duration::from_millis(300));
    let err = c.call(Echo("x".into())).await.expect_err("no slot");
    assert_eq!(err.code, Code::Unavailable, "{err}");
    assert!(err.message.contains("too many connections"), "{err}");
    // A freed slot is reused.
    drop(first);
    let c = client(&fx.path, Duration::from_secs(5));
    assert_eq!(c.call(Echo("slot".into())).await.expect("echo once a slot is free"), "slot");
    let m = c.metrics().await.expect("metrics");
    assert!(m.connections_refused >= 2, "refusals counted: {}", m.connections_refused);
    drop(second);
    fx.server.stop(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_lets_in_flight_calls_finish() {
    let fx = fixture(ServerConfig::default());
    let c = client(&fx.path, Duration::from_millis(500));
    c.call(Echo("connect".into())).await.expect("connect");
    let slow = tokio::spawn({
        let c = c.clone();
        async move { (c.call(Sleep { ms: 600 }).await, Instant::now()) }
    });
    while State::get(&fx.state.sleep_started) == 0 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let asked = Instant::now();
    fx.server.shutdown.cancel();
    let served = tokio::time::timeout(Duration::from_secs(5), fx.server.task).await;
    let returned = Instant::now();
    assert!(matches!(served, Ok(Ok(Ok(())))), "serve returned cleanly");
    let (answer, answered) = slow.await.expect("join");
    assert_eq!(answer.expect("the in-flight call completed"), 600);
    assert!(answered >= asked, "answered after shutdown was requested");
    assert!(returned >= answered - Duration::from_millis(50), "serve waited for the call");
    assert!(returned.duration_since(asked) < Duration::from_secs(2), "serve returned promptly");
    assert_eq!(State::get(&fx.state.sleep_started), 1, "the call ran once");
    // Nothing listens any more: new calls fail at the deadline.
    let err = c.call(Echo("after".into())).await.expect_err("no service");
    assert_eq!(err.code, Code::Unavailable, "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_grace_bounds_a_call_that_never_ends() {
    let config = ServerConfig { shutdown_grace: Duration::from_millis(200), ..ServerConfig::default() };
    let fx = fixture(config);
    let c = client(&fx.path, Duration::from_millis(300));
    let stuck = tokio::spawn({
        let c = c.clone();
        async move { c.call(Sleep { ms: 60_000 }).await }
    });
    while State::get(&fx.state.sleep_started) == 0 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    // Also a connection stuck before its hello: shutdown does not wait for its timeout.
    let _silent = raw_connect(&fx.path).await;
    let asked = Instant::now();
    fx.server.stop(Duration::from_secs(3)).await;
    assert!(asked.elapsed() < Duration::from_secs(1), "serve overran the grace: {:?}", asked.elapsed());
    let err = stuck.await.expect("join").expect_err("the call was dropped");
    assert_eq!(err.code, Code::Unavailable, "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_while_a_connection_is_at_its_inflight_limit() {
    let config = ServerConfig {
        max_inflight: 2,
        shutdown_grace: Duration::from_millis(200),
        ..ServerConfig::default()
    };
    let fx = fixture(config);
    let c = client(&fx.path, Duration::from_millis(300));
    let calls: Vec<_> = (0..3)
        .map(|_| {
            let c = c.clone();
            tokio::spawn(async move { c.call(Sleep { ms: 60_000 }).await })
        })
        .collect();
    while State::get(&fx.state.sleep_started) < 2 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(State::get(&fx.state.sleep_started), 2, "the third call waits for a slot");
    let asked = Instant::now();
    fx.server.stop(Duration::from_secs(3)).await;
    assert!(asked.elapsed() < Duration::from_secs(1), "serve overran the grace: {:?}", asked.elapsed());
    for call in calls {
        let err = call.await.expect("join").expect_err("dropped or never served");
        assert_eq!(err.code, Code::Unavailable, "{err}");
    }
}
