//! The idempotency window across restarts: a publish retried after the service restarted
//! gets the seq first assigned, whether or not retention has since removed the event, with
//! a log much longer than the window.

mod common;

use berth_ipc::events::Stats;
use berth_service_kit::config::EventsConfig;
use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_after_restart_is_deduplicated_with_a_large_log() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = EventsConfig { dedup_window: 5_000, ..EventsConfig::default() };
    let svc = start_in(dir.path(), cfg.clone()).await;
    let client = svc.client();
    // 40,000 events, eight times the window.
    for b in 0..10u64 {
        let seqs =
            publish(&client, "big", b * 4_000, (0..4_000).map(|i| content("default", i)).collect()).await;
        assert_eq!(seqs.first(), Some(&(b * 4_000 + 1)));
    }
    drop(client);
    svc.stop().await;

    let svc = start_in(dir.path(), cfg).await;
    let client = svc.client();
    // The oldest key of the window and the newest one: answered, nothing stored.
    assert_eq!(publish(&client, "big", 35_000, vec![content("default", 0)]).await, [35_001]);
    assert_eq!(publish(&client, "big", 39_998, vec![content("default", 0); 2]).await, [39_999, 40_000]);
    assert_eq!(client.call(Stats).await.expect("stats").last, 40_000, "no duplicate stored");
    // Just outside the window: forgotten, stored again.
    assert_eq!(publish(&client, "big", 34_999, vec![content("default", 0)]).await, [40_001]);
    drop(client);
    svc.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_of_an_event_retention_removed_is_deduplicated_after_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Retention keeps 10 events, the window remembers 1,000 keys.
    let cfg = EventsConfig { max_events: 10, dedup_window: 1_000, ..EventsConfig::default() };
    let svc = start_in(dir.path(), cfg.clone()).await;
    let client = svc.client();
    assert_eq!(publish(&client, "early", 7, vec![content("default", 7)]).await, [1]);
    publish(&client, "later", 0, (0..100).map(|i| content("default", i)).collect()).await;
    drop(client);
    svc.stop().await;

    // The next start's retention pass removes seq 1; its key is still in the window, and
    // must stay there across one more restart.
    let svc = start_in(dir.path(), cfg.clone()).await;
    let stats = svc.client().call(Stats).await.expect("stats");
    assert_eq!((stats.oldest, stats.last), (92, 101), "retention removed the early event");
    svc.stop().await;
    let svc = start_in(dir.path(), cfg).await;
    let client = svc.client();
    assert_eq!(publish(&client, "early", 7, vec![content("default", 7)]).await, [1], "retry answered");
    assert_eq!(client.call(Stats).await.expect("stats").last, 101, "not stored twice");
    drop(client);
    svc.stop().await;
}
