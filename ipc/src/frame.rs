//! Frames: the unit every byte on a berth socket belongs to.
//!
//! How a conversation goes:
//! 1. The client connects to the service's Unix socket; the service checks the peer's
//!    credentials (SO_PEERCRED) and closes the connection unless it is allowed.
//! 2. The client sends a `Hello` frame naming the service it expects; the service answers
//!    `Welcome` (or an `Error` frame with request id 0, then closes).
//! 3. The client sends `Request` frames, each with a fresh non-zero request id (0 is
//!    reserved for the handshake and connection errors). Many may be in flight at once.
//! 4. The service answers each id with exactly one `Response`, or with `StreamItem` frames
//!    followed by one `StreamEnd`, or with one `Error`. Answers to different ids may come in
//!    any order.
//! 5. The client may send `Cancel` for an id whose stream it no longer wants.
//! 6. Any frame with a bad magic, an unknown version or kind, or a length over
//!    [`MAX_FRAME_LEN`] ends the connection; the peer's other connections are unaffected.
//!
//! Every frame is a 20-byte header followed by `len` payload bytes (bincode, see
//! [`crate::codec`]). All integers are little-endian.
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 4 | magic `BRTH` |
//! | 4 | 1 | protocol version ([`PROTOCOL_VERSION`]) |
//! | 5 | 1 | kind ([`Kind`]) |
//! | 6 | 2 | flags, zero |
//! | 8 | 8 | request id |
//! | 16 | 4 | payload length |

use tokio::io::{AsyncRead, AsyncReadExt};

/// The four bytes every frame starts with.
pub const MAGIC: [u8; 4] = *b"BRTH";
/// The protocol version this crate speaks.
pub const PROTOCOL_VERSION: u8 = 1;
/// Size of the fixed frame header.
pub const HEADER_LEN: usize = 20;
/// The largest payload a frame may carry (16 MiB). Checked before anything is allocated.
pub const MAX_FRAME_LEN: u32 = 16 << 20;

/// What a frame carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Kind {
    /// Client → service, first frame: [`crate::Hello`].
    Hello = 1,
    /// Service → client, answer to `Hello`: [`crate::Welcome`].
    Welcome = 2,
    /// Client → service: a request body.
    Request = 3,
    /// Service → client: the single response to a unary request.
    Response = 4,
    /// Service → client: one item of a streamed response.
    StreamItem = 5,
    /// Service → client: the end of a stream (empty payload).
    StreamEnd = 6,
    /// Service → client: the call failed ([`crate::Error`]); id 0 means the connection did.
    Error = 7,
    /// Client → service: stop the stream with this id (empty payload).
    Cancel = 8,
}

impl Kind {
    fn from_u8(b: u8) -> Option<Kind> {
        Some(match b {
            1 => Kind::Hello,
            2 => Kind::Welcome,
            3 => Kind::Request,
            4 => Kind::Response,
            5 => Kind::StreamItem,
            6 => Kind::StreamEnd,
            7 => Kind::Error,
            8 => Kind::Cancel,
            _ => return None,
        })
    }
}

/// A frame header, decoded and checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// What the payload is.
    pub kind: Kind,
    /// The call this frame belongs to (0 for handshake and connection errors).
    pub id: u64,
    /// Payload length in bytes.
    pub len: u32,
}

/// Why a frame could not be read.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The connection ended cleanly between frames.
    #[error("connection closed")]
    Closed,
    /// The connection ended inside a frame.
    #[error("connection closed inside a frame")]
    Truncated,
    /// The frame did not start with `BRTH`.
    #[error("bad magic {0:02x?}")]
    BadMagic([u8; 4]),
    /// The peer speaks another protocol version.
    #[error("protocol version {theirs} not supported, this side speaks {PROTOCOL_VERSION}")]
    Version {
        /// The version the peer sent.
        theirs: u8,
    },
    /// An unknown frame kind.
    #[error("unknown frame kind {0}")]
    BadKind(u8),
    /// Non-zero reserved flags.
    #[error("reserved flags set: {0:#x}")]
    BadFlags(u16),
    /// A payload longer than [`MAX_FRAME_LEN`].
    #[error("frame of {0} bytes exceeds the limit of {MAX_FRAME_LEN}")]
    TooLarge(u32),
    /// The socket failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

impl FrameError {
    /// The wire error a service sends before closing a connection that sent this.
    pub fn to_wire(&self) -> crate::Error {
        use crate::Code;
        let code = match self {
            FrameError::Version { .. } => Code::FailedPrecondition,
            FrameError::TooLarge(_) => Code::OutOfRange,
            FrameError::Closed | FrameError::Truncated | FrameError::Io(_) => Code::Unavailable,
            _ => Code::InvalidArgument,
        };
        crate::Error::new(code, self.to_string())
    }
}

impl Header {
    /// Encodes a header for a payload of `len` bytes.
    pub fn encode(kind: Kind, id: u64, len: u32) -> [u8; HEADER_LEN] {
        let mut h = [0u8; HEADER_LEN];
        h[0..4].copy_from_slice(&MAGIC);
        h[4] = PROTOCOL_VERSION;
        h[5] = kind as u8;
        h[8..16].copy_from_slice(&id.to_le_bytes());
        h[16..20].copy_from_slice(&len.to_le_bytes());
        h
    }

    /// Decodes and checks a header. The length is checked against `max_len` here, before
    /// the caller allocates anything for the payload.
    pub fn decode(bytes: &[u8; HEADER_LEN], max_len: u32) -> Result<Header, FrameError> {
        let magic = [bytes[0], bytes[1], bytes[2], bytes[3]];
        if magic != MAGIC {
            return Err(FrameError::BadMagic(magic));
        }
        if bytes[4] != PROTOCOL_VERSION {
            return Err(FrameError::Version { theirs: bytes[4] });
        }
        let kind = Kind::from_u8(bytes[5]).ok_or(FrameError::BadKind(bytes[5]))?;
        let flags = u16::from_le_bytes([bytes[6], bytes[7]]);
        if flags != 0 {
            return Err(FrameError::BadFlags(flags));
        }
        let mut id = [0u8; 8];
        id.copy_from_slice(&bytes[8..16]);
        let len = u32::from_le_bytes([bytes[16], bytes[17], bytes[18], bytes[19]]);
        if len > max_len {
            return Err(FrameError::TooLarge(len));
        }
        Ok(Header { kind, id: u64::from_le_bytes(id), len })
    }
}

/// A whole frame as read from a socket.
#[derive(Debug)]
pub struct Frame {
    /// The checked header.
    pub header: Header,
    /// The payload, exactly `header.len` bytes.
    pub payload: Vec<u8>,
}

/// Reads one frame. A clean end of stream before the first header byte is
/// [`FrameError::Closed`]; anywhere else it is [`FrameError::Truncated`].
pub async fn read_frame<R: AsyncRead + Unpin>(r: &mut R, max_len: u32) -> Result<Frame, FrameError> {
    let mut head = [0u8; HEADER_LEN];
    let mut filled = 0;
    while filled < HEADER_LEN {
        let n = r.read(&mut head[filled..]).await?;
        if n == 0 {
            return Err(if filled == 0 { FrameError::Closed } else { FrameError::Truncated });
        }
        filled += n;
    }
    let header = Header::decode(&head, max_len)?;
    let mut payload = vec![0u8; header.len as usize];
    r.read_exact(&mut payload).await.map_err(|e| match e.kind() {
        std::io::ErrorKind::UnexpectedEof => FrameError::Truncated,
        _ => FrameError::Io(e),
    })?;
    Ok(Frame { header, payload })
}

/// Appends one encoded frame (header and payload) to `out`.
pub fn put_frame(out: &mut Vec<u8>, kind: Kind, id: u64, payload: &[u8]) {
    // Payloads are produced by this crate's encoder, which refuses anything over
    // MAX_FRAME_LEN, so the cast cannot truncate.
    let len = u32::try_from(payload.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&Header::encode(kind, id, len));
    out.extend_from_slice(payload);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_layout_is_fixed() {
        let h = Header::encode(Kind::Request, 0x0102_0304_0506_0708, 0x10);
        assert_eq!(h, [b'B', b'R', b'T', b'H', 1, 3, 0, 0, 8, 7, 6, 5, 4, 3, 2, 1, 0x10, 0, 0, 0]);
        let back = Header::decode(&h, MAX_FRAME_LEN).expect("decodes");
        assert_eq!(back, Header { kind: Kind::Request, id: 0x0102_0304_0506_0708, len: 16 });
    }

    #[test]
    fn oversized_length_refused_before_allocation() {
        let h = Header::encode(Kind::Request, 1, u32::MAX);
        let err = Header::decode(&h, MAX_FRAME_LEN).expect_err("too large");
        assert!(matches!(err, FrameError::TooLarge(u32::MAX)));
        assert_eq!(err.to_string(), "frame of 4294967295 bytes exceeds the limit of 16777216");
    }

    #[test]
    fn bad_magic_version_kind_flags() {
        let mut h = Header::encode(Kind::Request, 1, 0);
        h[0] = b'X';
        assert!(matches!(Header::decode(&h, 10), Err(FrameError::BadMagic(_))));
        let mut h = Header::encode(Kind::Request, 1, 0);
        h[4] = 9;
        assert!(matches!(Header::decode(&h, 10), Err(FrameError::Version { theirs: 9 })));
        let mut h = Header::encode(Kind::Request, 1, 0);
        h[5] = 99;
        assert!(matches!(Header::decode(&h, 10), Err(FrameError::BadKind(99))));
        let mut h = Header::encode(Kind::Request, 1, 0);
        h[6] = 1;
        assert!(matches!(Header::decode(&h, 10), Err(FrameError::BadFlags(1))));
    }

    #[tokio::test]
    async fn truncated_and_closed() {
        let empty: &[u8] = &[];
        assert!(matches!(read_frame(&mut &*empty, 100).await, Err(FrameError::Closed)));
        let half = &Header::encode(Kind::Request, 1, 0)[..7];
        assert!(matches!(read_frame(&mut &*half, 100).await, Err(FrameError::Truncated)));
        let mut buf = Vec::new();
        put_frame(&mut buf, Kind::Request, 1, b"abcdef");
        buf.truncate(buf.len() - 2);
        assert!(matches!(read_frame(&mut &buf[..], 100).await, Err(FrameError::Truncated)));
    }
}
