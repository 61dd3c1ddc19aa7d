//! Frames and the per-connection codec.

use crate::headers::{Deflater, Inflater};
use crate::{Error, Headers, Result};

/// Frame flags.
pub mod flags {
    /// The sender's last frame on the stream (`SYN_STREAM`, `SYN_REPLY`, `HEADERS`, data).
    pub const FIN: u8 = 0x01;
    /// `SYN_STREAM`: the receiver must not send on the stream.
    pub const UNIDIRECTIONAL: u8 = 0x02;
    /// `SETTINGS`: clear persisted settings.
    pub const CLEAR_SETTINGS: u8 = 0x01;
}

/// `RST_STREAM` and `GOAWAY` status codes.
pub mod rst {
    /// `RST_STREAM`: the stream broke the protocol (`GOAWAY`: 1 also means protocol error).
    pub const PROTOCOL_ERROR: u32 = 1;
    /// A frame for a stream that is not open.
    pub const INVALID_STREAM: u32 = 2;
    /// The receiver refuses the stream before doing anything with it.
    pub const REFUSED_STREAM: u32 = 3;
    /// The stream is no longer wanted.
    pub const CANCEL: u32 = 5;
    /// The receiver failed for a reason of its own.
    pub const INTERNAL_ERROR: u32 = 6;
    /// A second `SYN_STREAM` for an open stream.
    pub const STREAM_IN_USE: u32 = 8;
    /// `SYN_REPLY` for a stream that already has one.
    pub const STREAM_ALREADY_CLOSED: u32 = 9;
    /// A frame too large for the receiver.
    pub const FRAME_TOO_LARGE: u32 = 11;
}

/// `SETTINGS` ids.
pub mod settings {
    /// The sender's initial per-stream receive window.
    pub const INITIAL_WINDOW_SIZE: u32 = 7;
    /// How many streams the sender accepts at once.
    pub const MAX_CONCURRENT_STREAMS: u32 = 4;
}

/// One `SETTINGS` entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Setting {
    /// Entry flags (persist, persisted).
    pub flags: u8,
    /// Which setting (24 bits).
    pub id: u32,
    /// Its value.
    pub value: u32,
}

/// A SPDY/3.1 frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// Opens a stream.
    SynStream {
        /// The new stream's id (odd from a client, even from a server).
        stream_id: u32,
        /// The stream it belongs to (0: none).
        associated_to: u32,
        /// 0 (highest) to 7.
        priority: u8,
        /// `FIN`, `UNIDIRECTIONAL`.
        flags: u8,
        /// The stream's headers.
        headers: Headers,
    },
    /// Accepts a stream.
    SynReply {
        /// The stream.
        stream_id: u32,
        /// `FIN`.
        flags: u8,
        /// Reply headers.
        headers: Headers,
    },
    /// Ends a stream abnormally.
    RstStream {
        /// The stream.
        stream_id: u32,
        /// One of [`rst`].
        status: u32,
    },
    /// Connection settings.
    Settings {
        /// `CLEAR_SETTINGS`.
        flags: u8,
        /// The entries.
        entries: Vec<Setting>,
    },
    /// A round-trip probe; the receiver echoes it.
    Ping {
        /// Odd from a client, even from a server.
        id: u32,
    },
    /// The sender is ending the connection.
    GoAway {
        /// The last stream the sender acted on.
        last_good_stream_id: u32,
        /// 0 ok, 1 protocol error, 2 internal error.
        status: u32,
    },
    /// More headers for a stream.
    Headers {
        /// The stream.
        stream_id: u32,
        /// `FIN`.
        flags: u8,
        /// The headers.
        headers: Headers,
    },
    /// More receive window for a stream (0: the whole connection).
    WindowUpdate {
        /// The stream, or 0.
        stream_id: u32,
        /// Bytes added (31 bits).
        delta: u32,
    },
    /// Stream data.
    Data {
        /// The stream.
        stream_id: u32,
        /// `FIN`.
        flags: u8,
        /// The bytes.
        data: Vec<u8>,
    },
    /// A control frame of a type this crate does not know; the spec says to ignore it.
    Unknown {
        /// Its type.
        kind: u16,
    },
}

/// What a codec accepts from its peer.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// The longest data frame payload.
    pub max_data: usize,
    /// The longest control frame payload.
    pub max_control: usize,
    /// The largest header block once inflated.
    pub max_headers: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self { max_data: MAX_LENGTH, max_control: 1 << 20, max_headers: 1 << 20 }
    }
}

/// The largest payload a frame's 24-bit length can say.
const MAX_LENGTH: usize = (1 << 24) - 1;
const HEADER_LEN: usize = 8;
const VERSION: u16 = 3;
const STREAM_MASK: u32 = 0x7fff_ffff;

const SYN_STREAM: u16 = 1;
const SYN_REPLY: u16 = 2;
const RST_STREAM: u16 = 3;
const SETTINGS: u16 = 4;
const PING: u16 = 6;
const GOAWAY: u16 = 7;
const HEADERS: u16 = 8;
const WINDOW_UPDATE: u16 = 9;

/// Reads and writes the frames of one connection: it holds both directions' compression
/// contexts, so it must see every frame of the connection, in order. [`Codec::split`] gives
/// the two directions to a reader and a writer.
pub struct Codec {
    decoder: Decoder,
    encoder: Encoder,
}

/// The reading half of a [`Codec`]: every frame the peer sends, in order.
pub struct Decoder {
    inflater: Inflater,
    limits: Limits,
}

/// The writing half of a [`Codec`]: every frame this end sends, in order.
pub struct Encoder {
    deflater: Deflater,
}

impl Codec {
    /// A codec for a new connection.
    pub fn new(limits: Limits) -> Self {
        Self { decoder: Decoder::new(limits), encoder: Encoder::new() }
    }

    /// The two directions, apart.
    pub fn split(self) -> (Decoder, Encoder) {
        (self.decoder, self.encoder)
    }

    /// See [`Decoder::frame_len`].
    pub fn frame_len(&self, buf: &[u8]) -> Result<Option<usize>> {
        self.decoder.frame_len(buf)
    }

    /// See [`Decoder::decode`].
    pub fn decode(&mut self, buf: &[u8]) -> Result<Option<(Frame, usize)>> {
        self.decoder.decode(buf)
    }

    /// See [`Encoder::encode`].
    pub fn encode(&mut self, frame: &Frame, out: &mut Vec<u8>) -> Result<()> {
        self.encoder.encode(frame, out)
    }
}

impl Decoder {
    /// The reading side of a new connection.
    pub fn new(limits: Limits) -> Self {
        Self { inflater: Inflater::new(limits.max_headers), limits }
    }

    /// The bytes one frame starting at `buf` needs, once its header is there (`None`: fewer
    /// than 8 bytes so far). Lets a reader size its buffer before the frame has arrived, and
    /// refuse an overlong frame without reading it.
    pub fn frame_len(&self, buf: &[u8]) -> Result<Option<usize>> {
        let Some(head) = buf.first_chunk::<HEADER_LEN>() else { return Ok(None) };
        let len = u32::from_be_bytes([0, head[5], head[6], head[7]]) as usize;
        let limit = if head[0] & 0x80 != 0 { self.limits.max_control } else { self.limits.max_data };
        if len > limit {
            return Err(Error::TooLong { len, limit });
        }
        Ok(Some(HEADER_LEN + len))
    }

    /// Decodes the frame at the start of `buf`: the frame and the bytes it took, or `None`
    /// when `buf` does not yet hold a whole frame.
    pub fn decode(&mut self, buf: &[u8]) -> Result<Option<(Frame, usize)>> {
        let Some(total) = self.frame_len(buf)? else { return Ok(None) };
        if buf.len() < total {
            return Ok(None);
        }
        let (head, payload) = (&buf[..HEADER_LEN], &buf[HEADER_LEN..total]);
        let word = u32::from_be_bytes([head[0], head[1], head[2], head[3]]);
        let flags = head[4];
        if word & 0x8000_0000 == 0 {
            let stream_id = word & STREAM_MASK;
            if stream_id == 0 {
                return Err(malformed("data", "stream id 0"));
            }
            return Ok(Some((Frame::Data { stream_id, flags, data: payload.to_vec() }, total)));
        }
        let version = ((word >> 16) & 0x7fff) as u16;
        if version != VERSION {
            return Err(Error::Version(version));
        }
        let frame = self.control((word & 0xffff) as u16, flags, payload)?;
        Ok(Some((frame, total)))
    }

    fn control(&mut self, kind: u16, flags: u8, p: &[u8]) -> Result<Frame> {
        let word = |name: &'static str, at: usize| -> Result<u32> {
            p.get(at..at + 4)
                .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
                .ok_or_else(|| malformed(name, format!("{} bytes is too short", p.len())))
        };
        let exact = |name: &'static str, len: usize| -> Result<()> {
            if p.len() == len {
                Ok(())
            } else {
                Err(malformed(name, format!("{} bytes, not {len}", p.len())))
            }
        };
        let stream = |name: &'static str| -> Result<u32> {
            match word(name, 0)? & STREAM_MASK {
                0 => Err(malformed(name, "stream id 0")),
                id => Ok(id),
            }
        };
        Ok(match kind {
            SYN_STREAM => {
                let stream_id = stream("SYN_STREAM")?;
                let associated_to = word("SYN_STREAM", 4)? & STREAM_MASK;
                if p.len() < 10 {
                    return Err(malformed("SYN_STREAM", format!("{} bytes is too short", p.len())));
                }
                let headers = self.inflater.decompress(&p[10..])?;
                Frame::SynStream { stream_id, associated_to, priority: p[8] >> 5, flags, headers }
            }
            SYN_REPLY => {
                let stream_id = stream("SYN_REPLY")?;
                Frame::SynReply { stream_id, flags, headers: self.inflater.decompress(&p[4..])? }
            }
            HEADERS => {
                let stream_id = stream("HEADERS")?;
                Frame::Headers { stream_id, flags, headers: self.inflater.decompress(&p[4..])? }
            }
            RST_STREAM => {
                exact("RST_STREAM", 8)?;
                Frame::RstStream { stream_id: stream("RST_STREAM")?, status: word("RST_STREAM", 4)? }
            }
            SETTINGS => {
                let count = word("SETTINGS", 0)? as usize;
                if p.len() != 4 + count.saturating_mul(8) {
                    return Err(malformed("SETTINGS", format!("{count} entries in {} bytes", p.len())));
                }
                let entries = p[4..]
                    .chunks_exact(8)
                    .map(|e| Setting {
                        flags: e[0],
                        id: u32::from_be_bytes([0, e[1], e[2], e[3]]),
                        value: u32::from_be_bytes([e[4], e[5], e[6], e[7]]),
                    })
                    .collect();
                Frame::Settings { flags, entries }
            }
            PING => {
                exact("PING", 4)?;
                Frame::Ping { id: word("PING", 0)? }
            }
            GOAWAY => {
                exact("GOAWAY", 8)?;
                Frame::GoAway {
                    last_good_stream_id: word("GOAWAY", 0)? & STREAM_MASK,
                    status: word("GOAWAY", 4)?,
                }
            }
            WINDOW_UPDATE => {
                exact("WINDOW_UPDATE", 8)?;
                let delta = word("WINDOW_UPDATE", 4)? & STREAM_MASK;
                if delta == 0 {
                    return Err(malformed("WINDOW_UPDATE", "delta 0"));
                }
                Frame::WindowUpdate { stream_id: word("WINDOW_UPDATE", 0)? & STREAM_MASK, delta }
            }
            kind => Frame::Unknown { kind },
        })
    }
}

impl Default for Encoder {
    fn default() -> Self {
        Self::new()
    }
}

impl Encoder {
    /// The writing side of a new connection.
    pub fn new() -> Self {
        Self { deflater: Deflater::new() }
    }

    /// Appends `frame` to `out`. Fails only for a payload longer than a frame can carry
    /// (split data first) or an [`Frame::Unknown`], which has nothing to send.
    pub fn encode(&mut self, frame: &Frame, out: &mut Vec<u8>) -> Result<()> {
        let mut payload = Vec::new();
        let (kind, flags) = match frame {
            Frame::Data { stream_id, flags, data } => {
                if data.len() > MAX_LENGTH {
                    return Err(Error::TooLong { len: data.len(), limit: MAX_LENGTH });
                }
                out.extend_from_slice(&(stream_id & STREAM_MASK).to_be_bytes());
                out.push(*flags);
                out.extend_from_slice(&(data.len() as u32).to_be_bytes()[1..]);
                out.extend_from_slice(data);
                return Ok(());
            }
            Frame::SynStream { stream_id, associated_to, priority, flags, headers } => {
                payload.extend_from_slice(&(stream_id & STREAM_MASK).to_be_bytes());
                payload.extend_from_slice(&(associated_to & STREAM_MASK).to_be_bytes());
                payload.extend_from_slice(&[(priority & 7) << 5, 0]);
                payload.extend_from_slice(&self.deflater.compress(headers));
                (SYN_STREAM, *flags)
            }
            Frame::SynReply { stream_id, flags, headers } => {
                payload.extend_from_slice(&(stream_id & STREAM_MASK).to_be_bytes());
                payload.extend_from_slice(&self.deflater.compress(headers));
                (SYN_REPLY, *flags)
            }
            Frame::Headers { stream_id, flags, headers } => {
                payload.extend_from_slice(&(stream_id & STREAM_MASK).to_be_bytes());
                payload.extend_from_slice(&self.deflater.compress(headers));
                (HEADERS, *flags)
            }
            Frame::RstStream { stream_id, status } => {
                payload.extend_from_slice(&(stream_id & STREAM_MASK).to_be_bytes());
                payload.extend_from_slice(&status.to_be_bytes());
                (RST_STREAM, 0)
            }
            Frame::Settings { flags, entries } => {
                payload.extend_from_slice(&(entries.len() as u32).to_be_bytes());
                for e in entries {
                    payload.push(e.flags);
                    payload.extend_from_slice(&(e.id & 0xff_ffff).to_be_bytes()[1..]);
                    payload.extend_from_slice(&e.value.to_be_bytes());
                }
                (SETTINGS, *flags)
            }
            Frame::Ping { id } => {
                payload.extend_from_slice(&id.to_be_bytes());
                (PING, 0)
            }
            Frame::GoAway { last_good_stream_id, status } => {
                payload.extend_from_slice(&(last_good_stream_id & STREAM_MASK).to_be_bytes());
                payload.extend_from_slice(&status.to_be_bytes());
                (GOAWAY, 0)
            }
            Frame::WindowUpdate { stream_id, delta } => {
                payload.extend_from_slice(&(stream_id & STREAM_MASK).to_be_bytes());
                payload.extend_from_slice(&(delta & STREAM_MASK).to_be_bytes());
                (WINDOW_UPDATE, 0)
            }
            Frame::Unknown { kind } => {
                return Err(malformed("unknown", format!("type {kind} has no encoding")));
            }
        };
        if payload.len() > MAX_LENGTH {
            return Err(Error::TooLong { len: payload.len(), limit: MAX_LENGTH });
        }
        out.extend_from_slice(&(0x8000 | VERSION).to_be_bytes());
        out.extend_from_slice(&kind.to_be_bytes());
        out.push(flags);
        out.extend_from_slice(&(payload.len() as u32).to_be_bytes()[1..]);
        out.extend_from_slice(&payload);
        Ok(())
    }
}

fn malformed(frame: &'static str, problem: impl Into<String>) -> Error {
    Error::Malformed { frame, problem: problem.into() }
}

#[cfg(test)]
#[path = "frame_tests.rs"]
mod tests;
