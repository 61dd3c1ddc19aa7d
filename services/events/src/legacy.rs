//! The event log as berth kept it before segments: a fjall database in the service's data
//! dir (keyspace "log": seq big-endian -> bincode `Record`; "meta": "last_seq"). Found at
//! start, it is copied into segments once, then removed. A crash during the copy leaves the
//! database in place, and the next start copies it again from scratch.

use std::path::Path;

use berth_ipc::codec;
use berth_ipc::{Code, Error, Result};
use fjall::{Database, KeyspaceCreateOptions};

use crate::segment::{self, Head, Segment};
use crate::store::{Record, SEGMENT_BYTES, write_oldest};

fn storage(e: fjall::Error) -> Error {
    Error::internal_cause("event log (fjall, before segments)", e)
}

fn seq_of(bytes: &[u8]) -> Result<u64> {
    let arr: [u8; 8] = bytes.try_into().map_err(|_| Error::new(Code::DataLoss, "event log: bad key"))?;
    Ok(u64::from_be_bytes(arr))
}

/// Moves a fjall event log in `dir`, if there is one, into segments in `seg_dir`.
pub fn migrate(dir: &Path, seg_dir: &Path) -> Result<()> {
    if !dir.join("keyspaces").is_dir() {
        return Ok(());
    }
    tracing::info!(dir = %dir.display(), "moving the event log from fjall into segments");
    // What an interrupted copy left.
    for entry in std::fs::read_dir(seg_dir).map_err(|e| Error::io_at("list", seg_dir, e))? {
        let entry = entry.map_err(|e| Error::io_at("list", seg_dir, e))?;
        let _ = std::fs::remove_file(entry.path());
    }
    let (oldest, last) = copy(dir, seg_dir)?;
    write_oldest(seg_dir, oldest)?;
    segment::sync_dir(seg_dir)?;
    let keyspaces = dir.join("keyspaces");
    std::fs::remove_dir_all(&keyspaces).map_err(|e| Error::io_at("remove", &keyspaces, e))?;
    for entry in std::fs::read_dir(dir).map_err(|e| Error::io_at("list", dir, e))? {
        let entry = entry.map_err(|e| Error::io_at("list", dir, e))?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.ends_with(".jnl") || name == "lock" || name == "version" {
            let _ = std::fs::remove_file(entry.path());
        }
    }
    segment::sync_dir(dir)?;
    tracing::info!(oldest, last, "event log moved into segments");
    Ok(())
}

/// Copies every retained record; returns (oldest, last).
fn copy(dir: &Path, seg_dir: &Path) -> Result<(u64, u64)> {
    let db = Database::builder(dir).open().map_err(storage)?;
    let log = db.keyspace("log", KeyspaceCreateOptions::default).map_err(storage)?;
    let meta = db.keyspace("meta", KeyspaceCreateOptions::default).map_err(storage)?;
    let stored_last = match meta.get(b"last_seq").map_err(storage)? {
        Some(v) => seq_of(&v)?,
        None => 0,
    };
    let mut seg: Option<Segment> = None;
    let mut frames = Vec::new();
    let (mut oldest, mut last) = (0, 0);
    for guard in log.iter() {
        let (k, v) = guard.into_inner().map_err(storage)?;
        let seq = seq_of(&k)?;
        let r: Record = codec::decode(&v)
            .map_err(|e| Error::new(Code::DataLoss, format!("event {seq}: {}", e.message)))?;
        if oldest == 0 {
            oldest = seq;
        }
        if last != 0 && seq != last + 1 {
            return Err(Error::new(Code::DataLoss, format!("event log: seq {seq} follows {last}")));
        }
        last = seq;
        let s = match &mut seg {
            Some(s) if s.len < SEGMENT_BYTES => s,
            _ => {
                if let Some(full) = seg.take() {
                    full.write_index(seg_dir)?;
                }
                seg.insert(Segment::create(seg_dir, seq)?)
            }
        };
        frames.clear();
        let body = codec::encode(&(&r.namespace, &r.topic, &r.payload))?;
        let head = Head { seq, timestamp: r.timestamp, counter: r.counter, publisher: &r.publisher };
        segment::encode_frame(&mut frames, &head, &body)?;
        s.push(&frames)?;
    }
    let last = last.max(stored_last);
    match seg {
        Some(s) => s.file.sync_data().map_err(|e| Error::internal_cause("event log: sync", e))?,
        // An empty log still continues its seqs: an empty segment starts after the last.
        None => drop(Segment::create(seg_dir, last + 1)?),
    }
    Ok((if oldest == 0 { last + 1 } else { oldest }, last))
}
