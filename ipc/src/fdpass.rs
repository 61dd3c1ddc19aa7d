//! Passing open file descriptors over a Unix stream socket (SCM_RIGHTS), for peers on
//! this host that want a blob's bytes without copying them through a socket.
//!
//! One message carries some payload bytes and, attached to them, at most one fd. The
//! receiver gets its fd with close-on-exec set; extra fds a peer may attach are closed.
//! The one `unsafe` step (adopting a raw fd the kernel installed) lives in `sys`.

mod sys;

use std::io::{self, IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};

use nix::sys::socket::{ControlMessage, ControlMessageOwned, MsgFlags, recvmsg, sendmsg};
use tokio::io::Interest;
use tokio::net::UnixStream;

/// Sends `bytes` with `fd` attached to them. Returns once every byte is sent.
pub async fn send_with_fd(stream: &UnixStream, bytes: &[u8], fd: Option<BorrowedFd<'_>>) -> io::Result<()> {
    let mut sent = 0;
    while sent < bytes.len() {
        let raw = fd.map(|f| [f.as_raw_fd()]);
        // The fd travels with the first byte only.
        let attach = if sent == 0 { raw } else { None };
        let n = stream
            .async_io(Interest::WRITABLE, || {
                let iov = [IoSlice::new(&bytes[sent..])];
                let cmsgs: Vec<ControlMessage<'_>> =
                    attach.as_ref().map(|r| vec![ControlMessage::ScmRights(r)]).unwrap_or_default();
                sendmsg::<()>(stream.as_raw_fd(), &iov, &cmsgs, MsgFlags::MSG_NOSIGNAL, None)
                    .map_err(io::Error::from)
            })
            .await?;
        if n == 0 {
            return Err(io::Error::new(io::ErrorKind::WriteZero, "socket closed while sending"));
        }
        sent += n;
    }
    Ok(())
}

/// Receives up to `buf.len()` bytes and the fd attached to them, if any. Returns the byte
/// count (0 at the end of the stream) and the fd.
pub async fn recv_with_fd(stream: &UnixStream, buf: &mut [u8]) -> io::Result<(usize, Option<OwnedFd>)> {
    stream
        .async_io(Interest::READABLE, || {
            let mut space = nix::cmsg_space!([std::os::fd::RawFd; 4]);
            let mut iov = [IoSliceMut::new(buf)];
            let msg =
                recvmsg::<()>(stream.as_raw_fd(), &mut iov, Some(&mut space), MsgFlags::MSG_CMSG_CLOEXEC)
                    .map_err(io::Error::from)?;
            let mut fds = Vec::new();
            let cmsgs = msg.cmsgs().map_err(|e| io::Error::other(format!("fd message truncated: {e}")))?;
            for cmsg in cmsgs {
                if let ControlMessageOwned::ScmRights(raw) = cmsg {
                    fds.extend(raw.into_iter().map(sys::adopt));
                }
            }
            let mut fds = fds.into_iter();
            let first = fds.next();
            // Any further fds are dropped, which closes them.
            Ok((msg.bytes, first))
        })
        .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Seek, Write};
    use std::os::fd::AsFd;

    #[tokio::test]
    async fn an_fd_crosses_a_socket() {
        let (a, b) = UnixStream::pair().expect("pair");
        let mut file = tempfile::tempfile().expect("tempfile");
        file.write_all(b"hello fd").expect("write");
        send_with_fd(&a, b"x1", Some(file.as_fd())).await.expect("send");
        drop(file);
        let mut buf = [0u8; 16];
        let (n, fd) = recv_with_fd(&b, &mut buf).await.expect("recv");
        assert_eq!(&buf[..n], b"x1");
        let mut got = std::fs::File::from(fd.expect("an fd"));
        got.rewind().expect("rewind");
        let mut s = String::new();
        got.read_to_string(&mut s).expect("read");
        assert_eq!(s, "hello fd");
        send_with_fd(&a, b"no fd", None).await.expect("send");
        let (n, fd) = recv_with_fd(&b, &mut buf).await.expect("recv");
        assert_eq!(&buf[..n], b"no fd");
        assert!(fd.is_none());
    }
}
