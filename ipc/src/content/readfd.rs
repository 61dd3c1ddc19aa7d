//! `content-fd.sock`: the content service's side socket that hands a peer on this host an
//! open, read-only fd of a blob (SCM_RIGHTS), so the peer reads the bytes itself.
//!
//! The exchange, one per connection:
//! 1. The client connects to `<state>/content-fd.sock`; the service checks its peer
//!    credentials as on `content.sock` and closes the connection if they are refused.
//! 2. The client sends one `Request` frame (see [`crate::frame`], any id) whose payload is a
//!    [`ReadFdRequest`].
//! 3. The service answers one frame with the same id: a `Response` whose payload is a
//!    [`ReadFdReply`], with the fd attached to its bytes, or an `Error` frame (no fd).
//! 4. The service closes the connection.
//!
//! No handshake: the socket speaks only this exchange, and the frame header already carries
//! the protocol version.

use std::os::fd::OwnedFd;
use std::path::Path;

use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt;
use tokio::net::UnixStream;

use crate::codec;
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::fdpass;
use crate::frame::{self, Header, Kind};

/// The side socket's file name in the state dir.
pub const SOCKET_NAME: &str = "content-fd.sock";
/// Largest reply frame a client accepts.
const MAX_REPLY: u32 = 64 * 1024;

/// Asks for a blob's fd.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReadFdRequest {
    /// The blob.
    pub digest: Digest,
}

/// The answer that carries the fd.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReadFdReply {
    /// The blob's size: the fd's file is exactly this long.
    pub size: u64,
}

/// An open blob: a read-only file positioned at 0, and its size.
#[derive(Debug)]
pub struct BlobFd {
    /// The open file.
    pub file: std::fs::File,
    /// Its size in bytes.
    pub size: u64,
}

/// Asks the content service whose side socket is `socket` for `digest`'s fd.
pub async fn read_fd(socket: &Path, digest: &Digest) -> Result<BlobFd> {
    let unavailable =
        |e: std::io::Error| Error::unavailable(format!("content fd socket {}: {e}", socket.display()));
    let mut stream = UnixStream::connect(socket).await.map_err(unavailable)?;
    let payload = codec::encode(&ReadFdRequest { digest: *digest })?;
    let mut buf = Vec::with_capacity(frame::HEADER_LEN + payload.len());
    frame::put_frame(&mut buf, Kind::Request, 1, &payload);
    stream.write_all(&buf).await.map_err(unavailable)?;

    let mut got = Vec::new();
    let mut fd: Option<OwnedFd> = None;
    let mut chunk = vec![0u8; 4096];
    let header = loop {
        if got.len() >= frame::HEADER_LEN {
            let mut head = [0u8; frame::HEADER_LEN];
            head.copy_from_slice(&got[..frame::HEADER_LEN]);
            let header = Header::decode(&head, MAX_REPLY).map_err(|e| e.to_wire())?;
            if got.len() >= frame::HEADER_LEN + header.len as usize {
                break header;
            }
        }
        let (n, passed) = fdpass::recv_with_fd(&stream, &mut chunk).await.map_err(unavailable)?;
        if n == 0 {
            return Err(Error::unavailable(format!("content fd socket {}: closed early", socket.display())));
        }
        if fd.is_none() {
            fd = passed;
        }
        got.extend_from_slice(&chunk[..n]);
    };
    let body = &got[frame::HEADER_LEN..frame::HEADER_LEN + header.len as usize];
    match header.kind {
        Kind::Response => {
            let reply: ReadFdReply = codec::decode(body)?;
            let fd = fd.ok_or_else(|| Error::internal(format!("blob {digest}: reply carried no fd")))?;
            Ok(BlobFd { file: std::fs::File::from(fd), size: reply.size })
        }
        Kind::Error => Err(codec::decode::<Error>(body)?),
        other => Err(Error::internal(format!("content fd socket: unexpected {other:?} frame"))),
    }
}

/// Server side: the bytes of a reply frame (`Response` with `reply`, or `Error`).
pub fn encode_reply(id: u64, reply: &Result<ReadFdReply>) -> Vec<u8> {
    let (kind, payload) = match reply {
        Ok(r) => (Kind::Response, codec::encode(r)),
        Err(e) => (Kind::Error, codec::encode(e)),
    };
    let (kind, payload) = match payload {
        Ok(p) => (kind, p),
        Err(e) => (Kind::Error, codec::encode(&e).unwrap_or_default()),
    };
    let mut buf = Vec::with_capacity(frame::HEADER_LEN + payload.len());
    frame::put_frame(&mut buf, kind, id, &payload);
    buf
}

/// Server side: reads the one request frame; returns its id and body.
pub async fn read_request<R: tokio::io::AsyncRead + Unpin>(r: &mut R) -> Result<(u64, ReadFdRequest)> {
    let f = frame::read_frame(r, 4096).await.map_err(|e| e.to_wire())?;
    if f.header.kind != Kind::Request {
        return Err(Error::invalid(format!("expected a request frame, got {:?}", f.header.kind)));
    }
    Ok((f.header.id, codec::decode(&f.payload)?))
}
