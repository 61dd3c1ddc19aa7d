//! The `content` service's wire vocabulary: blobs named by [`Digest`], and ingests named by
//! a client-chosen `ref`.
//!
//! # Writing
//! A write spans several requests:
//! 1. [`OpenWriter`] (a streaming call) takes the ref's writer lock and answers a first
//!    [`WriterEvent::Opened`] with a session id and the ingest's [`IngestStatus`]: its
//!    `offset` is where the data already written ends (0 for a new ingest). The stream then
//!    stays open **for as long as the client holds the lock**: the lock is released when the
//!    client cancels the stream (drops it), when its connection dies, when the session
//!    commits, or when the service restarts. A second opener of a held ref gets
//!    `Unavailable`.
//! 2. [`WriteChunk`] appends bytes at `offset`, which must equal the end of the data
//!    (`OutOfRange` otherwise); offset 0 on existing data restarts the ingest. Several chunks
//!    may be in flight: each carries the session's chunk counter `seq`, and the service
//!    applies them in that order (requests on a connection run concurrently, so one may
//!    otherwise overtake its predecessor).
//! 3. [`CommitWriter`] checks size and digest (`FailedPrecondition` on a mismatch; the
//!    ingest is kept so it can be aborted or restarted), `AlreadyExists` if the blob is
//!    present (the ingest is dropped), else makes the blob durable and ends the session.
//!
//! Tying the lock to a stream rather than to a lease with a timer means a dead client frees
//! the ref at once, with nothing to refresh; a client that lost its connection simply opens
//! again and resumes from the offset `Opened` reports.
//!
//! # Layout
//! - this file — the messages and the protocol.
//! - [`store`] — the [`store::ContentStore`] trait the service's store and the proxy share.
//! - [`proxy`] — [`proxy::ContentClient`], the socket client implementing it.
//! - [`readfd`] — the side socket (`content-fd.sock`) that hands out blob fds.

pub mod proxy;
pub mod readfd;
pub mod store;
mod writer;

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::digest::Digest;

/// Topic published when a blob is committed.
pub const TOPIC_CREATE: &str = "/content/create";
/// Topic published when a blob is deleted.
pub const TOPIC_DELETE: &str = "/content/delete";
/// The largest chunk a [`WriteChunk`] or a read item carries.
pub const MAX_CHUNK: usize = 8 << 20;
/// Longest ingest ref accepted.
pub const MAX_REF_LEN: usize = 1024;

/// Bytes that travel as one bincode byte string (length then bytes), not as a sequence.
/// Shared, not copied, when cloned: a writer keeps the chunks it sent until they are safe
/// (`content::writer`) without a second copy of every byte it writes.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Bytes(pub std::sync::Arc<Vec<u8>>);

impl Bytes {
    /// Bytes owning `v`.
    pub fn new(v: Vec<u8>) -> Bytes {
        Bytes(std::sync::Arc::new(v))
    }

    /// The bytes as a `Vec`, copied only if they are shared.
    pub fn into_vec(self) -> Vec<u8> {
        std::sync::Arc::try_unwrap(self.0).unwrap_or_else(|shared| shared.as_ref().clone())
    }
}

impl std::ops::Deref for Bytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<{} bytes>", self.0.len())
    }
}

impl Serialize for Bytes {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(&self.0)
    }
}

impl<'de> Deserialize<'de> for Bytes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Bytes;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a byte string")
            }
            fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Bytes, E> {
                Ok(Bytes::new(v.to_vec()))
            }
            fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<Bytes, E> {
                Ok(Bytes::new(v))
            }
        }
        d.deserialize_bytes(V)
    }
}

/// A committed blob.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlobInfo {
    /// Its digest (its name).
    pub digest: Digest,
    /// Its size in bytes.
    pub size: u64,
    /// When it was committed, ns since the Unix epoch.
    pub created_at_ns: u64,
    /// When it last changed (same as created: blobs are immutable), ns since the epoch.
    pub updated_at_ns: u64,
    /// Labels. The content service keeps none (metadata does); filled in when joined.
    pub labels: BTreeMap<String, String>,
}

/// An ingest in progress.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IngestStatus {
    /// The ref the writer chose.
    pub r#ref: String,
    /// Bytes written so far: where the next chunk must start.
    pub offset: u64,
    /// The expected total size, if the opener gave one.
    pub total: Option<u64>,
    /// The expected digest, if the current writer gave one.
    pub expected: Option<Digest>,
    /// When the ingest started, ns since the epoch.
    pub started_at_ns: u64,
    /// When data was last written, ns since the epoch.
    pub updated_at_ns: u64,
}

/// `Info`: one blob's info. `NotFound` if absent.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Info {
    /// The blob.
    pub digest: Digest,
}

/// `List`: every blob matching the filters (containerd syntax; fields `digest`, `size`;
/// `labels.*` needs the metadata service and is refused here).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct List {
    /// Any one filter may match; empty = all.
    pub filters: Vec<String>,
}

/// `Delete`: removes a blob. `NotFound` if absent.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Delete {
    /// The blob.
    pub digest: Digest,
}

/// `Read`: a blob's bytes from `offset`, streamed in chunks of at most [`MAX_CHUNK`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Read {
    /// The blob.
    pub digest: Digest,
    /// The first byte; past the end is `OutOfRange`.
    pub offset: u64,
    /// How many bytes at most; `None` reads to the end.
    pub length: Option<u64>,
}

/// One piece of a read.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Chunk {
    /// Where in the blob `data` starts.
    pub offset: u64,
    /// The bytes.
    pub data: Bytes,
}

/// `Status`: an ingest's status, whether or not a writer holds it. `NotFound` if none.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Status {
    /// The ingest's ref.
    pub r#ref: String,
}

/// `ListStatuses`: every ingest matching the filters (field `ref`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ListStatuses {
    /// Any one filter may match; empty = all.
    pub filters: Vec<String>,
}

/// `Abort`: drops an ingest and its data. `NotFound` if none; `Unavailable` while another
/// connection's writer holds it (the holder itself may abort).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Abort {
    /// The ingest's ref.
    pub r#ref: String,
    /// The session aborting its own ingest, if any.
    pub session: Option<u64>,
}

/// `OpenWriter`: takes the writer lock of `ref` (see the module doc).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OpenWriter {
    /// The ingest's ref (1 to [`MAX_REF_LEN`] bytes).
    pub r#ref: String,
    /// The digest the data must have at commit.
    pub expected_digest: Option<Digest>,
    /// The size the data must have at commit.
    pub expected_size: Option<u64>,
    /// Write even when the expected blob is already stored (no `AlreadyExists` at open):
    /// the client proves it holds the bytes, which `CommitWriter` verifies before answering
    /// `AlreadyExists`. Clients use it to record, in their namespace, a blob only another
    /// namespace had.
    pub prove: bool,
}

/// Items of an `OpenWriter` stream.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum WriterEvent {
    /// The lock is held: write with this session id, starting at `status.offset`.
    Opened {
        /// The session id for `WriteChunk` and `CommitWriter`.
        session: u64,
        /// The ingest as found (resumed or new).
        status: IngestStatus,
    },
}

/// `WriteChunk`: appends `data` at `offset` within a session; answers the new offset.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WriteChunk {
    /// The session from `Opened`.
    pub session: u64,
    /// The session's chunk counter: 0 for its first chunk, then one more per chunk. The
    /// service applies chunks in this order, so several may be in flight.
    pub seq: u64,
    /// Where `data` goes: the current end of the data, or 0 to restart.
    pub offset: u64,
    /// At most [`MAX_CHUNK`] bytes.
    pub data: Bytes,
}

/// `CommitWriter`: verifies and commits the session's data as a blob, ending the session.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CommitWriter {
    /// The session from `Opened`.
    pub session: u64,
    /// The size the data must have (in addition to the opener's expectation).
    pub size: Option<u64>,
    /// The digest the data must have (in addition to the opener's expectation).
    pub digest: Option<Digest>,
}

/// `Check`: re-hashes every blob; streams one item per bad blob, then a summary.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Check;

/// Items of a `Check` stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum CheckItem {
    /// A blob file whose bytes do not match its name, or that cannot be read.
    Bad {
        /// The file's name under `blobs/` (`sha256/<hex>`).
        name: String,
        /// What is wrong: `digest sha256:… does not match` or the read error.
        problem: String,
    },
    /// The end: how many blobs were checked and how many were bad.
    Done {
        /// Blobs checked.
        checked: u64,
        /// Bad ones among them.
        bad: u64,
    },
}

crate::protocol! {
    /// The content service (`content.sock`).
    pub protocol Content = "content";
    request ContentRequest; response ContentResponse;
    /// A blob's info. Always allowed.
    Info(Info) -> BlobInfo [idempotent];
    /// Blobs matching filters, one item each. Always allowed.
    List(List) -> BlobInfo [idempotent, stream];
    /// Delete a blob. Always allowed; `NotFound` if absent.
    Delete(Delete) -> () [];
    /// A blob's bytes. Always allowed.
    Read(Read) -> Chunk [idempotent, stream];
    /// An ingest's status. Always allowed.
    Status(Status) -> IngestStatus [idempotent];
    /// Ingests matching filters. Always allowed.
    ListStatuses(ListStatuses) -> Vec<IngestStatus> [idempotent];
    /// Drop an ingest. Allowed unless another connection holds its writer.
    Abort(Abort) -> () [];
    /// Take a ref's writer lock; the stream lives as long as the lock.
    OpenWriter(OpenWriter) -> WriterEvent [stream];
    /// Append to an open session's ingest.
    WriteChunk(WriteChunk) -> u64 [];
    /// Commit an open session's ingest.
    CommitWriter(CommitWriter) -> BlobInfo [];
    /// Re-hash every blob. Always allowed.
    Check(Check) -> CheckItem [idempotent, stream];
}

/// Validates an ingest ref: 1 to [`MAX_REF_LEN`] bytes, no control characters.
pub fn check_ref(r: &str) -> crate::Result<()> {
    if r.is_empty() || r.len() > MAX_REF_LEN {
        return Err(crate::Error::invalid(format!("ref of {} bytes: must be 1 to {MAX_REF_LEN}", r.len())));
    }
    if r.chars().any(char::is_control) {
        return Err(crate::Error::invalid(format!("ref {r:?}: control characters are not allowed")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_travel_as_a_byte_string() {
        let b = Bytes::new(vec![1, 2, 3]);
        let enc = crate::codec::encode(&b).expect("encode");
        assert_eq!(enc, [3, 1, 2, 3]);
        assert_eq!(crate::codec::decode::<Bytes>(&enc).expect("decode"), b);
    }

    #[test]
    fn refs_are_checked() {
        assert!(check_ref("layer-sha256:abc").is_ok());
        assert_eq!(check_ref("").expect_err("empty").code, crate::Code::InvalidArgument);
        assert!(check_ref("a\nb").is_err());
        assert!(check_ref(&"x".repeat(MAX_REF_LEN + 1)).is_err());
    }
}
