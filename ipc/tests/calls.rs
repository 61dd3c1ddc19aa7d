//! Calls on a live server: round trips, many calls in flight answered out of order, streams
//! and their cancellation, and the common Health and Metrics calls.

mod common;

use std::time::{Duration, Instant};

use berth_ipc::{Code, ServerConfig};
use common::{Add, Count, Echo, Fail, Sleep, State, client, fixture};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_trip_and_welcome() {
    let fx = fixture(ServerConfig::default());
    let c = client(&fx.path, Duration::from_secs(5));
    assert_eq!(c.call(Echo("hello".into())).await.expect("echo"), "hello");
    assert_eq!(c.call(Add { a: 40, b: 2, delay_ms: 0 }).await.expect("add"), 42);
    let w = c.welcome().await.expect("welcome");
    assert_eq!((w.service.as_str(), w.protocol, w.pid), ("test", 1, std::process::id()));
    let err = c.call(Fail("widget w1".into())).await.expect_err("fail fails");
    assert_eq!(err.code, Code::NotFound);
    assert_eq!(err.message, "widget w1: not found");
    fx.server.stop(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_call_does_not_block_fast_ones() {
    let fx = fixture(ServerConfig::default());
    let c = client(&fx.path, Duration::from_secs(5));
    c.call(Echo("warm".into())).await.expect("connect");
    let slow = tokio::spawn({
        let c = c.clone();
        async move { c.call(Sleep { ms: 1500 }).await }
    });
    while State::get(&fx.state.sleep_started) == 0 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let started = Instant::now();
    for i in 0..50 {
        assert_eq!(c.call(Echo(format!("fast {i}"))).await.expect("echo"), format!("fast {i}"));
    }
    assert!(started.elapsed() < Duration::from_millis(1000), "fast calls waited for the slow one");
    assert!(!slow.is_finished(), "the slow call answered before the fast ones");
    assert_eq!(slow.await.expect("join").expect("sleep"), 1500);
    fx.server.stop(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_calls_in_flight_on_one_client() {
    let fx = fixture(ServerConfig::default());
    let c = client(&fx.path, Duration::from_secs(5));
    // Longer sleeps first: answers must come back in another order than the requests.
    let calls: Vec<_> = (0..300u64)
        .map(|i| {
            let c = c.clone();
            tokio::spawn(async move {
                if i.is_multiple_of(3) {
                    c.call(Sleep { ms: 300 - i }).await.map(|ms| (i, ms))
                } else {
                    c.call(Echo(i.to_string())).await.map(|s| (i, s.parse::<u64>().expect("number")))
                }
            })
        })
        .collect();
    for (i, handle) in calls.into_iter().enumerate() {
        let i = i as u64;
        let (back, value) = handle.await.expect("join").expect("call");
        assert_eq!(back, i);
        assert_eq!(value, if i.is_multiple_of(3) { 300 - i } else { i });
    }
    let m = c.metrics().await.expect("metrics");
    assert_eq!(m.connections_total, 1, "all calls shared one connection");
    fx.server.stop(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_items_in_order_then_end() {
    let fx = fixture(ServerConfig::default());
    let c = client(&fx.path, Duration::from_secs(5));
    let mut s = c.stream(Count { n: 500, delay_ms: 0 }).await.expect("stream");
    let mut got = Vec::new();
    while let Some(item) = s.next().await {
        got.push(item.expect("item"));
    }
    assert_eq!(got, (0..500).collect::<Vec<u32>>());
    assert!(s.next().await.is_none(), "a finished stream stays finished");
    // Two streams and a unary call interleaved on the same connection.
    let mut a = c.stream(Count { n: 20, delay_ms: 1 }).await.expect("stream a");
    let mut b = c.stream(Count { n: 20, delay_ms: 1 }).await.expect("stream b");
    for i in 0..20 {
        assert_eq!(a.next().await.expect("a item").expect("a ok"), i);
        assert_eq!(b.next().await.expect("b item").expect("b ok"), i);
        assert_eq!(c.call(Echo("x".into())).await.expect("echo"), "x");
    }
    assert!(a.next().await.is_none() && b.next().await.is_none());
    fx.server.stop(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_a_stream_cancels_the_server_side() {
    let fx = fixture(ServerConfig::default());
    let c = client(&fx.path, Duration::from_secs(5));
    let mut s = c.stream(Count { n: u32::MAX, delay_ms: 2 }).await.expect("stream");
    for i in 0..3 {
        assert_eq!(s.next().await.expect("item").expect("ok"), i);
    }
    drop(s);
    let deadline = Instant::now() + Duration::from_secs(3);
    while State::get(&fx.state.count_cancelled) == 0 {
        assert!(Instant::now() < deadline, "the handler never saw ctx.cancel");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(State::get(&fx.state.count_finished), 0);
    // The connection is still good.
    assert_eq!(c.call(Echo("after".into())).await.expect("echo"), "after");
    fx.server.stop(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_and_metrics() {
    let fx = fixture(ServerConfig { version: "9.9.9".into(), ..ServerConfig::default() });
    let c = client(&fx.path, Duration::from_secs(5));
    let h = c.health().await.expect("health");
    assert_eq!((h.name.as_str(), h.version.as_str(), h.pid), ("test", "9.9.9", std::process::id()));
    for _ in 0..7 {
        c.call(Echo("e".into())).await.expect("echo");
    }
    for _ in 0..3 {
        c.call(Fail("f".into())).await.expect_err("fail");
    }
    c.call(Add { a: 1, b: 1, delay_ms: 0 }).await.expect("add");
    let m = c.metrics().await.expect("metrics");
    assert_eq!(m.service, "test");
    let method = |name: &str| m.methods.iter().find(|x| x.method == name).cloned();
    let echo = method("Echo").expect("Echo counted");
    assert_eq!((echo.requests, echo.errors, echo.latency.count), (7, 0, 7));
    let fail = method("Fail").expect("Fail counted");
    assert_eq!((fail.requests, fail.errors), (3, 3));
    assert_eq!(method("Add").expect("Add counted").requests, 1);
    assert_eq!(method("Health").expect("Health counted").requests, 1);
    assert!(method("Sleep").is_none(), "uncalled methods are absent");
    assert_eq!(m.connections_open, 1);
    assert_eq!(m.gauges, vec![("adds".to_string(), 1.0)]);
    assert!(echo.latency.quantile_us(0.5) <= echo.latency.max_us.max(1));
    fx.server.stop(Duration::from_secs(5)).await;
}
