//! Header blocks: name/value pairs, compressed per connection and direction.

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

use crate::dictionary::DICTIONARY;
use crate::{Error, Result};

/// A frame's headers, in the order they came. Names are lowercase, as SPDY/3 requires; a
/// value holding several values separates them with NUL, as on the wire.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Headers(Vec<(String, String)>);

impl Headers {
    /// No headers.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a header; the name is lowercased.
    pub fn push(&mut self, name: &str, value: impl Into<String>) {
        self.0.push((name.to_ascii_lowercase(), value.into()));
    }

    /// With a header added.
    pub fn with(mut self, name: &str, value: impl Into<String>) -> Self {
        self.push(name, value);
        self
    }

    /// The first value of `name` (case-insensitive).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// Every pair, in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }

    /// How many pairs.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The uncompressed block: a 32-bit count, then each name and value with a 32-bit length.
    fn encode(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(4 + self.0.iter().map(|(n, v)| 8 + n.len() + v.len()).sum::<usize>());
        b.extend_from_slice(&(self.0.len() as u32).to_be_bytes());
        for (n, v) in &self.0 {
            b.extend_from_slice(&(n.len() as u32).to_be_bytes());
            b.extend_from_slice(n.as_bytes());
            b.extend_from_slice(&(v.len() as u32).to_be_bytes());
            b.extend_from_slice(v.as_bytes());
        }
        b
    }

    /// Parses an uncompressed block. Every length is checked against what is left, so a
    /// count or length that lies is an error before anything is allocated for it.
    fn decode(block: &[u8]) -> Result<Self> {
        let bad = |p: String| Error::HeaderBlock(p);
        let mut r = Reader(block);
        let count = r.u32().ok_or_else(|| bad("no header count".into()))? as usize;
        // Each pair takes at least 8 bytes (two lengths).
        if count > r.0.len() / 8 {
            return Err(bad(format!("{count} headers claimed in {} bytes", block.len())));
        }
        let mut pairs = Vec::with_capacity(count);
        for i in 0..count {
            let name = r.string().ok_or_else(|| bad(format!("header {i}: name runs past the block")))?;
            let value = r.string().ok_or_else(|| bad(format!("header {i}: value runs past the block")))?;
            let name = String::from_utf8(name.to_vec())
                .map_err(|_| bad(format!("header {i}: name is not UTF-8")))?;
            if name.is_empty() {
                return Err(bad(format!("header {i}: empty name")));
            }
            if name.bytes().any(|c| c.is_ascii_uppercase() || c == 0) {
                return Err(bad(format!("header {name:?}: names must be lowercase, without NUL")));
            }
            let value = String::from_utf8(value.to_vec())
                .map_err(|_| bad(format!("header {name}: value is not UTF-8")))?;
            pairs.push((name, value));
        }
        if !r.0.is_empty() {
            return Err(bad(format!("{} bytes after the last header", r.0.len())));
        }
        Ok(Self(pairs))
    }
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn u32(&mut self) -> Option<u32> {
        let (head, rest) = self.0.split_first_chunk::<4>()?;
        self.0 = rest;
        Some(u32::from_be_bytes(*head))
    }

    fn string(&mut self) -> Option<&'a [u8]> {
        let len = self.u32()? as usize;
        if len > self.0.len() {
            return None;
        }
        let (s, rest) = self.0.split_at(len);
        self.0 = rest;
        Some(s)
    }
}

/// The compressing side of a connection: every header block this end sends.
pub(crate) struct Deflater(Compress);

impl Deflater {
    pub(crate) fn new() -> Self {
        let mut c = Compress::new(Compression::default(), true);
        // Only fails for a stream that has already started: this one has not.
        let _ = c.set_dictionary(&DICTIONARY);
        Self(c)
    }

    /// Compresses `headers`, sync-flushed so the peer can inflate the block on its own.
    pub(crate) fn compress(&mut self, headers: &Headers) -> Vec<u8> {
        let input = headers.encode();
        let mut out = Vec::with_capacity(input.len() / 2 + 64);
        let mut consumed = 0;
        loop {
            if out.capacity() - out.len() < 64 {
                out.reserve(out.capacity().max(256));
            }
            let before_in = self.0.total_in();
            let before_out = out.len();
            // zlib cannot fail on a sound stream with room in the output.
            let _ = self.0.compress_vec(&input[consumed..], &mut out, FlushCompress::Sync);
            consumed += (self.0.total_in() - before_in) as usize;
            let room_left = out.len() < out.capacity();
            if consumed == input.len() && room_left && out.len() >= before_out {
                break;
            }
        }
        out
    }
}

/// The inflating side of a connection: every header block the peer sends.
pub(crate) struct Inflater {
    z: Decompress,
    /// The largest inflated block accepted.
    limit: usize,
}

impl Inflater {
    pub(crate) fn new(limit: usize) -> Self {
        Self { z: Decompress::new(true), limit }
    }

    /// Inflates and parses one header block.
    pub(crate) fn decompress(&mut self, block: &[u8]) -> Result<Headers> {
        let mut out: Vec<u8> =
            Vec::with_capacity(block.len().saturating_mul(4).clamp(64, self.limit.max(64)));
        let mut consumed = 0;
        loop {
            if out.len() >= self.limit && consumed < block.len() || out.len() > self.limit {
                return Err(Error::HeaderBlock(format!("inflates past {} bytes", self.limit)));
            }
            if out.len() == out.capacity() {
                out.reserve((self.limit + 1 - out.len()).min(out.capacity().max(256)));
            }
            let before_in = self.z.total_in();
            let status = self.z.decompress_vec(&block[consumed..], &mut out, FlushDecompress::Sync);
            consumed += (self.z.total_in() - before_in) as usize;
            match status {
                Ok(Status::StreamEnd) => {
                    return Err(Error::HeaderBlock("the zlib stream ended (a peer never ends it)".into()));
                }
                Ok(_) => {}
                Err(e) if e.needs_dictionary().is_some() => {
                    self.z.set_dictionary(&DICTIONARY).map_err(|_| {
                        Error::HeaderBlock("zlib stream asks for a dictionary other than SPDY/3's".into())
                    })?;
                }
                Err(e) => return Err(Error::HeaderBlock(format!("zlib: {e}"))),
            }
            if consumed == block.len() && out.len() < out.capacity() {
                break;
            }
        }
        if out.len() > self.limit {
            return Err(Error::HeaderBlock(format!("inflates past {} bytes", self.limit)));
        }
        Headers::decode(&out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_round_trip_through_one_context_per_direction() {
        let mut d = Deflater::new();
        let mut i = Inflater::new(1 << 16);
        let a = Headers::new().with("streamType", "stdout").with("port", "8080");
        let b = Headers::new().with("streamtype", "error").with("x", "a\0b");
        for h in [&a, &b, &a] {
            let wire = d.compress(h);
            assert_eq!(&i.decompress(&wire).expect("inflate"), h);
        }
        assert_eq!(a.get("STREAMTYPE"), Some("stdout"));
    }

    #[test]
    fn a_large_block_round_trips() {
        let mut d = Deflater::new();
        let mut i = Inflater::new(1 << 20);
        let big: String =
            (0..100_000u32).map(|n| char::from(b'a' + (n.wrapping_mul(7919) % 26) as u8)).collect();
        let h = Headers::new().with("big", big);
        assert_eq!(i.decompress(&d.compress(&h)).expect("inflate"), h);
    }

    #[test]
    fn limits_and_lies_are_errors() {
        let mut d = Deflater::new();
        let h = Headers::new().with("big", "x".repeat(10_000));
        let wire = d.compress(&h);
        let e = Inflater::new(1000).decompress(&wire).expect_err("too big");
        assert!(e.to_string().contains("inflates past 1000"), "{e}");
        // A count that promises more than the block holds.
        let e = Headers::decode(&[0xff, 0xff, 0xff, 0xff, 0, 0, 0, 1, b'a']).expect_err("lie");
        assert!(e.to_string().contains("headers claimed"), "{e}");
        let e = Headers::decode(&[0, 0, 0, 1, 0, 0, 0, 9, b'a', 0, 0, 0, 0]).expect_err("short");
        assert!(e.to_string().contains("name runs past"), "{e}");
        let e = Headers::decode(&[0, 0, 0, 1, 0, 0, 0, 1, b'A', 0, 0, 0, 0]).expect_err("case");
        assert!(e.to_string().contains("lowercase"), "{e}");
        // Not zlib at all.
        let e = Inflater::new(1000).decompress(b"not zlib at all").expect_err("garbage");
        assert!(e.to_string().contains("zlib"), "{e}");
    }
}
