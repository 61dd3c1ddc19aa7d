//! The few calls that need `unsafe`: adopting inherited file descriptors (the launcher's
//! listening socket and readiness pipe, systemd's socket activation) and poll(2).
#![allow(unsafe_code)]

use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

fn env_fd(name: &str) -> Option<RawFd> {
    let fd: RawFd = std::env::var(name).ok()?.parse().ok()?;
    (fd > 2).then_some(fd)
}

fn is_open(fd: RawFd) -> bool {
    nix::fcntl::fcntl(
        // SAFETY: fcntl(F_GETFD) on an arbitrary number only queries; the borrow lives for
        // this call alone.
        unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) },
        nix::fcntl::FcntlArg::F_GETFD,
    )
    .is_ok()
}

/// Takes ownership of the inherited fd named by `name` (once per process), if it is open.
fn take_env_fd(name: &str) -> Option<OwnedFd> {
    let fd = env_fd(name)?;
    if !is_open(fd) {
        return None;
    }
    // Clear the variable's effect for anything we spawn: the fd is ours now.
    let _ = nix::fcntl::fcntl(
        // SAFETY: fd was checked open just above and is not owned elsewhere in this process.
        unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) },
        nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
    );
    // SAFETY: the fd was handed to this process by its parent for exactly this use, it is
    // open, and nothing else in the process wraps it: the launcher's protocol gives each
    // inherited fd one owner, and this function runs once per variable at start-up.
    Some(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// The listening socket passed by the launcher (`BERTH_LISTEN_FD`) or by systemd socket
/// activation (`LISTEN_FDS`/`LISTEN_PID`, fd 3).
pub fn take_listen_fd() -> Option<std::os::unix::net::UnixListener> {
    if let Some(fd) = take_env_fd(crate::boot::LISTEN_FD_ENV) {
        return Some(fd.into());
    }
    let pid: u32 = std::env::var("LISTEN_PID").ok()?.parse().ok()?;
    let n: u32 = std::env::var("LISTEN_FDS").ok()?.parse().ok()?;
    if pid != std::process::id() || n < 1 || !is_open(3) {
        return None;
    }
    // SAFETY: systemd passes listening sockets starting at fd 3 to the process named by
    // LISTEN_PID, which was checked to be us; nothing else in this process owns fd 3.
    Some(unsafe { OwnedFd::from_raw_fd(3) }.into())
}

/// The readiness pipe passed by the launcher.
pub fn take_ready_fd() -> Option<std::fs::File> {
    take_env_fd(crate::ready::READY_FD_ENV).map(std::fs::File::from)
}

/// poll(2) on one fd for `events`, waiting up to `ms` (-1: forever); the `revents`, 0 on timeout.
pub fn poll_one(
    fd: BorrowedFd<'_>,
    events: libc::c_short,
    ms: libc::c_int,
) -> std::io::Result<libc::c_short> {
    let mut pfd = libc::pollfd { fd: fd.as_raw_fd(), events, revents: 0 };
    // SAFETY: `pfd` is one valid, initialized pollfd that lives across the call, and the
    // count passed is 1; `fd` is borrowed, so it stays open for the call.
    match unsafe { libc::poll(&mut pfd, 1, ms) } {
        -1 => Err(std::io::Error::last_os_error()),
        0 => Ok(0),
        _ => Ok(pfd.revents),
    }
}
