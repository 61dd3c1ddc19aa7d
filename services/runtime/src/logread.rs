//! Reading a process's output log ([`crate::logfile`]) old to new, through open files, so
//! that a rotation while reading loses nothing that is still kept.

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::MetadataExt;

use crate::logfile::{LogPaths, Record, parse};

/// At most this much is read from a file at once.
const READ_CHUNK: usize = 64 << 10;

/// A reader of one process's log files that follows them as they grow and rotate.
pub struct Follower {
    paths: LogPaths,
    file: Option<(File, u64)>,
    /// A record line not yet whole.
    carry: Vec<u8>,
    /// A newer file was seen at the end of this one: it is read to its end once more
    /// (what the writer put in before moving on), then left.
    last_pass: bool,
    buf: Vec<u8>,
}

impl Follower {
    /// A reader from the oldest record kept.
    pub fn new(paths: LogPaths) -> Follower {
        Follower { paths, file: None, carry: Vec::new(), last_pass: false, buf: vec![0u8; READ_CHUNK] }
    }

    /// Whether any log file of the process exists.
    pub fn exists(&self) -> bool {
        !self.paths.existing().is_empty()
    }

    /// The records written since the last call (a bounded batch; empty: none now).
    pub fn read(&mut self) -> Vec<Record> {
        loop {
            if self.file.is_none() && !self.open_next() {
                return Vec::new();
            }
            let Some((file, _)) = self.file.as_mut() else { return Vec::new() };
            let n = match file.read(&mut self.buf) {
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => 0,
            };
            if n > 0 {
                let records = self.records(n);
                if !records.is_empty() {
                    return records;
                }
                continue;
            }
            // The end of this file: go on with the next newer one, if it was rotated (or
            // renamed away and reopened), once what was written here before is all read.
            if !self.last_pass && self.next_exists() {
                self.last_pass = true;
                continue;
            }
            if !self.open_next() {
                return Vec::new();
            }
        }
    }

    fn records(&mut self, n: usize) -> Vec<Record> {
        self.carry.extend_from_slice(&self.buf[..n]);
        let Some(end) = self.carry.iter().rposition(|b| *b == b'\n') else { return Vec::new() };
        let records = self.carry[..end].split(|b| *b == b'\n').filter_map(parse).collect();
        self.carry.drain(..=end);
        records
    }

    /// Whether a file newer than the one being read exists.
    fn next_exists(&self) -> bool {
        let Some((_, ino)) = &self.file else { return false };
        let files = self.paths.existing();
        let inode = |p: &std::path::Path| std::fs::metadata(p).map(|m| m.ino()).ok();
        match files.iter().position(|p| inode(p) == Some(*ino)) {
            Some(i) => i + 1 < files.len(),
            None => !files.is_empty(),
        }
    }

    /// Opens the file after the one being read (the oldest kept if none, or if this one
    /// has been rotated out); `false` if there is none yet.
    fn open_next(&mut self) -> bool {
        let files = self.paths.existing();
        let inode = |p: &std::path::Path| std::fs::metadata(p).map(|m| m.ino()).ok();
        let next = match &self.file {
            None => 0,
            Some((_, ino)) => match files.iter().position(|p| inode(p) == Some(*ino)) {
                Some(i) => i + 1,
                None => 0,
            },
        };
        let Some(path) = files.get(next) else { return false };
        let Ok(file) = File::open(path) else { return false };
        let Ok(meta) = file.metadata() else { return false };
        if self.file.as_ref().is_some_and(|(_, ino)| *ino == meta.ino()) {
            return false;
        }
        self.file = Some((file, meta.ino()));
        self.carry.clear();
        self.last_pass = false;
        true
    }
}
