//! SPDY/3.1 framing, the subset Kubernetes' streaming protocols use.
//!
//! `kubectl exec`, `attach` and `port-forward` (and the kubelet's proxy in front of a CRI
//! runtime) upgrade an HTTP/1.1 connection to SPDY/3.1 and then open one SPDY stream per
//! channel: stdin, stdout, stderr, error and resize for exec and attach, a data and an error
//! stream per forwarded connection. This crate reads and writes the frames of such a
//! connection, per draft-mbelshe-httpbis-spdy-00 with the 3.1 changes:
//!
//! - control frames `SYN_STREAM`, `SYN_REPLY`, `RST_STREAM`, `SETTINGS`, `PING`, `GOAWAY`,
//!   `HEADERS` and `WINDOW_UPDATE`, and data frames; unknown control frame types are skipped,
//!   as the spec says a receiver must;
//! - header blocks compressed with zlib against the SPDY/3 dictionary, one compression
//!   context per direction for the whole connection (so a [`Codec`] belongs to one
//!   connection and sees every frame of it, in order).
//!
//! Everything read from the peer is bounded: a frame longer than the codec's limit, a header
//! block that inflates past its limit or names more headers than it holds, a bad zlib stream
//! or a version other than 3 is an [`Error`], never a panic or an unbounded allocation. A
//! header-block error leaves the connection's decompression context unusable: the caller
//! must end the connection (`GOAWAY` with `PROTOCOL_ERROR`).

mod dictionary;
mod frame;
mod headers;
pub mod session;

pub use frame::{Codec, Decoder, Encoder, Frame, Limits, Setting, flags, rst, settings};
pub use headers::Headers;
pub use session::{Options, Role, Session, Stream, StreamReader, StreamWriter};

/// What can go wrong reading a peer's frames.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    /// A control frame of a version this crate does not speak.
    #[error("SPDY version {0} is not supported (only 3)")]
    Version(u16),
    /// A frame longer than the codec accepts.
    #[error("SPDY frame of {len} bytes is longer than the {limit} allowed")]
    TooLong {
        /// The length the frame header claims.
        len: usize,
        /// The codec's limit.
        limit: usize,
    },
    /// A frame whose payload does not fit its type.
    #[error("malformed SPDY {frame} frame: {problem}")]
    Malformed {
        /// The frame type's name.
        frame: &'static str,
        /// What is wrong with it.
        problem: String,
    },
    /// A header block that does not inflate, or is malformed once inflated.
    #[error("bad SPDY header block: {0}")]
    HeaderBlock(String),
}

/// The crate's result type.
pub type Result<T> = std::result::Result<T, Error>;
