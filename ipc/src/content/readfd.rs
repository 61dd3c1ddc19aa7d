//! `content-fd.sock`: the content service's side socket where fds cross (SCM_RIGHTS)
//! between the service and peers on this host: the service hands out an open, read-only fd
//! of a blob (ReadFd) or of an ingest still being written (Follow, so a layer can be
//! unpacked while it downloads), and takes an fd to read an ingest's data from (AppendFd),
//! so bytes never travel through a socket.
//!
//! The exchange, one per connection:
//! 1. The client connects to `<state>/content-fd.sock`; the service checks its peer
//!    credentials as on `content.sock` and closes the connection if they are refused.
//! 2. The client sends one `Request` frame (see [`crate::frame`], any id) whose payload is an
//!    [`FdRequest`]; for `Append` the fd to read is attached to the frame's bytes.
//! 3. The service answers one frame with the same id, or an `Error` frame: for `Read` a
//!    `Response` with a [`ReadFdReply`] and the blob's fd attached; for `Follow` a
//!    [`FollowFdReply`] and the fd attached; for `Append`, once it
//!    has read the fd to its end, a `Response` with an [`AppendFdReply`].
//! 4. The service closes the connection.
//!
//! No handshake: the socket speaks only this exchange, and the frame header already carries
//! the protocol version.

use std::os::fd::{BorrowedFd, OwnedFd};
use std::path::Path;

use serde::{Deserialize, Serialize};
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

/// What a client asks on the fd socket.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum FdRequest {
    /// Send me this blob's fd.
    Read(ReadFdRequest),
    /// Read the attached fd to its end and append what it yields to an open write session
    /// (as one `WriteChunk` with this `seq`, at this `offset`).
    Append(AppendFdRequest),
    /// Send me the fd of this blob, or of the ingest in progress that is expected to become
    /// it, so I can read its bytes as they arrive.
    Follow(ReadFdRequest),
}

/// Appends a passed fd's bytes to a write session.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AppendFdRequest {
    /// The session from `Opened`.
    pub session: u64,
    /// The session's chunk counter, as for `WriteChunk`.
    pub seq: u64,
    /// Where the bytes go: the current end of the data, or 0 to restart.
    pub offset: u64,
}

/// The answer to an append.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AppendFdReply {
    /// The new end of the data.
    pub end: u64,
}

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

/// The answer to a follow, which carries the fd.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FollowFdReply {
    /// The blob is committed: the file is whole.
    pub committed: bool,
    /// The blob's size (committed) or the ingest's expected total (in progress; `None` if its
    /// writer did not say).
    pub total: Option<u64>,
}

/// A blob or an ingest becoming it: a read-only file that may still be growing.
#[derive(Debug)]
pub struct FollowFd {
    /// The open file.
    pub file: std::fs::File,
    /// What the service said about it.
    pub reply: FollowFdReply,
}

/// An open blob: a read-only file positioned at 0, and its size.
#[derive(Debug)]
pub struct BlobFd {
    /// The open file.
    pub file: std::fs::File,
    /// Its size in bytes.
    pub size: u64,
}

/// Receives one whole frame, and the fd attached to it if any.
pub async fn recv_frame(stream: &UnixStream, max: u32) -> Result<(Header, Vec<u8>, Option<OwnedFd>)> {
    let lost = |e: std::io::Error| Error::unavailable(format!("content fd socket: {e}"));
    let mut got = Vec::new();
    let mut fd: Option<OwnedFd> = None;
    let mut chunk = vec![0u8; 4096];
    loop {
        if got.len() >= frame::HEADER_LEN {
            let mut head = [0u8; frame::HEADER_LEN];
            head.copy_from_slice(&got[..frame::HEADER_LEN]);
            let header = Header::decode(&head, max).map_err(|e| e.to_wire())?;
            let end = frame::HEADER_LEN + header.len as usize;
            if got.len() >= end {
                got.truncate(end);
                got.drain(..frame::HEADER_LEN);
                return Ok((header, got, fd));
            }
        }
        let (n, passed) = fdpass::recv_with_fd(stream, &mut chunk).await.map_err(lost)?;
        if n == 0 {
            return Err(Error::unavailable("content fd socket: closed early"));
        }
        if fd.is_none() {
            fd = passed;
        }
        got.extend_from_slice(&chunk[..n]);
    }
}

async fn exchange(
    socket: &Path,
    req: &FdRequest,
    fd: Option<BorrowedFd<'_>>,
) -> Result<(Header, Vec<u8>, Option<OwnedFd>)> {
    let unavailable =
        |e: std::io::Error| Error::unavailable(format!("content fd socket {}: {e}", socket.display()));
    let stream = UnixStream::connect(socket).await.map_err(unavailable)?;
    let payload = codec::encode(req)?;
    let mut buf = Vec::with_capacity(frame::HEADER_LEN + payload.len());
    frame::put_frame(&mut buf, Kind::Request, 1, &payload);
    fdpass::send_with_fd(&stream, &buf, fd).await.map_err(unavailable)?;
    recv_frame(&stream, MAX_REPLY).await
}

fn reply<T: serde::de::DeserializeOwned>(header: &Header, body: &[u8]) -> Result<T> {
    match header.kind {
        Kind::Response => codec::decode(body),
        Kind::Error => Err(codec::decode::<Error>(body)?),
        other => Err(Error::internal(format!("content fd socket: unexpected {other:?} frame"))),
    }
}

/// Asks the content service whose side socket is `socket` for `digest`'s fd.
pub async fn read_fd(socket: &Path, digest: &Digest) -> Result<BlobFd> {
    let (header, body, fd) =
        exchange(socket, &FdRequest::Read(ReadFdRequest { digest: *digest }), None).await?;
    let r: ReadFdReply = reply(&header, &body)?;
    let fd = fd.ok_or_else(|| Error::internal(format!("blob {digest}: reply carried no fd")))?;
    Ok(BlobFd { file: std::fs::File::from(fd), size: r.size })
}

/// Asks the content service whose side socket is `socket` for the fd of `digest`, or of the
/// ingest in progress expected to become `digest`; `NotFound` when there is neither (yet).
pub async fn follow_fd(socket: &Path, digest: &Digest) -> Result<FollowFd> {
    let (header, body, fd) =
        exchange(socket, &FdRequest::Follow(ReadFdRequest { digest: *digest }), None).await?;
    let reply: FollowFdReply = reply(&header, &body)?;
    let fd = fd.ok_or_else(|| Error::internal(format!("blob {digest}: reply carried no fd")))?;
    Ok(FollowFd { file: std::fs::File::from(fd), reply })
}

/// Has the service read `fd` to its end into an open write session; returns the new end.
pub async fn append_fd(socket: &Path, req: AppendFdRequest, fd: BorrowedFd<'_>) -> Result<u64> {
    let (header, body, _) = exchange(socket, &FdRequest::Append(req), Some(fd)).await?;
    Ok(reply::<AppendFdReply>(&header, &body)?.end)
}

/// Server side: the bytes of a reply frame (`Response` with `reply`, or `Error`).
pub fn encode_reply<T: Serialize>(id: u64, reply: &Result<T>) -> Vec<u8> {
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

/// Server side: reads the one request frame; returns its id, body and attached fd.
pub async fn read_request(stream: &UnixStream) -> Result<(u64, FdRequest, Option<OwnedFd>)> {
    let (header, body, fd) = recv_frame(stream, 4096).await?;
    if header.kind != Kind::Request {
        return Err(Error::invalid(format!("expected a request frame, got {:?}", header.kind)));
    }
    Ok((header.id, codec::decode(&body)?, fd))
}
