//! Reading a layer while it downloads: [`Growing`] reads a blob's file — committed, or the
//! content service's ingest still being written — up to the size it will have, waiting at
//! its current end for more bytes instead of taking that end for the end of the layer.
//!
//! What is read is never trusted for being a download in progress: the extracted tree is
//! committed only if its diff_id is the one the image config promises, so bytes that a
//! download later rewrites (a restart from offset 0) or that never become the blob (a
//! corrupt registry) end in a failed unpack, never in a wrong snapshot.
//!
//! The wait ends with an error when the ingest is abandoned (its file unlinked), when no
//! byte arrives for the stall time, or when the caller goes away (the cancel token).

use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::time::{Duration, Instant};

use berth_ipc::digest::Digest;
use tokio_util::sync::CancellationToken;

/// Longest wait for a new byte before the unpack gives up on the download.
pub const STALL: Duration = Duration::from_secs(120);
/// Longest nap between looks at the file's end.
const MAX_NAP: Duration = Duration::from_millis(20);

/// A blob's bytes `0..total`, read as they land.
pub struct Growing {
    file: File,
    digest: Digest,
    pos: u64,
    total: u64,
    committed: bool,
    cancel: CancellationToken,
    stall: Duration,
}

impl Growing {
    /// Reads `file` (the blob `digest`, or its ingest) until `total` bytes; `committed` says
    /// the file is already whole.
    pub fn new(file: File, digest: Digest, total: u64, committed: bool, cancel: CancellationToken) -> Self {
        Growing { file, digest, pos: 0, total, committed, cancel, stall: STALL }
    }

    /// Gives up after `stall` without a new byte (tests).
    pub fn with_stall(mut self, stall: Duration) -> Self {
        self.stall = stall;
        self
    }

    fn stopped(&self, why: String) -> io::Error {
        io::Error::other(format!("blob {}: {why} at byte {} of {}", self.digest, self.pos, self.total))
    }
}

impl Read for Growing {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.total.saturating_sub(self.pos);
        if left == 0 || buf.is_empty() {
            return Ok(0);
        }
        let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        let since = Instant::now();
        let mut nap = Duration::from_millis(1);
        loop {
            let n = self.file.read_at(&mut buf[..want], self.pos)?;
            if n > 0 {
                self.pos += n as u64;
                return Ok(n);
            }
            if self.committed {
                return Err(self.stopped("blob ended early".into()));
            }
            if self.cancel.is_cancelled() {
                return Err(self.stopped("unpack cancelled".into()));
            }
            if self.file.metadata()?.nlink() == 0 {
                return Err(self.stopped("download abandoned".into()));
            }
            if since.elapsed() >= self.stall {
                return Err(self.stopped(format!("no new byte for {} s", self.stall.as_secs())));
            }
            std::thread::sleep(nap);
            nap = (nap * 2).min(MAX_NAP);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    #[test]
    fn reads_bytes_as_a_writer_appends_them() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("data");
        let mut w = File::create(&path).expect("create");
        let r = File::open(&path).expect("open");
        let d = Digest::of(b"x");
        let mut g = Growing::new(r, d, 3000, false, CancellationToken::new());
        let writer = std::thread::spawn(move || {
            for _ in 0..3 {
                std::thread::sleep(Duration::from_millis(30));
                w.write_all(&[7u8; 1000]).expect("write");
            }
        });
        let mut got = Vec::new();
        g.read_to_end(&mut got).expect("read");
        writer.join().expect("writer");
        assert_eq!(got, vec![7u8; 3000]);
    }

    #[test]
    fn unlinked_stalled_and_cancelled_downloads_end_in_errors() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("data");
        std::fs::write(&path, [1u8; 10]).expect("write");
        let d = Digest::of(b"x");

        let mut g = Growing::new(File::open(&path).expect("open"), d, 20, false, CancellationToken::new())
            .with_stall(Duration::from_millis(50));
        let err = g.read_to_end(&mut Vec::new()).expect_err("stall");
        assert!(err.to_string().contains("no new byte"), "{err}");

        let cancel = CancellationToken::new();
        cancel.cancel();
        let mut g = Growing::new(File::open(&path).expect("open"), d, 20, false, cancel);
        let err = g.read_to_end(&mut Vec::new()).expect_err("cancel");
        assert!(err.to_string().contains("cancelled"), "{err}");

        let mut g = Growing::new(File::open(&path).expect("open"), d, 20, true, CancellationToken::new());
        let err = g.read_to_end(&mut Vec::new()).expect_err("short blob");
        assert!(err.to_string().contains("ended early"), "{err}");

        let mut g = Growing::new(File::open(&path).expect("open"), d, 20, false, CancellationToken::new());
        std::fs::remove_file(&path).expect("unlink");
        let err = g.read_to_end(&mut Vec::new()).expect_err("abandoned");
        assert!(err.to_string().contains("abandoned"), "{err}");
    }
}
