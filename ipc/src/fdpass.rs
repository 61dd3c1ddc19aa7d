//! Passing open file descriptors over a Unix stream socket (SCM_RIGHTS), for peers on
//! this host that want a blob's bytes without copying them through a socket.
//!
//! One message carries some payload bytes and, attached to them, at most one fd. The
//! receiver gets its fd with close-on-exec set; extra fds a peer may attach (up to the
//! kernel's `SCM_MAX_FD` per message) are closed.
//! The one `unsafe` step (adopting a raw fd the kernel installed) lives in `sys`.

mod sys;

use std::io::{self, IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd, RawFd};

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

/// The most fds Linux lets one message carry (`SCM_MAX_FD`). The control buffer is sized for
/// this many, so a peer attaching more than we want cannot truncate the control data: with a
/// truncated buffer the kernel still installs the fds that fit, and a receiver that gives up
/// on the truncated message (as `nix` does) never closes them.
pub const SCM_MAX_FD: usize = 253;

/// Receives up to `buf.len()` bytes and the fd attached to them, if any. Returns the byte
/// count (0 at the end of the stream) and the fd. Any further fds a peer attached are closed.
pub async fn recv_with_fd(stream: &UnixStream, buf: &mut [u8]) -> io::Result<(usize, Option<OwnedFd>)> {
    stream
        .async_io(Interest::READABLE, || {
            let (n, fds) = recv_fds(stream.as_raw_fd(), buf)?;
            // Any further fds are dropped here, which closes them.
            Ok((n, fds.into_iter().next()))
        })
        .await
}

/// One `recvmsg` on `fd`: the byte count and every fd attached (close-on-exec set), in the
/// order sent. Dropping the returned fds closes them. For blocking and non-blocking sockets.
pub fn recv_fds(fd: RawFd, buf: &mut [u8]) -> io::Result<(usize, Vec<OwnedFd>)> {
    let mut space = nix::cmsg_space!([RawFd; SCM_MAX_FD]);
    let mut iov = [IoSliceMut::new(buf)];
    let msg =
        recvmsg::<()>(fd, &mut iov, Some(&mut space), MsgFlags::MSG_CMSG_CLOEXEC).map_err(io::Error::from)?;
    let mut fds = Vec::new();
    let cmsgs = msg.cmsgs().map_err(|e| io::Error::other(format!("fd message truncated: {e}")))?;
    for cmsg in cmsgs {
        if let ControlMessageOwned::ScmRights(raw) = cmsg {
            fds.extend(raw.into_iter().map(sys::adopt));
        }
    }
    Ok((msg.bytes, fds))
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

    fn open_fds() -> usize {
        std::fs::read_dir("/proc/self/fd").expect("fd dir").count()
    }

    #[tokio::test]
    async fn extra_fds_are_closed_not_leaked() {
        let (a, b) = UnixStream::pair().expect("pair");
        let files: Vec<std::fs::File> = (0..10).map(|_| tempfile::tempfile().expect("tempfile")).collect();
        let raw: Vec<RawFd> = files.iter().map(|f| f.as_raw_fd()).collect();
        let mut buf = [0u8; 16];
        // Warm up once so lazily opened fds (runtime, tempdir) are not counted.
        send_with_fd(&a, b"w", Some(files[0].as_fd())).await.expect("send");
        drop(recv_with_fd(&b, &mut buf).await.expect("recv"));
        let before = open_fds();
        for _ in 0..3 {
            a.async_io(Interest::WRITABLE, || {
                let cmsgs = [ControlMessage::ScmRights(&raw)];
                sendmsg::<()>(a.as_raw_fd(), &[IoSlice::new(b"ten")], &cmsgs, MsgFlags::MSG_NOSIGNAL, None)
                    .map_err(io::Error::from)
            })
            .await
            .expect("send ten fds");
            let (n, fd) = recv_with_fd(&b, &mut buf).await.expect("recv ten fds");
            assert_eq!(&buf[..n], b"ten");
            let first = fd.expect("the first fd");
            assert_eq!(open_fds(), before + 1, "only the first of ten fds is kept");
            drop(first);
        }
        assert_eq!(open_fds(), before, "every received fd is closed");
    }
}
