//! Waiting on file descriptors from threads that must not block forever (a pipe the content
//! service reads while watching for cancellation, the shim's listening socket).

use std::io;
use std::os::fd::BorrowedFd;
use std::time::Duration;

/// Waits until `fd` is readable or at its end (`true`), or `timeout` passes (`false`; `None`
/// waits forever). A signal ends the wait with an `Interrupted` error.
pub fn wait_readable(fd: BorrowedFd<'_>, timeout: Option<Duration>) -> io::Result<bool> {
    let ms = match timeout {
        None => -1,
        Some(t) => libc::c_int::try_from(t.as_millis()).unwrap_or(libc::c_int::MAX),
    };
    Ok(crate::sys::poll_one(fd, libc::POLLIN, ms)? != 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::fd::AsFd;

    #[test]
    fn readable_after_a_write_or_at_the_end_and_not_before() {
        let (r, w) = std::io::pipe().expect("pipe");
        let short = Some(Duration::from_millis(20));
        assert!(!wait_readable(r.as_fd(), short).expect("poll"));
        let mut w = w;
        w.write_all(b"x").expect("write");
        assert!(wait_readable(r.as_fd(), short).expect("poll"));
        drop(w);
        assert!(wait_readable(r.as_fd(), None).expect("poll at the end"));
    }
}
