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

/// The newest `n` keys as (publisher, counter, seq), oldest first.
fn keys(log: &Log, n: usize) -> Vec<(String, u64, u64)> {
    let from = (log.last() + 1).saturating_sub(n as u64);
    let runs = log.recent_keys(n).expect("keys");
    runs.iter().flat_map(|r| r.keys_from(from).map(|(c, s)| (r.publisher.clone(), c, s))).collect()
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
    assert_eq!(keys(&log, 2), vec![("p".into(), 4, 5), ("p".into(), 5, 6)]);
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
        for b in 0..5 {
            append(&log, b * 2..b * 2 + 2);
        }
        assert_eq!(log.enforce_retention(2, u64::MAX).expect("retain"), 8);
    }
    let log = Log::open(dir.path(), 1000).expect("reopen");
    assert_eq!((log.oldest(), log.last()), (9, 10), "oldest read back from meta");
    let all = keys(&log, 1000);
    assert_eq!(all.len(), 10, "the removed events' keys are still known");
    assert_eq!(all[0], ("p".into(), 0, 1));
    assert_eq!(log.recent_keys(1000).expect("runs").len(), 5, "one run per append");
    // A window of 3 keeps the appends holding seqs 8..=10: the one of 7..=8 straddles it.
    assert_eq!(log.trim_keys(3).expect("trim"), 3);
    assert_eq!(keys(&log, 1000).first(), Some(&("p".into(), 6, 7)));
    drop(log);
    let log = Log::open(dir.path(), 1000).expect("reopen");
    assert_eq!(keys(&log, 1000).len(), 4, "the trim is durable");
    assert_eq!(keys(&log, 2), vec![("p".into(), 8, 9), ("p".into(), 9, 10)]);
}

#[test]
fn runs_split_at_a_new_publisher_or_a_gap_in_counters() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = Log::open(dir.path(), 1000).expect("open");
    let mut batch: Vec<Pending> = (0..3).map(ev).collect();
    batch.push(Pending { publisher: Arc::from("q"), ..ev(3) });
    batch.push(ev(7));
    log.append(batch).expect("append");
    let runs = log.recent_keys(1000).expect("runs");
    let shape: Vec<(&str, u64, u64, u64)> =
        runs.iter().map(|r| (r.publisher.as_str(), r.counter, r.seq, r.len)).collect();
    assert_eq!(shape, vec![("p", 0, 1, 3), ("q", 3, 4, 1), ("p", 7, 5, 1)]);
}

#[test]
fn a_log_without_keys_is_indexed_once_from_its_records() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let log = Log::open(dir.path(), 1000).expect("open");
        append(&log, 0..20);
        // As a log written before the "keys" keyspace existed.
        log.keys.remove(key(1)).expect("remove keys");
        log.meta.remove(KEYS_FROM).expect("remove keys_from");
    }
    let log = Log::open(dir.path(), 5).expect("reopen");
    let got = keys(&log, 1000);
    assert_eq!(got.len(), 5, "the newest window indexed");
    assert_eq!(got[0], ("p".into(), 15, 16));
    assert_eq!(got[4], ("p".into(), 19, 20));
}

#[test]
fn a_bad_key_entry_is_data_loss_not_a_panic() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = Log::open(dir.path(), 1000).expect("open");
    append(&log, 0..2);
    log.keys.insert(key(2), [1u8, 2]).expect("insert");
    let err = log.recent_keys(10).expect_err("bad entry");
    assert_eq!(err.code, berth_ipc::Code::DataLoss);
    assert!(err.message.contains("idempotency keys at 2"), "{}", err.message);
}
