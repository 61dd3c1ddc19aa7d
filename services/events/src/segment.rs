//! One segment of the event log: a file of framed records with consecutive seqs, and the
//! offset of each record, kept in memory and, once the segment is sealed, in an index file.
//!
//! ```text
//! <first seq, 20 digits>.log   frame*   frame = u32 LE body length | u32 LE crc32 of body | body
//!                                       body  = u64 LE seq | u64 LE timestamp | u64 LE counter
//!                                               | u16 LE publisher length | publisher
//!                                               | bincode (namespace, topic, payload)
//! <first seq, 20 digits>.idx   u32 LE offset of each record, written when the segment is sealed
//! ```
//!
//! The idempotency key (publisher, counter) sits before the payload, so the window of keys
//! is rebuilt by reading frame heads, without decoding a payload.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use berth_ipc::{Code, Error, Result};

/// Bytes of a frame's length and checksum.
pub const FRAME_HEAD: usize = 8;
/// Bytes of a body before the publisher.
const BODY_HEAD: usize = 26;
/// Largest body accepted when reading (a longer length field is corruption).
pub const MAX_BODY: usize = 64 << 20;

/// What a frame's body holds before the payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head<'a> {
    /// Seq.
    pub seq: u64,
    /// Unix nanoseconds.
    pub timestamp: u64,
    /// Publisher counter.
    pub counter: u64,
    /// Publisher id.
    pub publisher: &'a str,
}

/// Appends one frame to `out`.
pub fn encode_frame(out: &mut Vec<u8>, head: &Head<'_>, payload: &[u8]) -> Result<()> {
    let publisher_len = u16::try_from(head.publisher.len())
        .map_err(|_| Error::invalid(format!("event log: publisher id of {} bytes", head.publisher.len())))?;
    let body_len = BODY_HEAD + head.publisher.len() + payload.len();
    let body_len32 = u32::try_from(body_len)
        .map_err(|_| Error::invalid(format!("event log: event of {body_len} bytes")))?;
    let start = out.len();
    out.extend_from_slice(&body_len32.to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&head.seq.to_le_bytes());
    out.extend_from_slice(&head.timestamp.to_le_bytes());
    out.extend_from_slice(&head.counter.to_le_bytes());
    out.extend_from_slice(&publisher_len.to_le_bytes());
    out.extend_from_slice(head.publisher.as_bytes());
    out.extend_from_slice(payload);
    let crc = crc32fast::hash(&out[start + FRAME_HEAD..]);
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
    Ok(())
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut a = [0; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

/// Splits the frame at the start of `buf`: its head and payload, and its whole length.
/// `None` when `buf` holds no whole, intact frame (a torn tail, or corruption).
pub fn parse_frame(buf: &[u8]) -> Option<(Head<'_>, &[u8], usize)> {
    let len = u32::from_le_bytes(buf.get(0..4)?.try_into().ok()?) as usize;
    let crc = u32::from_le_bytes(buf.get(4..8)?.try_into().ok()?);
    if !(BODY_HEAD..=MAX_BODY).contains(&len) {
        return None;
    }
    let body = buf.get(FRAME_HEAD..FRAME_HEAD + len)?;
    if crc32fast::hash(body) != crc {
        return None;
    }
    let publisher_len = u16::from_le_bytes([body[24], body[25]]) as usize;
    let publisher = std::str::from_utf8(body.get(BODY_HEAD..BODY_HEAD + publisher_len)?).ok()?;
    let head =
        Head { seq: u64_at(body, 0), timestamp: u64_at(body, 8), counter: u64_at(body, 16), publisher };
    Some((head, &body[BODY_HEAD + publisher_len..], FRAME_HEAD + len))
}

/// A segment: its file and where each of its records starts.
pub struct Segment {
    /// Seq of its first record (also in its name).
    pub first: u64,
    /// The file, opened for reading and appending.
    pub file: Arc<File>,
    /// Offset of each record; record `first + i` starts at `offsets[i]`.
    pub offsets: Vec<u32>,
    /// Bytes of whole records (the file is never longer once opened).
    pub len: u64,
}

/// The file names of the segment starting at `first`.
pub fn paths(dir: &Path, first: u64) -> (PathBuf, PathBuf) {
    (dir.join(format!("{first:020}.log")), dir.join(format!("{first:020}.idx")))
}

/// A failed file operation on the event log (`event log: what path: cause`).
pub(crate) fn io(what: &str, path: &Path, e: std::io::Error) -> Error {
    Error::io_at(format_args!("event log: {what}"), path, e)
}

fn data_loss(path: &Path, msg: String) -> Error {
    Error::new(Code::DataLoss, format!("event log: {}: {msg}", path.display()))
}

impl Segment {
    /// The seq after its last record.
    pub fn end(&self) -> u64 {
        self.first + self.offsets.len() as u64
    }

    /// Byte range of record `seq` (which must be in the segment).
    pub fn span(&self, seq: u64) -> (u64, u64) {
        let i = (seq - self.first) as usize;
        let start = u64::from(self.offsets[i]);
        let end = self.offsets.get(i + 1).map_or(self.len, |o| u64::from(*o));
        (start, end)
    }

    /// Creates an empty segment starting at `first` (and syncs `dir`, so it survives).
    pub fn create(dir: &Path, first: u64) -> Result<Segment> {
        let (log, _) = paths(dir, first);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&log)
            .map_err(|e| io("create", &log, e))?;
        sync_dir(dir)?;
        Ok(Segment { first, file: Arc::new(file), offsets: Vec::new(), len: 0 })
    }

    /// Opens the segment starting at `first`. A sealed segment (`last` false) is read from
    /// its index file, or scanned and indexed when that is missing or wrong; the last one is
    /// scanned, and a torn tail (a frame a crash cut short) is cut off: it was never
    /// acknowledged, since an append answers only after the sync.
    pub fn open(dir: &Path, first: u64, last: bool) -> Result<Segment> {
        let (log, idx) = paths(dir, first);
        let file = OpenOptions::new().read(true).write(true).open(&log).map_err(|e| io("open", &log, e))?;
        let size = file.metadata().map_err(|e| io("stat", &log, e))?.len();
        let mut seg = Segment { first, file: Arc::new(file), offsets: Vec::new(), len: 0 };
        if !last && seg.load_index(&idx, size)? {
            return Ok(seg);
        }
        seg.scan(&log, size)?;
        if seg.len < size {
            if !last {
                return Err(data_loss(&log, format!("bad frame at byte {} of a sealed segment", seg.len)));
            }
            tracing::warn!(segment = %log.display(), at = seg.len, size, "cutting a torn tail off the event log");
            seg.file.set_len(seg.len).map_err(|e| io("truncate", &log, e))?;
            seg.file.sync_data().map_err(|e| io("sync", &log, e))?;
        }
        if !last {
            seg.write_index(dir)?;
        }
        Ok(seg)
    }

    /// Reads the index file; false when it is missing or does not fit the segment.
    fn load_index(&mut self, idx: &Path, size: u64) -> Result<bool> {
        let bytes = match std::fs::read(idx) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(io("read", idx, e)),
        };
        if bytes.len() % 4 != 0 {
            return Ok(false);
        }
        let offsets: Vec<u32> =
            bytes.chunks_exact(4).map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
        let ascending = offsets.windows(2).all(|w| w[0] < w[1]);
        if offsets.first() != Some(&0) || !ascending || offsets.last().is_some_and(|o| u64::from(*o) >= size)
        {
            return Ok(false);
        }
        self.offsets = offsets;
        self.len = size;
        Ok(true)
    }

    /// Reads the whole file, recording each intact frame until the first that is not.
    fn scan(&mut self, log: &Path, size: u64) -> Result<()> {
        let mut buf = vec![0; usize::try_from(size).map_err(|_| data_loss(log, "too large".into()))?];
        self.file.read_exact_at(&mut buf, 0).map_err(|e| io("read", log, e))?;
        let mut at = 0;
        while let Some((head, _, n)) = parse_frame(&buf[at..]) {
            let expected = self.end();
            if head.seq != expected {
                return Err(data_loss(
                    log,
                    format!("record at byte {at} has seq {}, not {expected}", head.seq),
                ));
            }
            self.offsets.push(u32::try_from(at).map_err(|_| data_loss(log, "over 4 GiB".into()))?);
            at += n;
        }
        self.len = at as u64;
        Ok(())
    }

    /// Writes the index file (through a temp file and a rename): the segment is sealed.
    pub fn write_index(&self, dir: &Path) -> Result<()> {
        let (_, idx) = paths(dir, self.first);
        let tmp = idx.with_extension("idx.tmp");
        let mut bytes = Vec::with_capacity(self.offsets.len() * 4);
        for o in &self.offsets {
            bytes.extend_from_slice(&o.to_le_bytes());
        }
        let mut f = File::create(&tmp).map_err(|e| io("create", &tmp, e))?;
        f.write_all(&bytes).map_err(|e| io("write", &tmp, e))?;
        f.sync_data().map_err(|e| io("sync", &tmp, e))?;
        std::fs::rename(&tmp, &idx).map_err(|e| io("rename", &tmp, e))?;
        Ok(())
    }
}

impl Segment {
    /// Appends one whole frame without syncing (for bulk copies that sync once at the end).
    pub fn push(&mut self, frame: &[u8]) -> Result<()> {
        let at = u32::try_from(self.len).map_err(|_| Error::internal("event log: segment over 4 GiB"))?;
        self.file
            .write_all_at(frame, self.len)
            .map_err(|e| Error::io(format_args!("event log: append to segment {}", self.first), e))?;
        self.offsets.push(at);
        self.len += frame.len() as u64;
        Ok(())
    }
}

/// Syncs a directory, so that files created or removed in it survive a power cut.
pub fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(|e| io("sync", dir, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_damage_is_seen() {
        let head = Head { seq: 7, timestamp: 9, counter: 3, publisher: "runtime-1" };
        let mut buf = Vec::new();
        encode_frame(&mut buf, &head, b"payload").expect("encode");
        let (got, payload, n) = parse_frame(&buf).expect("parse");
        assert_eq!((got, payload, n), (head, &b"payload"[..], buf.len()));
        assert!(parse_frame(&buf[..buf.len() - 1]).is_none(), "torn");
        let mut bad = buf.clone();
        *bad.last_mut().expect("byte") ^= 1;
        assert!(parse_frame(&bad).is_none(), "checksum");
        let mut huge = buf;
        huge[0..4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(parse_frame(&huge).is_none(), "length past the cap");
    }
}
