//! The durable event log in `<root>/events/segments`, without sockets or tasks.
//!
//! ```text
//! 00000000000000000001.log   records 1.. (framed, see `segment`), appended and synced
//! 00000000000000000001.idx   where each record of a sealed segment starts
//! 00000000000000052391.log   the next segment, begun once the previous passed 8 MiB
//! oldest                     the oldest retained seq, written by retention (temp + rename)
//! ```
//!
//! Seqs are contiguous from 1 and never reused: the newest is the last record's, and a
//! segment is removed only when a newer one exists, so even a log emptied by retention still
//! knows it. An append writes all its records with one `pwrite` and one `fdatasync`, and
//! returns only after both. Retention moves `oldest` forward and removes whole segments
//! below it (never one holding a key of the idempotency window), so the retained range is
//! always `oldest..=last`.
//!
//! A restart reads the index files of the sealed segments (4 bytes a record) and scans only
//! the last segment (at most about 8 MiB), cutting off a torn tail; the idempotency window is
//! rebuilt from frame heads. What a restart costs is thus bounded by the segment size and the
//! window, whatever the log's length. (Before this log, events lived in fjall, whose journal
//! replay after a crash, up to 64 MB of journal, grew with the writes since its last
//! rotation; a log found there is moved into segments once, see `legacy`.)

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use berth_ipc::codec;
use berth_ipc::events::{Envelope, NewEvent, Payload};
use berth_ipc::sync::{read, write};
use berth_ipc::{Code, Error, Result};
use serde::{Deserialize, Serialize};

use crate::segment::{self, Head, Segment, io};

/// A segment takes no more appends once it holds this many bytes.
pub const SEGMENT_BYTES: u64 = 8 << 20;

/// An event as stored: the envelope without its seq, plus its idempotency key.
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

/// A record's payload part, after its frame head.
#[derive(Deserialize)]
struct Body {
    namespace: String,
    topic: String,
    payload: Payload,
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
    if let Some(r) = runs.last_mut()
        && r.publisher == publisher
        && r.end() == seq
        && r.counter.wrapping_add(r.len) == counter
    {
        r.len += 1;
        return;
    }
    runs.push(KeyRun { seq, publisher: publisher.to_owned(), counter, len: 1 });
}

/// The log.
pub struct Log {
    dir: PathBuf,
    window: u64,
    segment_bytes: u64,
    segments: RwLock<Vec<Segment>>,
    oldest: AtomicU64,
    last: AtomicU64,
    last_ts: AtomicU64,
}

/// Unix nanoseconds now.
pub fn now_nanos() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// The first seqs of the segments in `dir`, ascending; leftover temp files are removed.
fn list(dir: &Path) -> Result<Vec<u64>> {
    let mut firsts = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| io("list", dir, e))? {
        let entry = entry.map_err(|e| io("list", dir, e))?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.ends_with(".tmp") {
            let _ = std::fs::remove_file(entry.path());
        } else if let Some(stem) = name.strip_suffix(".log") {
            match stem.parse() {
                Ok(first) if stem.len() == 20 => firsts.push(first),
                _ => {
                    tracing::warn!(file = %entry.path().display(), "not a segment of the event log; ignored")
                }
            }
        }
    }
    firsts.sort_unstable();
    Ok(firsts)
}

fn read_oldest(dir: &Path) -> Result<Option<u64>> {
    let path = dir.join("oldest");
    match std::fs::read_to_string(&path) {
        Ok(s) => s.trim().parse().map(Some).map_err(|_| {
            Error::new(Code::DataLoss, format!("event log: {}: not a seq: {:?}", path.display(), s.trim()))
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io("read", &path, e)),
    }
}

/// Writes `oldest` through a temp file, a rename and a directory sync.
pub(crate) fn write_oldest(dir: &Path, oldest: u64) -> Result<()> {
    use std::io::Write;
    let path = dir.join("oldest");
    let tmp = dir.join("oldest.tmp");
    let mut f = std::fs::File::create(&tmp).map_err(|e| io("create", &tmp, e))?;
    f.write_all(format!("{oldest}\n").as_bytes()).map_err(|e| io("write", &tmp, e))?;
    f.sync_data().map_err(|e| io("sync", &tmp, e))?;
    std::fs::rename(&tmp, &path).map_err(|e| io("rename", &tmp, e))?;
    segment::sync_dir(dir)
}

/// The record of a parsed frame.
fn record(head: &Head<'_>, payload: &[u8]) -> Result<Record> {
    let body: Body = codec::decode(payload)
        .map_err(|e| Error::new(Code::DataLoss, format!("event {}: {}", head.seq, e.message)))?;
    Ok(Record {
        timestamp: head.timestamp,
        namespace: body.namespace,
        topic: body.topic,
        payload: body.payload,
        publisher: head.publisher.to_owned(),
        counter: head.counter,
    })
}

/// A stretch of one segment's file to read: whole records from byte `start` to `end`.
struct Span {
    file: Arc<std::fs::File>,
    start: u64,
    end: u64,
}

impl Log {
    /// Opens (or creates) the log in `dir` (the service's data dir). `window` is the
    /// idempotency window: retention never removes a segment holding one of its keys.
    pub fn open(dir: &Path, window: usize) -> Result<Log> {
        Log::open_sized(dir, window, SEGMENT_BYTES)
    }

    /// [`Log::open`] with segments sealed past `segment_bytes` (tests roll small ones).
    pub fn open_sized(dir: &Path, window: usize, segment_bytes: u64) -> Result<Log> {
        let seg_dir = dir.join("segments");
        std::fs::create_dir_all(&seg_dir).map_err(|e| io("create", &seg_dir, e))?;
        crate::legacy::migrate(dir, &seg_dir)?;
        let firsts = list(&seg_dir)?;
        let mut segments: Vec<Segment> = Vec::with_capacity(firsts.len());
        for (i, first) in firsts.iter().enumerate() {
            let seg = Segment::open(&seg_dir, *first, i + 1 == firsts.len())?;
            if let Some(prev) = segments.last()
                && prev.end() != seg.first
            {
                return Err(Error::new(
                    Code::DataLoss,
                    format!("event log: segment {} follows one ending at seq {}", seg.first, prev.end() - 1),
                ));
            }
            segments.push(seg);
        }
        let last = segments.last().map_or(0, |s| s.end() - 1);
        let first_kept = segments.first().map_or(last + 1, |s| s.first);
        let oldest = read_oldest(&seg_dir)?.unwrap_or(0).max(first_kept).min(last + 1);
        let this = Log {
            dir: seg_dir,
            window: window as u64,
            segment_bytes,
            segments: RwLock::new(segments),
            oldest: AtomicU64::new(oldest),
            last: AtomicU64::new(last),
            last_ts: AtomicU64::new(0),
        };
        if let Some((_, r)) = this.read_raw(last, last, 1)?.into_iter().next() {
            this.last_ts.store(r.timestamp, Ordering::Relaxed);
        }
        Ok(this)
    }

    fn segs(&self) -> RwLockReadGuard<'_, Vec<Segment>> {
        read(&self.segments)
    }

    fn segs_mut(&self) -> RwLockWriteGuard<'_, Vec<Segment>> {
        write(&self.segments)
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

    /// Segment files on disk.
    pub fn segment_count(&self) -> usize {
        self.segs().len()
    }

    /// Appends events in order and syncs; returns their envelopes (seqs `last+1..`).
    /// Single writer: the caller serializes appends.
    pub fn append(&self, events: Vec<Pending>) -> Result<Vec<Envelope>> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let first = self.last() + 1;
        let ts = now_nanos().max(self.last_ts.load(Ordering::Relaxed));
        let mut frames = Vec::with_capacity(events.len() * 160);
        let mut rel = Vec::with_capacity(events.len());
        let mut out = Vec::with_capacity(events.len());
        for (i, p) in events.into_iter().enumerate() {
            let seq = first + i as u64;
            rel.push(
                u32::try_from(frames.len()).map_err(|_| Error::invalid("event log: append over 4 GiB"))?,
            );
            let body = codec::encode(&(&p.event.namespace, &p.event.topic, &p.event.payload))?;
            let head = Head { seq, timestamp: ts, counter: p.counter, publisher: &p.publisher };
            segment::encode_frame(&mut frames, &head, &body)?;
            out.push(Envelope {
                seq,
                timestamp: ts,
                namespace: p.event.namespace,
                topic: p.event.topic,
                payload: p.event.payload,
            });
        }
        self.roll_if_full(first)?;
        // The write and the sync run without the lock (readers go on); only this thread
        // appends, so the active segment and its length cannot change meanwhile.
        let (file, base, seg_first) = {
            let segs = self.segs();
            let active = segs.last().ok_or_else(|| Error::internal("event log: no segment"))?;
            (active.file.clone(), active.len, active.first)
        };
        let path = segment::paths(&self.dir, seg_first).0;
        let written = {
            use std::os::unix::fs::FileExt;
            file.write_all_at(&frames, base).and_then(|()| file.sync_data())
        };
        if let Err(e) = written {
            let _ = file.set_len(base);
            return Err(io("append to", &path, e));
        }
        {
            let mut segs = self.segs_mut();
            let active = segs.last_mut().ok_or_else(|| Error::internal("event log: no segment"))?;
            for r in &rel {
                let at = u32::try_from(base + u64::from(*r))
                    .map_err(|_| Error::internal(format!("event log: {} over 4 GiB", path.display())))?;
                active.offsets.push(at);
            }
            active.len = base + frames.len() as u64;
        }
        self.last_ts.store(ts, Ordering::Relaxed);
        self.last.store(first + out.len() as u64 - 1, Ordering::Release);
        Ok(out)
    }

    /// Seals the active segment when it is full and begins the next at `first` (also the
    /// first segment of an empty log).
    fn roll_if_full(&self, first: u64) -> Result<()> {
        let full = match self.segs().last() {
            None => true,
            Some(s) => s.len >= self.segment_bytes && !s.offsets.is_empty(),
        };
        if !full {
            return Ok(());
        }
        let next = Segment::create(&self.dir, first)?;
        let mut segs = self.segs_mut();
        if let Some(active) = segs.last() {
            active.write_index(&self.dir)?;
        }
        segs.push(next);
        Ok(())
    }

    /// The spans holding records `from..=to` (at most `max`), in order.
    fn spans(&self, from: u64, to: u64, max: usize) -> Vec<Span> {
        let segs = self.segs();
        let mut out = Vec::new();
        let mut next = from;
        let mut left = max as u64;
        let i = segs.partition_point(|s| s.end() <= next);
        for seg in &segs[i..] {
            if next > to || left == 0 || seg.first > next {
                break;
            }
            let upto = to.min(seg.end() - 1).min(next.saturating_add(left - 1));
            let (start, _) = seg.span(next);
            let (_, end) = seg.span(upto);
            out.push(Span { file: seg.file.clone(), start, end });
            left -= upto - next + 1;
            next = upto + 1;
        }
        out
    }

    /// Parses the frames of `spans`, handing each head and payload to `each`.
    fn scan(&self, spans: Vec<Span>, mut each: impl FnMut(&Head<'_>, &[u8]) -> Result<()>) -> Result<()> {
        use std::os::unix::fs::FileExt;
        let mut buf = Vec::new();
        for span in spans {
            let len =
                usize::try_from(span.end - span.start).map_err(|_| Error::internal("event log: span"))?;
            buf.resize(len, 0);
            span.file.read_exact_at(&mut buf, span.start).map_err(|e| io("read", &self.dir, e))?;
            let mut at = 0;
            while at < len {
                let Some((head, payload, n)) = segment::parse_frame(&buf[at..]) else {
                    return Err(Error::new(
                        Code::DataLoss,
                        format!("event log: bad record in {}", self.dir.display()),
                    ));
                };
                each(&head, payload)?;
                at += n;
            }
        }
        Ok(())
    }

    fn read_raw(&self, from: u64, to: u64, max: usize) -> Result<Vec<(u64, Record)>> {
        let mut out = Vec::new();
        if from > to || max == 0 {
            return Ok(out);
        }
        self.scan(self.spans(from, to, max), |head, payload| {
            out.push((head.seq, record(head, payload)?));
            Ok(())
        })?;
        Ok(out)
    }

    /// The record at `seq`, if retained.
    pub fn get(&self, seq: u64) -> Result<Option<Record>> {
        Ok(self.read(seq, seq, 1)?.into_iter().next().map(|(_, r)| r))
    }

    /// Up to `max` records with seqs in `from..=to`, in order.
    pub fn read(&self, from: u64, to: u64, max: usize) -> Result<Vec<(u64, Record)>> {
        self.read_raw(from.max(self.oldest()), to.min(self.last()), max)
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
        let oldest = self.oldest();
        if keep_from <= oldest {
            return Ok(0);
        }
        write_oldest(&self.dir, keep_from)?;
        self.oldest.store(keep_from, Ordering::Release);
        // Whole segments below both the retained range and the idempotency window go; the
        // newest segment always stays (it holds the newest seq).
        let drop_below = keep_from.min((last + 1).saturating_sub(self.window));
        let gone: Vec<u64> = {
            let mut segs = self.segs_mut();
            let n =
                segs.iter().take(segs.len().saturating_sub(1)).take_while(|s| s.end() <= drop_below).count();
            segs.drain(..n).map(|s| s.first).collect()
        };
        for first in &gone {
            let (log, idx) = segment::paths(&self.dir, *first);
            for p in [idx, log] {
                if let Err(e) = std::fs::remove_file(&p) {
                    tracing::warn!(file = %p.display(), error = %e, "removing an event log segment");
                }
            }
        }
        if !gone.is_empty() {
            segment::sync_dir(&self.dir)?;
        }
        Ok(keep_from - oldest)
    }

    /// The idempotency keys of the newest `n` events, as runs oldest first (the first may
    /// start before the newest `n`), whether or not retention has removed the events
    /// themselves. Reads frame heads only.
    pub fn recent_keys(&self, n: usize) -> Result<Vec<KeyRun>> {
        let last = self.last();
        let first_kept = self.segs().first().map_or(last + 1, |s| s.first);
        let from = (last + 1).saturating_sub(n as u64).max(first_kept);
        let mut runs = Vec::new();
        if from > last {
            return Ok(runs);
        }
        self.scan(self.spans(from, last, usize::MAX), |head, _| {
            push_key(&mut runs, head.publisher, head.counter, head.seq);
            Ok(())
        })?;
        Ok(runs)
    }
}

#[cfg(test)]
#[path = "store_tests.rs"]
mod tests;
