//! The durable event log in `<root>/events` (fjall), without sockets or tasks.
//!
//! ```text
//! keyspace "log":  seq (u64 big-endian) -> Record { timestamp, namespace, topic, payload,
//!                                                    publisher, counter }
//! keyspace "keys": first seq of an append (u64 big-endian) -> [KeyRun] of that append
//! keyspace "meta": "last_seq"           -> u64 big-endian, written with every append
//!                  "oldest"             -> u64 big-endian, written by every retention pass
//!                  "keys_from"          -> u64 big-endian, the oldest seq in "keys"
//! ```
//!
//! Seqs are contiguous from 1. The newest seq is also kept in `meta`, in the same atomic
//! batch as the events, so that a log emptied by retention still never hands out a seq
//! twice. An append returns only after the journal is synced (`fdatasync`). Retention
//! removes a prefix of the log, so the retained range is always `oldest..=last`.
//!
//! Each event's idempotency key is written twice in its batch: inside the record, and in the
//! append's one "keys" entry, as runs (a publisher's consecutive counters at consecutive
//! seqs are one run, however many events). A restart rebuilds the idempotency window from
//! "keys" alone, nothing decoded of the log, so the time to answer after a crash depends on
//! the window, not on the log's length. One entry per append, not per event, keeps the
//! journal a restart replays (fjall's active journal, up to 64 MB) nearly as short as the
//! log's own writes make it. "keys" is trimmed to the window by the retention
//! pass, independently of the log: a retried publish whose event retention already removed
//! is still answered with its first seq. A restart never walks the tombstones retention left
//! at the log's start either: the oldest retained seq is read from "meta".

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use berth_ipc::codec;
use berth_ipc::events::{Envelope, NewEvent, Payload};
use berth_ipc::{Error, Result};
use fjall::{Database, Keyspace, KeyspaceCreateOptions, PersistMode};
use serde::{Deserialize, Serialize};

const LAST_SEQ: &[u8] = b"last_seq";
const OLDEST: &[u8] = b"oldest";
const KEYS_FROM: &[u8] = b"keys_from";

/// Bytes appended after which every keyspace's memtable is sealed (and flushed in the
/// background). A journal file can be dropped only once every keyspace has flushed what it
/// holds; the small keyspaces ("meta", "keys") would fill their own memtables only after
/// many times that much of the log, and the journal a restart replays would grow with it.
const ROTATE_BYTES: u64 = 4 << 20;

/// An event as stored: the envelope without its seq (the key), plus its idempotency key.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Record {
    /// Unix nanoseconds.
    pub timestamp: u64,
    /// Namespace.
    pub namespace: String,
    /// Topic.
    pub topic: String,
    /// Payload.
    pub payload: Payload,
    /// Publisher id.
    pub publisher: String,
    /// Publisher counter.
    pub counter: u64,
}

impl Record {
    /// The envelope of this record at `seq`.
    pub fn into_envelope(self, seq: u64) -> Envelope {
        Envelope {
            seq,
            timestamp: self.timestamp,
            namespace: self.namespace,
            topic: self.topic,
            payload: self.payload,
        }
    }
}

/// One event to append with its idempotency key.
#[derive(Debug, Clone)]
pub struct Pending {
    /// Publisher id.
    pub publisher: std::sync::Arc<str>,
    /// Publisher counter.
    pub counter: u64,
    /// The event.
    pub event: NewEvent,
}

/// The log.
pub struct Log {
    db: Database,
    log: Keyspace,
    keys: Keyspace,
    meta: Keyspace,
    oldest: AtomicU64,
    last: AtomicU64,
    last_ts: AtomicU64,
    keys_from: AtomicU64,
    since_rotate: AtomicU64,
}

fn storage(e: fjall::Error) -> Error {
    Error::internal(format!("event log: {e}"))
}

fn key(seq: u64) -> [u8; 8] {
    seq.to_be_bytes()
}

/// Idempotency keys of consecutive events: `len` events from `publisher` with counters
/// `counter..` stored at seqs `seq..`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyRun {
    /// First seq.
    pub seq: u64,
    /// Publisher id.
    pub publisher: String,
    /// First counter.
    pub counter: u64,
    /// Events in the run (at least 1).
    pub len: u64,
}

impl KeyRun {
    /// The seq after the run's last.
    pub fn end(&self) -> u64 {
        self.seq.saturating_add(self.len)
    }

    /// The keys of the run at seqs `from..`, as (counter, seq).
    pub fn keys_from(&self, from: u64) -> impl Iterator<Item = (u64, u64)> + '_ {
        let skip = from.saturating_sub(self.seq).min(self.len);
        (skip..self.len).map(move |i| (self.counter.wrapping_add(i), self.seq + i))
    }
}

/// Appends the key (`publisher`, `counter`) at `seq` to `runs`, extending the last run when
/// it continues it.
fn push_key(runs: &mut Vec<KeyRun>, publisher: &str, counter: u64, seq: u64) {
    if let Some(r) = runs.last_mut() {
        if r.publisher == publisher && r.end() == seq && r.counter.wrapping_add(r.len) == counter {
            r.len += 1;
            return;
        }
    }
    runs.push(KeyRun { seq, publisher: publisher.to_owned(), counter, len: 1 });
}

fn decode_runs(seq: u64, bytes: &[u8]) -> Result<Vec<KeyRun>> {
    codec::decode(bytes).map_err(|e| {
        Error::new(berth_ipc::Code::DataLoss, format!("event log: idempotency keys at {seq}: {}", e.message))
    })
}

fn meta_seq(meta: &Keyspace, name: &[u8]) -> Result<Option<u64>> {
    meta.get(name).map_err(storage)?.map(|v| seq_of(&v)).transpose()
}

fn seq_of(bytes: &[u8]) -> Result<u64> {
    let arr: [u8; 8] =
        bytes.try_into().map_err(|_| Error::new(berth_ipc::Code::DataLoss, "event log: bad key"))?;
    Ok(u64::from_be_bytes(arr))
}

/// Unix nanoseconds now.
pub fn now_nanos() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

impl Log {
    /// Opens (or creates) the log in `dir`. `window` is how many idempotency keys the log
    /// keeps: a log written before "keys" existed has its newest `window` keys indexed once.
    pub fn open(dir: &Path, window: usize) -> Result<Log> {
        let db = Database::builder(dir).open().map_err(storage)?;
        // Memtables flushed at 4 MiB, and what the journal replay rebuilt flushed at once: a
        // restart replays at most that much instead of the log's whole unflushed history.
        let opts = || KeyspaceCreateOptions::default().max_memtable_size(4 << 20);
        let log = db.keyspace("log", opts).map_err(storage)?;
        let keys = db.keyspace("keys", opts).map_err(storage)?;
        let meta = db.keyspace("meta", opts).map_err(storage)?;
        // In the background: the flush is not on the restart's path (a process killed again
        // before it ends replays the same journal once more).
        for ks in [&log, &keys, &meta] {
            ks.rotate_memtable().map_err(storage)?;
        }
        let stored_last = meta_seq(&meta, LAST_SEQ)?.unwrap_or(0);
        let log_last = match log.last_key_value() {
            Some(last) => seq_of(&last.key().map_err(storage)?)?,
            None => 0,
        };
        let last = stored_last.max(log_last);
        // The oldest retained seq: from "meta" when a retention pass wrote it (the log's first
        // key would be found only past every tombstone retention left), else the first key.
        let oldest = match meta_seq(&meta, OLDEST)? {
            Some(oldest) => oldest,
            None => match log.first_key_value() {
                Some(first) => seq_of(&first.key().map_err(storage)?)?,
                None => last + 1,
            },
        };
        let keys_from = meta_seq(&meta, KEYS_FROM)?;
        let this = Log {
            db,
            log,
            keys,
            meta,
            oldest: AtomicU64::new(oldest.min(last + 1)),
            last: AtomicU64::new(last),
            last_ts: AtomicU64::new(0),
            keys_from: AtomicU64::new(keys_from.unwrap_or(last + 1)),
            since_rotate: AtomicU64::new(0),
        };
        if keys_from.is_none() {
            this.index_old_keys(window)?;
        }
        if let Some(r) = this.get(last)? {
            this.last_ts.store(r.timestamp, Ordering::Relaxed);
        }
        Ok(this)
    }

    /// Writes the keys of the newest `window` records into "keys", once, for a log written
    /// before "keys" existed (and marks "keys" as covering a fresh log).
    fn index_old_keys(&self, window: usize) -> Result<()> {
        let from = (self.last() + 1).saturating_sub(window as u64).max(self.oldest());
        let mut runs = Vec::new();
        for (seq, r) in self.read(from, self.last(), window)? {
            push_key(&mut runs, &r.publisher, r.counter, seq);
        }
        let mut batch = self.db.batch().durability(Some(PersistMode::SyncData));
        if let Some(first) = runs.first() {
            batch.insert(&self.keys, key(first.seq), codec::encode(&runs)?);
        }
        batch.insert(&self.meta, KEYS_FROM, key(from));
        batch.commit().map_err(storage)?;
        self.keys_from.store(from, Ordering::Release);
        Ok(())
    }

    /// Newest seq ever assigned (0 if none).
    pub fn last(&self) -> u64 {
        self.last.load(Ordering::Acquire)
    }

    /// Oldest retained seq; `last() + 1` when the log is empty.
    pub fn oldest(&self) -> u64 {
        self.oldest.load(Ordering::Acquire)
    }

    /// Events retained.
    pub fn count(&self) -> u64 {
        (self.last() + 1).saturating_sub(self.oldest())
    }

    /// Appends events in order and syncs; returns their envelopes (seqs `last+1..`).
    /// Single writer: the caller serializes appends.
    pub fn append(&self, events: Vec<Pending>) -> Result<Vec<Envelope>> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let first = self.last() + 1;
        let ts = now_nanos().max(self.last_ts.load(Ordering::Relaxed));
        let mut batch = self.db.batch().durability(Some(PersistMode::SyncData));
        let mut out = Vec::with_capacity(events.len());
        let mut bytes = 0;
        let mut runs = Vec::new();
        for (i, p) in events.into_iter().enumerate() {
            let seq = first + i as u64;
            push_key(&mut runs, &p.publisher, p.counter, seq);
            let record = Record {
                timestamp: ts,
                namespace: p.event.namespace,
                topic: p.event.topic,
                payload: p.event.payload,
                publisher: p.publisher.to_string(),
                counter: p.counter,
            };
            let value = codec::encode(&record)?;
            bytes += value.len() as u64 + 24;
            batch.insert(&self.log, key(seq), value);
            out.push(record.into_envelope(seq));
        }
        let runs = codec::encode(&runs)?;
        bytes += runs.len() as u64;
        batch.insert(&self.keys, key(first), runs);
        let last = first + out.len() as u64 - 1;
        batch.insert(&self.meta, LAST_SEQ, key(last));
        batch.commit().map_err(storage)?;
        self.last_ts.store(ts, Ordering::Relaxed);
        self.last.store(last, Ordering::Release);
        if self.since_rotate.fetch_add(bytes, Ordering::Relaxed) + bytes >= ROTATE_BYTES {
            self.since_rotate.store(0, Ordering::Relaxed);
            for ks in [&self.log, &self.keys, &self.meta] {
                ks.rotate_memtable().map_err(storage)?;
            }
        }
        Ok(out)
    }

    /// The record at `seq`, if retained.
    pub fn get(&self, seq: u64) -> Result<Option<Record>> {
        match self.log.get(key(seq)).map_err(storage)? {
            Some(v) => Ok(Some(decode(seq, &v)?)),
            None => Ok(None),
        }
    }

    /// Up to `max` records with seqs in `from..=to`, in order.
    pub fn read(&self, from: u64, to: u64, max: usize) -> Result<Vec<(u64, Record)>> {
        if from > to {
            return Ok(Vec::new());
        }
        let mut out = Vec::new();
        for guard in self.log.range(key(from)..=key(to)).take(max) {
            let (k, v) = guard.into_inner().map_err(storage)?;
            let seq = seq_of(&k)?;
            out.push((seq, decode(seq, &v)?));
        }
        Ok(out)
    }

    /// The first retained seq whose timestamp is at or after `t` (`last() + 1` if none).
    /// Timestamps never decrease along the log, so this is a binary search.
    pub fn seq_at_time(&self, t: u64) -> Result<u64> {
        let (mut lo, mut hi) = (self.oldest(), self.last() + 1);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            // A record missing here was just removed by retention: treat it as old.
            let ts = self.get(mid)?.map_or(0, |r| r.timestamp);
            if ts < t { lo = mid + 1 } else { hi = mid }
        }
        Ok(lo)
    }

    /// Removes events beyond `max_events` and older than `max_age_ns`; returns how many.
    pub fn enforce_retention(&self, max_events: u64, max_age_ns: u64) -> Result<u64> {
        let last = self.last();
        let by_count = (last + 1).saturating_sub(max_events);
        let by_age = self.seq_at_time(now_nanos().saturating_sub(max_age_ns))?;
        let keep_from = by_count.max(by_age).min(last + 1);
        let mut removed = 0;
        while self.oldest() < keep_from {
            let from = self.oldest();
            let to = keep_from.min(from + 10_000);
            let mut batch = self.db.batch();
            for seq in from..to {
                batch.remove(&self.log, key(seq));
            }
            batch.insert(&self.meta, OLDEST, key(to));
            batch.commit().map_err(storage)?;
            self.oldest.store(to, Ordering::Release);
            removed += to - from;
        }
        Ok(removed)
    }

    /// Forgets the idempotency keys of appends wholly older than the newest `window` seqs;
    /// returns how many appends' keys were removed.
    pub fn trim_keys(&self, window: usize) -> Result<u64> {
        let keep_from = (self.last() + 1).saturating_sub(window as u64);
        let from = self.keys_from.load(Ordering::Acquire);
        if from >= keep_from {
            return Ok(0);
        }
        let mut batch = self.db.batch();
        let (mut removed, mut new_from) = (0, keep_from);
        for guard in self.keys.range(key(from)..key(keep_from)) {
            let (k, v) = guard.into_inner().map_err(storage)?;
            let seq = seq_of(&k)?;
            let end = decode_runs(seq, &v)?.last().map_or(seq, KeyRun::end);
            if end > keep_from {
                // Straddles the window's start: kept whole, and the oldest entry from now on.
                new_from = seq;
                break;
            }
            batch.remove(&self.keys, k);
            removed += 1;
        }
        batch.insert(&self.meta, KEYS_FROM, key(new_from));
        batch.commit().map_err(storage)?;
        self.keys_from.store(new_from, Ordering::Release);
        Ok(removed)
    }

    /// The idempotency keys of the newest `n` events, as runs oldest first (the first may
    /// start before the newest `n`), whether or not retention has removed the events
    /// themselves. Reads "keys" only.
    pub fn recent_keys(&self, n: usize) -> Result<Vec<KeyRun>> {
        let last = self.last();
        let from = (last + 1).saturating_sub(n as u64).max(self.keys_from.load(Ordering::Acquire));
        let mut out = Vec::new();
        if from > last {
            return Ok(out);
        }
        // The entry holding `from` starts at or before it.
        let start = match self.keys.range(..=key(from)).next_back() {
            Some(g) => seq_of(&g.key().map_err(storage)?)?,
            None => from,
        };
        for guard in self.keys.range(key(start)..=key(last)) {
            let (k, v) = guard.into_inner().map_err(storage)?;
            let seq = seq_of(&k)?;
            out.extend(decode_runs(seq, &v)?.into_iter().filter(|r| r.end() > from));
        }
        Ok(out)
    }
}

fn decode(seq: u64, bytes: &[u8]) -> Result<Record> {
    codec::decode(bytes)
        .map_err(|e| Error::new(berth_ipc::Code::DataLoss, format!("event {seq}: {}", e.message)))
}

#[cfg(test)]
#[path = "store_tests.rs"]
mod tests;
