//! The launcher's only `unsafe`: what runs in the forked child before `exec`.
#![allow(unsafe_code)]

use std::io;
use std::os::fd::RawFd;
use std::os::unix::process::CommandExt;

/// Arranges for the child to get `fds[i]` as fd `3 + i` (without close-on-exec), and to be
/// sent SIGTERM when the launcher dies, so that no service outlives a killed launcher.
pub fn prepare_child(cmd: &mut std::process::Command, fds: Vec<RawFd>) {
    let parent = nix::unistd::getpid().as_raw();
    // SAFETY: the closure runs between fork and exec and only makes async-signal-safe
    // system calls (prctl, getppid, fcntl, dup2, close) on fds and values captured by copy;
    // it neither allocates nor takes locks.
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM as libc::c_ulong, 0, 0, 0) != 0 {
                return Err(io::Error::last_os_error());
            }
            // The launcher may have died between fork and prctl.
            if libc::getppid() != parent {
                return Err(io::Error::other("launcher exited during spawn"));
            }
            let mut moved = [0 as RawFd; 8];
            let n = fds.len().min(moved.len());
            // First move every fd above the target range so no dup2 clobbers a later source.
            for i in 0..n {
                let high = libc::fcntl(fds[i], libc::F_DUPFD_CLOEXEC, 64);
                if high < 0 {
                    return Err(io::Error::last_os_error());
                }
                moved[i] = high;
            }
            for (i, fd) in moved.iter().enumerate().take(n) {
                // dup2 onto a different number yields an fd without close-on-exec.
                if libc::dup2(*fd, 3 + i as RawFd) < 0 {
                    return Err(io::Error::last_os_error());
                }
                libc::close(*fd);
            }
            Ok(())
        });
    }
}
