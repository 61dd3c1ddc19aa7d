//! The durable event log in `<root>/events` (fjall), without sockets or tasks.
//!
//! ```text
//! keyspace "log":  seq (u64 big-endian) -> Record { timestamp, namespace, topic, payload,
//!                                                    publisher, counter }
//! keyspace "meta": "last_seq"           -> u64 big-endian, written with every append
//! ```
//!
//! Seqs are contiguous from 1. The newest seq is also kept in `meta`, in the same atomic
//! batch as the events, so that a log emptied by retention still never hands out a seq
//! twice. An append returns only after the journal is synced (`fdatasync`). Retention
//! removes a prefix of the log, so the retained range is always `oldest..=last`.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use berth_ipc::codec;
use berth_ipc::events::{Envelope, NewEvent, Payload};
use berth_ipc::{Error, Result};
use fjall::{Database, Keyspace, KeyspaceCreateOptions, PersistMode};
use serde::{Deserialize, Serialize};

const LAST_SEQ: &[u8] = b"last_seq";

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
    meta: Keyspace,
    oldest: AtomicU64,
    last: AtomicU64,
    last_ts: AtomicU64,
}

fn storage(e: fjall::Error) -> Error {
    Error::internal(format!("event log: {e}"))
}

fn key(seq: u64) -> [u8; 8] {
    seq.to_be_bytes()
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
    /// Opens (or creates) the log in `dir`.
    pub fn open(dir: &Path) -> Result<Log> {
        let db = Database::builder(dir).open().map_err(storage)?;
        // Memtables flushed at 4 MiB, and what the journal replay rebuilt flushed at once: a
        // restart replays at most that much instead of the log's whole unflushed history.
        let opts = || KeyspaceCreateOptions::default().max_memtable_size(4 << 20);
        let log = db.keyspace("log", opts).map_err(storage)?;
        let meta = db.keyspace("meta", opts).map_err(storage)?;
        // In the background: the flush is not on the restart's path (a process killed again
        // before it ends replays the same journal once more).
        for ks in [&log, &meta] {
            ks.rotate_memtable().map_err(storage)?;
        }
        let stored_last = match meta.get(LAST_SEQ).map_err(storage)? {
            Some(v) => seq_of(&v)?,
            None => 0,
        };
        let (oldest, log_last) = match (log.first_key_value(), log.last_key_value()) {
            (Some(first), Some(last)) => {
                (seq_of(&first.key().map_err(storage)?)?, seq_of(&last.key().map_err(storage)?)?)
            }
            _ => (0, 0),
        };
        let last = stored_last.max(log_last);
        let this = Log {
            db,
            log,
            meta,
            oldest: AtomicU64::new(if oldest == 0 { last + 1 } else { oldest }),
            last: AtomicU64::new(last),
            last_ts: AtomicU64::new(0),
        };
        if let Some(r) = this.get(last)? {
            this.last_ts.store(r.timestamp, Ordering::Relaxed);
        }
        Ok(this)
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
        for (i, p) in events.into_iter().enumerate() {
            let seq = first + i as u64;
            let record = Record {
                timestamp: ts,
                namespace: p.event.namespace,
                topic: p.event.topic,
                payload: p.event.payload,
                publisher: p.publisher.to_string(),
                counter: p.counter,
            };
            batch.insert(&self.log, key(seq), codec::encode(&record)?);
            out.push(record.into_envelope(seq));
        }
        let last = first + out.len() as u64 - 1;
        batch.insert(&self.meta, LAST_SEQ, key(last));
        batch.commit().map_err(storage)?;
        self.last_ts.store(ts, Ordering::Relaxed);
        self.last.store(last, Ordering::Release);
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
            batch.commit().map_err(storage)?;
            self.oldest.store(to, Ordering::Release);
            removed += to - from;
        }
        Ok(removed)
    }

    /// The idempotency keys of the newest `n` events, oldest first.
    pub fn recent_keys(&self, n: usize) -> Result<Vec<(String, u64, u64)>> {
        let mut out = Vec::new();
        for guard in self.log.iter().rev().take(n) {
            let (k, v) = guard.into_inner().map_err(storage)?;
            let seq = seq_of(&k)?;
            let r = decode(seq, &v)?;
            out.push((r.publisher, r.counter, seq));
        }
        out.reverse();
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
