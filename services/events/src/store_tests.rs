//! Unit tests of the log: seqs, reopen, retention, time search.

use std::sync::Arc;

use berth_ipc::events::NewEvent;
use berth_ipc::events::payload::ContentDelete;

use super::*;

fn ev(i: u64) -> Pending {
    Pending {
        publisher: Arc::from("p"),
        counter: i,
        event: NewEvent::new("default", ContentDelete { digest: format!("d{i}") }),
    }
}

fn append(log: &Log, range: std::ops::Range<u64>) -> Vec<u64> {
    log.append(range.map(ev).collect()).expect("append").iter().map(|e| e.seq).collect()
}

#[test]
fn seqs_are_contiguous_and_survive_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let log = Log::open(dir.path(), 1000).expect("open");
        assert_eq!((log.oldest(), log.last(), log.count()), (1, 0, 0));
        assert_eq!(append(&log, 0..3), vec![1, 2, 3]);
        assert_eq!(append(&log, 3..5), vec![4, 5]);
    }
    let log = Log::open(dir.path(), 1000).expect("reopen");
    assert_eq!((log.oldest(), log.last(), log.count()), (1, 5, 5));
    assert_eq!(append(&log, 5..6), vec![6]);
    let got = log.read(2, 4, 10).expect("read");
    assert_eq!(got.iter().map(|(s, _)| *s).collect::<Vec<_>>(), vec![2, 3, 4]);
    assert!(matches!(&got[0].1.payload, berth_ipc::events::Payload::ContentDelete(c) if c.digest == "d1"));
    assert_eq!(log.read(4, 100, 2).expect("read").len(), 2, "max respected");
    assert_eq!(log.recent_keys(2).expect("keys"), vec![("p".into(), 4, 5), ("p".into(), 5, 6)]);
}

#[test]
fn retention_by_count_never_reuses_seqs() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let log = Log::open(dir.path(), 1000).expect("open");
        append(&log, 0..10);
        assert_eq!(log.enforce_retention(4, u64::MAX).expect("retain"), 6);
        assert_eq!((log.oldest(), log.last(), log.count()), (7, 10, 4));
        assert!(log.get(6).expect("get").is_none());
        // Age 0: everything goes, the seq counter stays.
        assert_eq!(log.enforce_retention(100, 0).expect("retain"), 4);
        assert_eq!(log.count(), 0);
    }
    let log = Log::open(dir.path(), 1000).expect("reopen");
    assert_eq!((log.oldest(), log.last(), log.count()), (11, 10, 0));
    assert_eq!(append(&log, 10..11), vec![11]);
    assert_eq!(log.oldest(), 11);
}

#[test]
fn time_search_finds_first_at_or_after() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = Log::open(dir.path(), 1000).expect("open");
    append(&log, 0..3);
    let mid = now_nanos();
    std::thread::sleep(std::time::Duration::from_millis(2));
    append(&log, 3..5);
    assert_eq!(log.seq_at_time(0).expect("t"), 1);
    assert_eq!(log.seq_at_time(mid).expect("t"), 4);
    assert_eq!(log.seq_at_time(u64::MAX).expect("t"), 6);
}

#[test]
fn keys_outlive_retention_and_are_trimmed_to_the_window() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let log = Log::open(dir.path(), 1000).expect("open");
        append(&log, 0..10);
        assert_eq!(log.enforce_retention(2, u64::MAX).expect("retain"), 8);
    }
    let log = Log::open(dir.path(), 1000).expect("reopen");
    assert_eq!((log.oldest(), log.last()), (9, 10), "oldest read back from meta");
    let keys = log.recent_keys(1000).expect("keys");
    assert_eq!(keys.len(), 10, "the removed events' keys are still known");
    assert_eq!(keys[0], ("p".into(), 0, 1));
    assert_eq!(log.trim_keys(3).expect("trim"), 7);
    assert_eq!(log.recent_keys(1000).expect("keys").first(), Some(&("p".into(), 7, 8)));
    drop(log);
    let log = Log::open(dir.path(), 1000).expect("reopen");
    assert_eq!(log.recent_keys(1000).expect("keys").len(), 3, "the trim is durable");
    assert_eq!(log.recent_keys(2).expect("keys").first(), Some(&("p".into(), 8, 9)));
}

#[test]
fn a_log_without_keys_is_indexed_once_from_its_records() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let log = Log::open(dir.path(), 1000).expect("open");
        append(&log, 0..20);
        // As a log written before the "keys" keyspace existed.
        for seq in 1..=20u64 {
            log.keys.remove(key(seq)).expect("remove key");
        }
        log.meta.remove(KEYS_FROM).expect("remove keys_from");
    }
    let log = Log::open(dir.path(), 5).expect("reopen");
    let keys = log.recent_keys(1000).expect("keys");
    assert_eq!(keys.len(), 5, "the newest window indexed");
    assert_eq!(keys[0], ("p".into(), 15, 16));
    assert_eq!(keys[4], ("p".into(), 19, 20));
}

#[test]
fn a_bad_key_entry_is_data_loss_not_a_panic() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = Log::open(dir.path(), 1000).expect("open");
    append(&log, 0..2);
    log.keys.insert(key(2), [1u8, 2]).expect("insert");
    let err = log.recent_keys(10).expect_err("short key");
    assert_eq!(err.code, berth_ipc::Code::DataLoss);
    assert!(err.message.contains("idempotency key at 2"), "{}", err.message);
}
