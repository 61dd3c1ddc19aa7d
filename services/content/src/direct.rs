//! Appending an ingest's data with direct I/O (`O_DIRECT`), so a large ingest neither
//! copies through nor waits on the page cache.
//!
//! Why: on the hosts berth targets (VMs with dirty-page throttling and costly first touches
//! of fresh page-cache memory), buffered writes of a large blob ran at a fraction of the
//! disk's speed, and the commit's fsync then paid again. Direct writes go from one reused,
//! aligned staging buffer to the disk.
//!
//! How: bytes are appended to a staging buffer whose address is [`ALIGN`]-aligned; whenever
//! it is full it is written at `disk_end` (always aligned) through an `O_DIRECT` fd. The
//! unaligned tail stays staged until [`StagedFile::flush_tail`] writes it through the
//! ordinary fd (at commit, or when the writer goes away). After a crash the file holds
//! whole blocks, and the ingest resumes at its length. Where `O_DIRECT` is refused (tmpfs),
//! every write goes through the ordinary fd.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;

/// Alignment of direct I/O offsets, lengths and buffers.
pub const ALIGN: usize = 4096;
/// Bytes staged before a direct write.
const STAGE: usize = 4 << 20;

/// An ingest's data file, appended to through a staging buffer.
#[derive(Debug)]
pub struct StagedFile {
    /// The ordinary read-write fd (tail writes, fsync, truncation).
    file: File,
    /// The `O_DIRECT` fd, if the filesystem allows one.
    direct: Option<File>,
    /// Backing memory; the staging area starts at `start` (aligned).
    buf: Vec<u8>,
    start: usize,
    /// Bytes staged.
    len: usize,
    /// Where the staging area begins in the file.
    disk_end: u64,
}

impl StagedFile {
    /// Opens `path`, whose current length is `size`, for appending.
    pub fn open(path: &Path, size: u64) -> io::Result<StagedFile> {
        let file = OpenOptions::new().read(true).write(true).open(path)?;
        let direct = OpenOptions::new().write(true).custom_flags(libc::O_DIRECT).open(path).ok();
        let buf = vec![0u8; STAGE + ALIGN];
        let start = buf.as_ptr().align_offset(ALIGN).min(ALIGN);
        let mut staged = StagedFile { file, direct, buf, start, len: 0, disk_end: size };
        if staged.direct.is_some() {
            // Re-stage a partial last block so direct writes stay aligned.
            let tail = (size % ALIGN as u64) as usize;
            staged.disk_end = size - tail as u64;
            staged.file.read_exact_at(&mut staged.buf[start..start + tail], staged.disk_end)?;
            staged.len = tail;
        }
        Ok(staged)
    }

    /// The ordinary fd.
    pub fn file(&self) -> &File {
        &self.file
    }

    /// Everything written so far, staged bytes included.
    pub fn end(&self) -> u64 {
        self.disk_end + self.len as u64
    }

    /// Empties the file.
    pub fn truncate(&mut self) -> io::Result<()> {
        self.file.set_len(0)?;
        self.len = 0;
        self.disk_end = 0;
        Ok(())
    }

    /// Appends `data`.
    pub fn append(&mut self, mut data: &[u8]) -> io::Result<()> {
        if self.direct.is_none() {
            self.file.write_all_at(data, self.disk_end)?;
            self.disk_end += data.len() as u64;
            return Ok(());
        }
        while !data.is_empty() {
            let room = STAGE - self.len;
            let take = room.min(data.len());
            let at = self.start + self.len;
            self.buf[at..at + take].copy_from_slice(&data[..take]);
            self.len += take;
            data = &data[take..];
            if self.len == STAGE {
                self.write_stage()?;
            }
        }
        Ok(())
    }

    fn write_stage(&mut self) -> io::Result<()> {
        let stage = &self.buf[self.start..self.start + STAGE];
        let written = match &self.direct {
            Some(d) => d.write_all_at(stage, self.disk_end),
            None => self.file.write_all_at(stage, self.disk_end),
        };
        if let Err(e) = written {
            if e.raw_os_error() != Some(libc::EINVAL) {
                return Err(e);
            }
            // The filesystem refuses direct I/O after all: go on without it.
            self.direct = None;
            self.file.write_all_at(stage, self.disk_end)?;
        }
        self.disk_end += STAGE as u64;
        self.len = 0;
        Ok(())
    }

    /// Writes the staged tail through the ordinary fd (the file is then complete).
    pub fn flush_tail(&mut self) -> io::Result<()> {
        if self.len > 0 {
            self.file.write_all_at(&self.buf[self.start..self.start + self.len], self.disk_end)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unaligned_appends_and_resume() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("data");
        std::fs::write(&path, b"").expect("create");
        let data: Vec<u8> = (0..(STAGE * 2 + 12_345)).map(|i| (i * 7 % 251) as u8).collect();
        let mut f = StagedFile::open(&path, 0).expect("open");
        for piece in data[..STAGE + 5000].chunks(100_003) {
            f.append(piece).expect("append");
        }
        f.flush_tail().expect("tail");
        drop(f);
        let size = std::fs::metadata(&path).expect("stat").len();
        assert_eq!(size, (STAGE + 5000) as u64);
        let mut f = StagedFile::open(&path, size).expect("reopen");
        assert_eq!(f.end(), size);
        f.append(&data[STAGE + 5000..]).expect("append");
        f.flush_tail().expect("tail");
        assert_eq!(std::fs::read(&path).expect("read"), data);
    }
}
