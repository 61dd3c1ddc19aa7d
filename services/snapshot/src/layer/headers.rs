//! A guard in front of the tar parser: follows the archive's block structure as the bytes
//! go by and refuses an extension header (PAX `x`/`g`, GNU long name `L` / long link `K`)
//! whose declared body is over the limit, before the tar crate reads that body whole into
//! memory. It mirrors the tar crate's framing: a header block, the sparse extension blocks
//! of an old GNU sparse header, then the body rounded up to 512 bytes, whose length a
//! preceding PAX `size` record overrides; it stops looking at the first zero block (the
//! end of the archive, as the tar crate reads it).

use std::io::{self, Read};

const BLOCK: usize = 512;

/// What the next bytes of the stream are.
enum State {
    /// Collecting a header block.
    Header,
    /// Collecting an old-GNU sparse extension block.
    SparseExt,
    /// Skipping `n` body bytes.
    Skip(u64),
    /// Collecting a PAX body of this many bytes (its `size` record matters).
    Pax(u64),
    /// Past the end of the archive: bytes pass unexamined.
    Done,
}

/// The guarded reader.
pub struct HeaderGuard<R> {
    inner: R,
    limit: u64,
    state: State,
    block: Vec<u8>,
    pending_size: Option<u64>,
    /// Body bytes of a sparse entry, skipped after its extension blocks.
    sparse_body: u64,
}

impl<R: Read> HeaderGuard<R> {
    /// Wraps `inner`, refusing extension headers larger than `limit` bytes.
    pub fn new(inner: R, limit: u64) -> Self {
        HeaderGuard {
            inner,
            limit,
            state: State::Header,
            block: Vec::new(),
            pending_size: None,
            sparse_body: 0,
        }
    }

    fn feed(&mut self, mut data: &[u8]) -> io::Result<()> {
        while !data.is_empty() {
            match self.state {
                State::Done => return Ok(()),
                State::Skip(n) => {
                    let k = (n.min(data.len() as u64)) as usize;
                    data = &data[k..];
                    self.state = if n == k as u64 { State::Header } else { State::Skip(n - k as u64) };
                }
                State::Header | State::SparseExt | State::Pax(_) => {
                    let want = match self.state {
                        State::Pax(n) => usize::try_from(n).map_err(|_| over(n, self.limit))?,
                        _ => BLOCK,
                    };
                    let k = (want - self.block.len()).min(data.len());
                    self.block.extend_from_slice(&data[..k]);
                    data = &data[k..];
                    if self.block.len() == want {
                        let block = std::mem::take(&mut self.block);
                        self.complete(&block)?;
                    }
                }
            }
        }
        Ok(())
    }

    fn complete(&mut self, block: &[u8]) -> io::Result<()> {
        match self.state {
            State::SparseExt => {
                self.state = if block[504] != 0 { State::SparseExt } else { self.body_after_sparse() };
            }
            State::Pax(n) => {
                self.pending_size = pax_size(block);
                self.state = skip(pad(n));
            }
            _ => {
                if block.iter().all(|b| *b == 0) {
                    self.state = State::Done;
                    return Ok(());
                }
                let size = numeric(&block[124..136])?;
                let kind = block[156];
                if matches!(kind, b'x' | b'g' | b'L' | b'K') {
                    if size > self.limit {
                        return Err(over(size, self.limit));
                    }
                    self.state = if kind == b'x' { State::Pax(size) } else { skip(round(size)) };
                    if kind == b'x' && size == 0 {
                        self.pending_size = None;
                        self.state = State::Header;
                    }
                    return Ok(());
                }
                let size = self.pending_size.take().unwrap_or(size);
                self.sparse_body = round(size);
                self.state =
                    if kind == b'S' && block[482] != 0 { State::SparseExt } else { skip(round(size)) };
            }
        }
        Ok(())
    }

    fn body_after_sparse(&self) -> State {
        skip(self.sparse_body)
    }
}

impl<R: Read> Read for HeaderGuard<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.feed(&buf[..n])?;
        Ok(n)
    }
}

fn skip(n: u64) -> State {
    if n == 0 { State::Header } else { State::Skip(n) }
}

/// `n` rounded up to whole blocks.
fn round(n: u64) -> u64 {
    n.div_ceil(BLOCK as u64).saturating_mul(BLOCK as u64)
}

/// The padding after a body of `n` bytes.
fn pad(n: u64) -> u64 {
    round(n) - n
}

fn over(size: u64, limit: u64) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("extension header of {size} bytes over the limit of {limit} bytes (max_header_bytes)"),
    )
}

/// A header's numeric field: octal, or base-256 when the high bit of the first byte is set.
fn numeric(field: &[u8]) -> io::Result<u64> {
    if field[0] & 0x80 != 0 {
        let mut v: u64 = 0;
        for (i, b) in field.iter().enumerate() {
            let b = if i == 0 { b & 0x7f } else { *b };
            v = v.checked_shl(8).filter(|_| v >> 56 == 0).ok_or_else(bad_size)? | u64::from(b);
        }
        return Ok(v);
    }
    let s: Vec<u8> = field.iter().copied().filter(|b| *b != 0 && *b != b' ').collect();
    if s.is_empty() {
        return Ok(0);
    }
    let s = std::str::from_utf8(&s).map_err(|_| bad_size())?;
    u64::from_str_radix(s, 8).map_err(|_| bad_size())
}

fn bad_size() -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, "tar header with a bad size field")
}

/// The `size` record of a PAX body, if any (the tar crate applies it to the next entry).
fn pax_size(body: &[u8]) -> Option<u64> {
    let mut rest = body;
    let mut found = None;
    while !rest.is_empty() {
        let sp = rest.iter().position(|b| *b == b' ')?;
        let len: usize = std::str::from_utf8(&rest[..sp]).ok()?.parse().ok()?;
        if len <= sp || len > rest.len() {
            return found;
        }
        let rec = &rest[sp + 1..len];
        let rec = rec.strip_suffix(b"\n").unwrap_or(rec);
        if let Some(v) = rec.strip_prefix(b"size=") {
            found = std::str::from_utf8(v).ok().and_then(|v| v.parse().ok());
        }
        rest = &rest[len..];
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn archive(entries: &[(&str, usize)]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (name, size) in entries {
            let mut h = tar::Header::new_gnu();
            h.set_size(*size as u64);
            h.set_mode(0o644);
            h.set_entry_type(tar::EntryType::Regular);
            b.append_data(&mut h, name, &vec![7u8; *size][..]).expect("append");
        }
        b.into_inner().expect("finish")
    }

    #[test]
    fn ordinary_and_long_names_pass_under_the_limit() {
        let long = "d/".repeat(200) + "f";
        let a = archive(&[("a", 10), (&long, 1000), ("b", 0)]);
        let mut g = HeaderGuard::new(&a[..], 4096);
        io::copy(&mut g, &mut io::sink()).expect("passes");
        let mut names = 0;
        for e in tar::Archive::new(&a[..]).entries().expect("entries") {
            e.expect("entry");
            names += 1;
        }
        assert_eq!(names, 3);
    }

    #[test]
    fn a_long_name_over_the_limit_is_refused_before_its_body() {
        let long = "x".repeat(5000);
        let a = archive(&[(&long, 1)]);
        let mut g = HeaderGuard::new(&a[..], 4096);
        let err = io::copy(&mut g, &mut io::sink()).expect_err("refused");
        assert!(err.to_string().contains("5001 bytes over the limit of 4096"), "{err}");
    }

    #[test]
    fn pax_size_record_is_read() {
        assert_eq!(pax_size(b"12 size=100\n10 uid=12\n"), Some(100));
        assert_eq!(pax_size(b"10 uid=12\n"), None);
    }
}
