//! The only `unsafe` of fd passing: taking ownership of an fd the kernel just installed.
#![allow(unsafe_code)]

use std::os::fd::{FromRawFd, OwnedFd, RawFd};

/// Owns `fd`, received in an SCM_RIGHTS message.
pub(super) fn adopt(fd: RawFd) -> OwnedFd {
    // SAFETY: the kernel installed `fd` in this process for this message alone; nothing
    // else refers to it, so this is its only owner and it is closed exactly once.
    unsafe { OwnedFd::from_raw_fd(fd) }
}
