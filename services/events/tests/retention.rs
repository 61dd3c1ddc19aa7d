//! Retention by count (enforced at start and every 10 s), what a subscriber from an old seq
//! sees, and the gauges in `Metrics`.

mod common;

use berth_ipc::events::{Since, Stats, SubscribeItem};
use berth_service_kit::config::EventsConfig;
use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_keeps_the_newest_and_seqs_go_on() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = EventsConfig { max_events: 100, ..EventsConfig::default() };
    let svc = start_in(dir.path(), cfg.clone()).await;
    let client = svc.client();
    for b in 0..5u64 {
        publish(&client, "p", b * 50 + 1, (0..50).map(|i| content("default", i)).collect()).await;
    }
    drop(client);
    svc.stop().await;

    let svc = start_in(dir.path(), cfg).await;
    let client = svc.client();
    let stats = client.call(Stats).await.expect("stats");
    assert_eq!((stats.oldest, stats.last, stats.count), (151, 250, 100));

    // A subscriber asking for seq 1 learns where the log starts and gets what is left.
    // (Own connection: an unread stream holds up other answers on its connection.)
    let sub_client = svc.client();
    let (mut s, oldest, last) = subscribe(&sub_client, &[], Since::Seq(1)).await;
    assert_eq!((oldest, last), (151, 250));
    match next(&mut s).await {
        SubscribeItem::Event(e) => assert_eq!(e.seq, 151),
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(publish(&client, "p", 251, vec![content("default", 1)]).await, [251]);

    let metrics = client.metrics().await.expect("metrics");
    let gauge = |name: &str| metrics.gauges.iter().find(|(n, _)| n == name).map(|(_, v)| *v);
    assert_eq!(gauge("events_last_seq"), Some(251.0));
    assert_eq!(gauge("events_log_length"), Some(101.0));
    assert_eq!(gauge("events_subscribers"), Some(1.0));
    drop(s);
    svc.stop().await;
}
