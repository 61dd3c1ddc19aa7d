//! The embedded publisher: an events service that is down or restarting never blocks or
//! fails `publish`, and every event still reaches the log once, in order.

mod common;

use std::time::{Duration, Instant};

use berth_ipc::events::Since;
use berth_ipc::events::payload::ContentCreate;
use berth_ipc::publisher::Publisher;
use berth_service_kit::config::EventsConfig;
use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outbox_survives_outage_and_restart_in_order_without_duplicates() {
    let dir = tempfile::tempdir().expect("tempdir");
    let socket = config(dir.path(), EventsConfig::default()).socket("events");
    std::fs::create_dir_all(socket.parent().expect("parent")).expect("state");
    let publisher = Publisher::new(&socket, "test", 10_000);

    // Service down: publish returns at once.
    let t = Instant::now();
    for i in 0..1000 {
        publisher.publish("default", ContentCreate { digest: "sha256:x".into(), size: i });
    }
    assert!(t.elapsed() < Duration::from_millis(500), "publish never waits: {:?}", t.elapsed());
    assert_eq!(publisher.stats().queued, 1000);

    // Service comes up: everything arrives.
    let svc = start_in(dir.path(), EventsConfig::default()).await;
    assert!(publisher.flush(Duration::from_secs(20)).await, "flushed: {:?}", publisher.stats());
    // Restart under load.
    for i in 1000..2000 {
        publisher.publish("default", ContentCreate { digest: "sha256:x".into(), size: i });
    }
    svc.stop().await;
    for i in 2000..3000 {
        publisher.publish("default", ContentCreate { digest: "sha256:x".into(), size: i });
    }
    let svc = start_in(dir.path(), EventsConfig::default()).await;
    assert!(publisher.flush(Duration::from_secs(20)).await, "flushed: {:?}", publisher.stats());
    let stats = publisher.stats();
    assert_eq!((stats.queued, stats.dropped, stats.rejected, stats.last_seq), (0, 0, 0, 3000));

    let (mut s, _, _) = subscribe(&svc.client(), &[], Since::Seq(1)).await;
    let all = events_until(&mut s, 3000).await;
    assert_contiguous(&all, 1, 3000);
    for (i, e) in all.iter().enumerate() {
        assert!(
            matches!(&e.payload, berth_ipc::events::Payload::ContentCreate(c) if c.size == i as u64),
            "event {i} in publish order"
        );
    }
    // Invalid events are refused locally and counted.
    publisher.publish("not a namespace", ContentCreate::default());
    assert_eq!(publisher.stats().rejected, 1);
    svc.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_outbox_drops_new_events_and_counts_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    let publisher = Publisher::new(dir.path().join("nobody.sock"), "test", 10);
    for i in 0..15 {
        publisher.publish("default", ContentCreate { digest: "d".into(), size: i });
    }
    let stats = publisher.stats();
    assert_eq!((stats.queued, stats.dropped), (10, 5));
    assert!(!publisher.flush(Duration::from_millis(100)).await, "nothing can be stored");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_events_are_sent_in_batches_that_fit_a_frame() {
    let dir = tempfile::tempdir().expect("tempdir");
    let svc = start_in(dir.path(), EventsConfig::default()).await;
    let publisher = Publisher::new(svc.socket(), "big", 1000);
    // 300 events of ~60 KiB: 18 MiB in all, more than one 16 MiB frame.
    for i in 0..300 {
        publisher.publish("default", ContentCreate { digest: "x".repeat(60_000), size: i });
    }
    assert!(publisher.flush(Duration::from_secs(30)).await, "flushed: {:?}", publisher.stats());
    let stats = publisher.stats();
    assert_eq!((stats.stored, stats.rejected, stats.last_seq), (300, 0, 300));
    svc.stop().await;
}
