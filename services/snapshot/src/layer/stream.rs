//! The uncompressed stream of a layer: the compression is told by the blob's magic bytes
//! (gzip, possibly multi-member; zstd; else plain tar), every uncompressed byte is hashed
//! (the diff_id covers bytes after the tar end too) and counted against a size cap, so a
//! decompression bomb stops at the cap with memory bounded by the buffers.

use std::cell::Cell;
use std::io::{self, BufRead, BufReader, Read};
use std::rc::Rc;

use berth_ipc::digest::Digest;
use sha2::{Digest as _, Sha256};

/// How a blob is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// Plain tar.
    None,
    /// gzip (any number of members).
    Gzip,
    /// zstd.
    Zstd,
}

/// Reads the magic bytes of `r` without consuming them.
pub fn detect<R: BufRead>(r: &mut R) -> io::Result<Compression> {
    let head = r.fill_buf()?;
    Ok(if head.starts_with(&[0x1f, 0x8b]) {
        Compression::Gzip
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Compression::Zstd
    } else {
        Compression::None
    })
}

/// Shared view of the hashing state, readable after the stream is consumed.
#[derive(Clone, Default)]
pub struct Tally {
    over_cap: Rc<Cell<bool>>,
}

impl Tally {
    /// Whether the cap was hit.
    pub fn over_cap(&self) -> bool {
        self.over_cap.get()
    }
}

/// The uncompressed stream, hashed and capped.
pub struct Uncompressed<'a> {
    inner: Box<dyn Read + 'a>,
    hasher: Sha256,
    count: u64,
    cap: u64,
    tally: Tally,
}

impl<'a> Uncompressed<'a> {
    /// Wraps the blob `blob`, refusing more than `cap` uncompressed bytes.
    pub fn new<R: Read + 'a>(blob: R, cap: u64) -> io::Result<Self> {
        let mut buf = BufReader::with_capacity(1 << 20, blob);
        let inner: Box<dyn Read + 'a> = match detect(&mut buf)? {
            Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(buf)),
            Compression::Zstd => Box::new(zstd::stream::read::Decoder::with_buffer(buf)?),
            Compression::None => Box::new(buf),
        };
        Ok(Uncompressed { inner, hasher: Sha256::new(), count: 0, cap, tally: Tally::default() })
    }

    /// A handle to learn afterwards whether the cap was hit.
    pub fn tally(&self) -> Tally {
        self.tally.clone()
    }

    /// Reads whatever is left (bytes after the tar end) and returns `(diff_id, size)`.
    pub fn finish(mut self) -> io::Result<(Digest, u64)> {
        io::copy(&mut self, &mut io::sink())?;
        Ok((Digest::from_sha256(self.hasher.finalize().into()), self.count))
    }
}

impl Read for Uncompressed<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        if self.count > self.cap {
            self.tally.over_cap.set(true);
            return Err(io::Error::other(format!("uncompressed layer larger than {} bytes", self.cap)));
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    #[test]
    fn multi_member_gzip_is_read_whole() {
        let mut blob = Vec::new();
        for part in [&b"hello "[..], b"world"] {
            let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            enc.write_all(part).expect("write");
            blob.extend(enc.finish().expect("finish"));
        }
        let mut u = Uncompressed::new(&blob[..], 1 << 20).expect("open");
        let mut out = String::new();
        u.read_to_string(&mut out).expect("read");
        assert_eq!(out, "hello world");
        let (id, size) = u.finish().expect("finish");
        assert_eq!(size, 11);
        assert_eq!(id.to_string(), "sha256:b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9");
    }

    #[test]
    fn zstd_and_cap() {
        let blob = zstd::encode_all(&[7u8; 5000][..], 3).expect("zstd");
        let mut u = Uncompressed::new(&blob[..], 4096).expect("open");
        let tally = u.tally();
        let err = io::copy(&mut u, &mut io::sink()).expect_err("over cap");
        assert!(err.to_string().contains("larger than 4096"), "{err}");
        assert!(tally.over_cap());
    }
}
