//! Concurrent publishers, filtered subscribers, replay with `since`, idempotency.

mod common;

use std::collections::HashSet;

use berth_ipc::events::{Publish, Since, SubscribeItem, topics};
use berth_service_kit::config::EventsConfig;
use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_publishers_filtered_subscriber_sees_exactly_the_matches_in_order() {
    let dir = tempfile::tempdir().expect("tempdir");
    let svc = start_in(dir.path(), EventsConfig::default()).await;
    let sub_client = svc.client();
    let filters = ["topic==/tasks/exit,namespace==k8s.io", r#"topic~="^/content/",event.size~="0$""#];
    let (mut filtered, _, last0) = subscribe(&sub_client, &filters, Since::Live).await;
    let (mut all, _, _) = subscribe(&svc.client(), &[], Since::Live).await;
    assert_eq!(last0, 0);

    let mut tasks = Vec::new();
    for p in 0..4u64 {
        let client = svc.client();
        tasks.push(tokio::spawn(async move {
            let publisher = format!("pub-{p}");
            let mut counter = 1;
            for round in 0..20u64 {
                let events: Vec<_> = (0..25u64)
                    .map(|i| {
                        let n = p * 10_000 + round * 100 + i;
                        let ns = if n % 3 == 0 { "k8s.io" } else { "default" };
                        if n % 2 == 0 { exit(ns, n) } else { content(ns, n) }
                    })
                    .collect();
                let seqs = publish(&client, &publisher, counter, events).await;
                assert_eq!(seqs.len(), 25);
                assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1), "a batch is contiguous");
                counter += 25;
            }
        }));
    }
    for t in tasks {
        t.await.expect("publisher");
    }
    let everything = events_until(&mut all, 2000).await;
    assert_contiguous(&everything, 1, 2000);
    let expected: Vec<u64> = everything
        .iter()
        .filter(|e| {
            let size_ends_0 = e.payload.to_json()["size"].as_u64().is_some_and(|s| s % 10 == 0);
            (e.topic == topics::TASK_EXIT && e.namespace == "k8s.io")
                || (e.topic.starts_with("/content/") && size_ends_0)
        })
        .map(|e| e.seq)
        .collect();
    assert!(expected.len() > 100, "the filter selects a real subset: {}", expected.len());
    let got = events_until(&mut filtered, *expected.last().expect("some")).await;
    assert_eq!(got.iter().map(|e| e.seq).collect::<Vec<_>>(), expected);
    // Per-publisher order: counters of each publisher appear in increasing seq order.
    let mut last_per_pub = std::collections::HashMap::new();
    for e in &everything {
        if let berth_ipc::events::Payload::ContentCreate(c) = &e.payload {
            let p = c.size / 10_000;
            let prev = last_per_pub.insert(p, c.size);
            assert!(prev.is_none_or(|prev| prev < c.size), "publisher {p} order kept");
        }
    }
    svc.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn since_replays_then_continues_live_without_gap_or_duplicate() {
    let dir = tempfile::tempdir().expect("tempdir");
    let svc = start_in(dir.path(), EventsConfig::default()).await;
    let client = svc.client();
    for b in 0..10u64 {
        publish(&client, "before", b * 100 + 1, (0..100).map(|i| content("default", b * 100 + i)).collect())
            .await;
    }
    let publisher = {
        let client = svc.client();
        tokio::spawn(async move {
            for b in 0..40u64 {
                publish(&client, "during", b * 50 + 1, (0..50).map(|i| exit("default", i)).collect()).await;
                tokio::task::yield_now().await;
            }
        })
    };
    let (mut stream, oldest, last) = subscribe(&svc.client(), &[], Since::Seq(1)).await;
    assert_eq!(oldest, 1);
    assert!(last >= 1000, "replay covers what was published before: {last}");
    publisher.await.expect("publisher");
    let got = events_until(&mut stream, 3000).await;
    assert_contiguous(&got, 1, 3000);

    // From the middle, and by time.
    let (mut mid, _, _) = subscribe(&svc.client(), &[], Since::Seq(2500)).await;
    assert_contiguous(&events_until(&mut mid, 3000).await, 2500, 3000);
    let t = got[1999].timestamp;
    let (mut by_time, _, _) = subscribe(&svc.client(), &[], Since::Time(t)).await;
    let first = match next(&mut by_time).await {
        SubscribeItem::Event(e) => e,
        other => panic!("unexpected {other:?}"),
    };
    assert!(first.timestamp >= t && first.seq <= 2000, "time replay starts at the first event at or after t");
    svc.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retried_publish_is_stored_once_even_across_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let svc = start_in(dir.path(), EventsConfig::default()).await;
    let client = svc.client();
    let a = publish(&client, "p", 1, (0..10).map(|i| content("default", i)).collect()).await;
    let again = publish(&client, "p", 1, (0..10).map(|i| content("default", i)).collect()).await;
    assert_eq!(a, again, "same keys, same seqs");
    // Overlapping retry that grew: first 10 known, 5 new.
    let grown = publish(&client, "p", 1, (0..15).map(|i| content("default", i)).collect()).await;
    assert_eq!(&grown[..10], &a[..]);
    assert_eq!(grown[10..], [11, 12, 13, 14, 15]);
    let one = client
        .call(Publish { publisher: "q".into(), counter: 7, event: exit("default", 1) })
        .await
        .expect("publish");
    assert_eq!(one, 16);
    drop(client);
    svc.stop().await;

    let svc = start_in(dir.path(), EventsConfig::default()).await;
    let client = svc.client();
    let after = publish(&client, "p", 1, (0..15).map(|i| content("default", i)).collect()).await;
    assert_eq!(after, grown, "window survives a restart");
    let one = client
        .call(Publish { publisher: "q".into(), counter: 7, event: exit("default", 1) })
        .await
        .expect("publish");
    assert_eq!(one, 16);
    let next = publish(&client, "p", 16, vec![content("default", 99)]).await;
    assert_eq!(next, [17], "seqs continue after restart");
    let stats = client.call(berth_ipc::events::Stats).await.expect("stats");
    assert_eq!((stats.oldest, stats.last, stats.count), (1, 17, 17));
    let seen: HashSet<u64> = after.into_iter().collect();
    assert_eq!(seen.len(), 15);
    svc.stop().await;
}
