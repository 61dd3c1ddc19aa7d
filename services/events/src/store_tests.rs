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
fn keys_outlive_retention_while_their_segment_stays() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let log = Log::open(dir.path(), 1000).expect("open");
        for b in 0..5 {
            append(&log, b * 2..b * 2 + 2);
        }
        assert_eq!(log.enforce_retention(2, u64::MAX).expect("retain"), 8);
    }
    let log = Log::open(dir.path(), 1000).expect("reopen");
    assert_eq!((log.oldest(), log.last()), (9, 10), "oldest read back");
    assert!(log.get(8).expect("get").is_none(), "removed stays removed");
    let all = keys(&log, 1000);
    assert_eq!(all.len(), 10, "the removed events' keys are still known");
    assert_eq!(all[0], ("p".into(), 0, 1));
    assert_eq!(log.recent_keys(1000).expect("runs").len(), 1, "one publisher, consecutive: one run");
}

#[test]
fn segments_roll_are_indexed_and_retention_removes_only_whole_ones() {
    let dir = tempfile::tempdir().expect("tempdir");
    let seg_dir = dir.path().join("segments");
    {
        let log = Log::open_sized(dir.path(), 10, 1_000).expect("open");
        for b in 0..50 {
            append(&log, b * 4..b * 4 + 4);
        }
        assert!(log.segment_count() > 5, "rolled: {}", log.segment_count());
        assert_eq!(log.read(1, 200, 1_000).expect("read").len(), 200);
    }
    // A lost index is rebuilt from its segment.
    let idx: Vec<_> = std::fs::read_dir(&seg_dir)
        .expect("list")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "idx"))
        .collect();
    assert!(!idx.is_empty(), "sealed segments have index files");
    std::fs::remove_file(&idx[0]).expect("remove idx");
    let log = Log::open_sized(dir.path(), 10, 1_000).expect("reopen");
    assert_eq!(log.last(), 200);
    let got = log.read(1, 200, 1_000).expect("read");
    assert_eq!(got.iter().map(|(s, _)| *s).collect::<Vec<_>>(), (1..=200).collect::<Vec<_>>());
    assert!(
        matches!(&got[150].1.payload, berth_ipc::events::Payload::ContentDelete(c) if c.digest == "d150")
    );
    let before = log.segment_count();
    assert_eq!(log.enforce_retention(55, u64::MAX).expect("retain"), 145);
    assert_eq!((log.oldest(), log.count()), (146, 55));
    assert!(log.segment_count() < before, "whole segments removed");
    assert!(log.get(145).expect("get").is_none() && log.get(146).expect("get").is_some());
    assert_eq!(keys(&log, 10).first(), Some(&("p".into(), 190, 191)));
    assert_eq!(append(&log, 200..201), vec![201]);
}

#[test]
fn a_torn_tail_is_cut_and_the_log_goes_on() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let log = Log::open(dir.path(), 1000).expect("open");
        append(&log, 0..3);
    }
    let seg = dir.path().join("segments").join(format!("{:020}.log", 1));
    let good = std::fs::metadata(&seg).expect("stat").len();
    // Half a frame, as a crash during a write leaves it.
    let mut f = std::fs::OpenOptions::new().append(true).open(&seg).expect("open seg");
    std::io::Write::write_all(&mut f, &[40, 0, 0, 0, 1, 2, 3, 4, 5, 6]).expect("write");
    drop(f);
    let log = Log::open(dir.path(), 1000).expect("reopen");
    assert_eq!(log.last(), 3);
    assert_eq!(std::fs::metadata(&seg).expect("stat").len(), good, "tail cut off");
    assert_eq!(append(&log, 3..4), vec![4]);
    drop(log);
    assert_eq!(Log::open(dir.path(), 1000).expect("reopen").read(1, 9, 9).expect("read").len(), 4);
}

#[test]
fn damage_inside_a_sealed_segment_is_data_loss_not_a_panic() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let log = Log::open_sized(dir.path(), 10, 200).expect("open");
        for b in 0..10 {
            append(&log, b * 2..b * 2 + 2);
        }
        assert!(log.segment_count() > 2);
    }
    let seg_dir = dir.path().join("segments");
    let first = seg_dir.join(format!("{:020}.log", 1));
    let mut bytes = std::fs::read(&first).expect("read");
    bytes[20] ^= 0xff;
    std::fs::write(&first, bytes).expect("write");
    // The index still fits, so the open succeeds; the read finds the damage.
    let log = Log::open_sized(dir.path(), 10, 200).expect("open");
    let err = log.read(1, 2, 10).expect_err("damaged record");
    assert_eq!(err.code, berth_ipc::Code::DataLoss, "{err:?}");
    drop(log);
    // Without its index the segment is scanned, and the damage found at open.
    std::fs::remove_file(seg_dir.join(format!("{:020}.idx", 1))).expect("rm idx");
    let err = Log::open_sized(dir.path(), 10, 200).err().expect("damaged segment");
    assert_eq!(err.code, berth_ipc::Code::DataLoss, "{err:?}");
    assert!(err.message.contains("00000000000000000001.log"), "{}", err.message);
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
fn a_log_kept_in_fjall_is_moved_into_segments_once() {
    use fjall::{Database, KeyspaceCreateOptions};
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let db = Database::builder(dir.path()).open().expect("fjall");
        let log = db.keyspace("log", KeyspaceCreateOptions::default).expect("log");
        let meta = db.keyspace("meta", KeyspaceCreateOptions::default).expect("meta");
        for seq in 5..=9u64 {
            let r = Record {
                timestamp: seq,
                namespace: "default".into(),
                topic: "/content/delete".into(),
                payload: ev(seq).event.payload,
                publisher: "old".into(),
                counter: seq * 10,
            };
            log.insert(seq.to_be_bytes(), codec::encode(&r).expect("encode")).expect("insert");
        }
        meta.insert(b"last_seq", 9u64.to_be_bytes()).expect("meta");
        db.persist(fjall::PersistMode::SyncAll).expect("persist");
    }
    let log = Log::open(dir.path(), 1000).expect("open");
    assert_eq!((log.oldest(), log.last()), (5, 9));
    let got = log.read(1, 100, 100).expect("read");
    assert_eq!(got.len(), 5);
    assert_eq!((got[0].0, got[0].1.publisher.as_str(), got[0].1.counter), (5, "old", 50));
    assert!(!dir.path().join("keyspaces").exists(), "the fjall database is gone");
    assert_eq!(keys(&log, 2), vec![("old".into(), 80, 8), ("old".into(), 90, 9)]);
    assert_eq!(append(&log, 0..1), vec![10]);
    drop(log);
    assert_eq!(Log::open(dir.path(), 1000).expect("reopen").last(), 10);
}
