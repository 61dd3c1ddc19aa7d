//! The content service's only `unsafe`: waiting for an fd to become readable (poll(2)).
#![allow(unsafe_code)]

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::time::Duration;

/// Waits up to `timeout` for `fd` to be readable (or at its end); false on timeout.
pub fn wait_readable(fd: BorrowedFd<'_>, timeout: Duration) -> io::Result<bool> {
    let mut pfd = libc::pollfd { fd: fd.as_raw_fd(), events: libc::POLLIN, revents: 0 };
    let ms = libc::c_int::try_from(timeout.as_millis()).unwrap_or(libc::c_int::MAX);
    // SAFETY: `pfd` is one valid, initialized pollfd that lives across the call, and the
    // count passed is 1; `fd` is borrowed, so it stays open for the call.
    let n = unsafe { libc::poll(&mut pfd, 1, ms) };
    match n {
        -1 => Err(io::Error::last_os_error()),
        0 => Ok(false),
        _ => Ok(true),
    }
}
