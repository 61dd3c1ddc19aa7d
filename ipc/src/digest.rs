//! Content digests: the validated [`Digest`] every service uses to name a blob.
//!
//! Only `sha256` is accepted, written `sha256:` followed by exactly 64 lowercase hex
//! digits. A `Digest` can only be built by parsing (or hashing), so code holding one may
//! build a path from [`Digest::hex`] without further checks: `sha256:../../x`, uppercase
//! hex, wrong lengths and unknown algorithms never get that far.
//!
//! On the wire a digest is its string form (a bincode string); decoding validates it, so a
//! malformed digest in a payload is an `InvalidArgument` decoding error.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::Digest as _;

use crate::error::Error;

/// The one supported algorithm.
pub const SHA256: &str = "sha256";
const HEX_LEN: usize = 64;

/// A validated `sha256:<64 lowercase hex>` digest.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest {
    bytes: [u8; 32],
}

impl Digest {
    /// Parses `sha256:<hex>`; anything else is `InvalidArgument` naming the string.
    pub fn parse(s: &str) -> Result<Digest, Error> {
        let bad = |why: &str| Error::invalid(format!("digest {:?}: {why}", truncate(s)));
        let (alg, hex) = s.split_once(':').ok_or_else(|| bad("missing algorithm prefix"))?;
        if alg != SHA256 {
            return Err(bad("unsupported algorithm, only sha256 is"));
        }
        if hex.len() != HEX_LEN {
            return Err(bad("expected 64 hex digits"));
        }
        let mut bytes = [0u8; 32];
        for (i, pair) in hex.as_bytes().chunks_exact(2).enumerate() {
            let (Some(hi), Some(lo)) = (nibble(pair[0]), nibble(pair[1])) else {
                return Err(bad("expected lowercase hex digits"));
            };
            bytes[i] = (hi << 4) | lo;
        }
        Ok(Digest { bytes })
    }

    /// The digest of a finished hash state.
    pub fn from_sha256(bytes: [u8; 32]) -> Digest {
        Digest { bytes }
    }

    /// The sha256 digest of `data`.
    pub fn of(data: &[u8]) -> Digest {
        Digest { bytes: sha2::Sha256::digest(data).into() }
    }

    /// The algorithm, always `sha256`.
    pub fn algorithm(&self) -> &'static str {
        SHA256
    }

    /// The 64 lowercase hex digits, safe to use as a file name.
    pub fn hex(&self) -> String {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let mut out = String::with_capacity(HEX_LEN);
        for b in self.bytes {
            out.push(char::from(DIGITS[usize::from(b >> 4)]));
            out.push(char::from(DIGITS[usize::from(b & 0xf)]));
        }
        out
    }

    /// The raw 32 bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.bytes
    }

    /// `sha256:` and the first 12 hex digits, for tables.
    pub fn short(&self) -> String {
        let hex = self.hex();
        format!("{SHA256}:{}", &hex[..12])
    }
}

fn nibble(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    }
}

/// Keeps error messages short when someone sends a megabyte as a digest.
fn truncate(s: &str) -> &str {
    match s.char_indices().nth(80) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{SHA256}:{}", self.hex())
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for Digest {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        Digest::parse(s)
    }
}

impl Serialize for Digest {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Digest {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Digest::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// The chainIDs of an image's `diff_ids`: `chain(1) = diff(1)`,
/// `chain(n) = sha256(chain(n-1) + " " + diff(n))` (the OCI image spec's definition).
pub fn chain_ids(diff_ids: &[Digest]) -> Vec<Digest> {
    let mut out: Vec<Digest> = Vec::with_capacity(diff_ids.len());
    for d in diff_ids {
        let next = match out.last() {
            None => *d,
            Some(prev) => Digest::of(format!("{prev} {d}").as_bytes()),
        };
        out.push(next);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Code;

    const EMPTY: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn parses_and_prints_round_trip() {
        let d = Digest::parse(EMPTY).expect("valid");
        assert_eq!(d.to_string(), EMPTY);
        assert_eq!(d, Digest::of(b""));
        assert_eq!(d.short(), "sha256:e3b0c44298fc");
        assert_eq!(d.hex().len(), 64);
    }

    #[test]
    fn refuses_bad_digests_with_invalid_argument() {
        let upper = EMPTY.replace('e', "E");
        let cases = [
            "sha256:../../x",
            upper.as_str(),
            "sha256:abc",
            &EMPTY[..EMPTY.len() - 1],
            "sha512:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            "",
        ];
        for case in cases {
            let err = Digest::parse(case).expect_err(case);
            assert_eq!(err.code, Code::InvalidArgument, "{case}");
            assert!(err.message.contains(&format!("{case:?}")), "{}", err.message);
        }
        let longer = format!("{EMPTY}0");
        assert!(Digest::parse(&longer).is_err());
        let err = Digest::parse("sha256:../../x").expect_err("path");
        assert_eq!(err.message, "digest \"sha256:../../x\": expected 64 hex digits");
    }

    #[test]
    fn wire_form_is_the_string_and_is_validated() {
        let d = Digest::parse(EMPTY).expect("valid");
        let bytes = crate::codec::encode(&d).expect("encode");
        assert_eq!(bytes, crate::codec::encode(&EMPTY.to_string()).expect("encode"));
        assert_eq!(crate::codec::decode::<Digest>(&bytes).expect("decode"), d);
        let bad = crate::codec::encode(&"sha256:../../x".to_string()).expect("encode");
        let err = crate::codec::decode::<Digest>(&bad).expect_err("refused");
        assert_eq!(err.code, Code::InvalidArgument);
    }
}
