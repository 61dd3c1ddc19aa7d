//! A subscriber that never reads: it gets `Lagged` and costs publishers nothing; resuming
//! from the marker loses nothing.

mod common;

use std::time::{Duration, Instant};

use berth_ipc::events::{Since, SubscribeItem};
use berth_service_kit::config::EventsConfig;
use common::*;

async fn publish_rounds(svc: &Running, publisher: &str, rounds: u64) -> Duration {
    let client = svc.client();
    let started = Instant::now();
    for r in 0..rounds {
        publish(&client, publisher, r * 200 + 1, (0..200).map(|i| content("default", i)).collect()).await;
    }
    started.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_subscriber_lags_without_slowing_publishers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = EventsConfig { subscriber_buffer: 500, ..EventsConfig::default() };
    let svc = start_in(dir.path(), cfg).await;
    // A healthy subscriber that keeps up, present throughout.
    let healthy_client = svc.client();
    let (mut healthy, _, _) = subscribe(&healthy_client, &[], Since::Live).await;
    let reader = tokio::spawn(async move { events_until(&mut healthy, 30_000).await });
    // Baseline: 10,000 events (seqs 1..=10000) without the stalled subscriber.
    let baseline = publish_rounds(&svc, "warm", 50).await;

    // A stalled subscriber: its own connection, never read.
    let stalled_client = svc.client();
    let (mut stalled, _, last) = subscribe(&stalled_client, &[], Since::Live).await;
    assert_eq!(last, 10_000);

    // 20,000 more (seqs 10001..=30000): far more than the socket and channel buffers hold.
    let with_stalled = publish_rounds(&svc, "load", 100).await;
    let healthy_got = reader.await.expect("healthy reader");
    assert_contiguous(&healthy_got, 1, 30_000);
    // Twice the events: allow three times the baseline per event before calling it slowed
    // (the machine running the tests may be busy).
    assert!(
        with_stalled < baseline * 6 + Duration::from_millis(500),
        "publishing with a stalled subscriber took {with_stalled:?}, baseline {baseline:?}"
    );

    // Now read the stalled stream: some events in order, then Lagged, then the end.
    let mut seen = Vec::new();
    let resume_from = loop {
        match next(&mut stalled).await {
            SubscribeItem::Event(e) => seen.push(e),
            SubscribeItem::Lagged { resume_from } => break resume_from,
            other => panic!("unexpected {other:?}"),
        }
    };
    assert!(tokio::time::timeout(Duration::from_secs(5), stalled.next()).await.expect("ends").is_none());
    assert!(!seen.is_empty() && resume_from < 30_000, "lagged before the end: {resume_from}");
    assert_contiguous(&seen, 10_001, resume_from - 1);

    // Resuming from the marker loses nothing.
    let (mut resumed, _, _) = subscribe(&svc.client(), &[], Since::Seq(resume_from)).await;
    assert_contiguous(&events_until(&mut resumed, 30_000).await, resume_from, 30_000);
    let stats = svc.client().call(berth_ipc::events::Stats).await.expect("stats");
    assert!(stats.subscribers <= 2, "the lagged subscriber left the hub: {}", stats.subscribers);
    svc.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_replay_under_load_does_not_lag() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = EventsConfig { subscriber_buffer: 100, ..EventsConfig::default() };
    let svc = start_in(dir.path(), cfg).await;
    publish_rounds(&svc, "old", 20).await; // 4000 events to replay
    let load = {
        let client = svc.client();
        tokio::spawn(async move {
            for r in 0..20u64 {
                publish(&client, "new", r * 200 + 1, (0..200).map(|i| exit("default", i)).collect()).await;
            }
        })
    };
    let (mut stream, _, _) = subscribe(&svc.client(), &[], Since::Seq(1)).await;
    load.await.expect("load");
    // A reader that keeps up gets everything even though live events overflowed its buffer
    // while the replay ran: the replay continues from the log instead.
    assert_contiguous(&events_until(&mut stream, 8000).await, 1, 8000);
    svc.stop().await;
}
