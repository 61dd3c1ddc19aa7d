//! Extended attributes and writeback hints through raw `libc` calls (nix has no wrappers):
//! the crate's only `unsafe`. Every call takes a path or an fd the caller resolved safely; none follows a
//! symlink at the final component.
#![allow(unsafe_code)]

use std::ffi::CStr;
use std::io;
use std::os::fd::{AsFd, AsRawFd};

fn check(ret: isize) -> io::Result<usize> {
    if ret < 0 { Err(io::Error::last_os_error()) } else { Ok(ret as usize) }
}

/// Sets xattr `name` on the open file `fd`.
pub fn fsetxattr(fd: impl AsFd, name: &CStr, value: &[u8]) -> io::Result<()> {
    // SAFETY: `name` is NUL-terminated, `value` is a valid slice for its length, and `fd` is
    // a live descriptor borrowed for the duration of the call.
    let ret = unsafe {
        libc::fsetxattr(fd.as_fd().as_raw_fd(), name.as_ptr(), value.as_ptr().cast(), value.len(), 0)
    };
    check(ret as isize).map(drop)
}

/// Starts writing the open file `fd`'s dirty pages to disk without waiting for them
/// (`sync_file_range(SYNC_FILE_RANGE_WRITE)`), so a later `syncfs` finds the I/O done or
/// under way instead of all of it still to do.
pub fn start_writeback(fd: impl AsFd) -> io::Result<()> {
    // SAFETY: `fd` is a live descriptor borrowed for the call; offset 0 and length 0 mean the
    // whole file, and the flag is a valid `sync_file_range` flag.
    let ret = unsafe { libc::sync_file_range(fd.as_fd().as_raw_fd(), 0, 0, libc::SYNC_FILE_RANGE_WRITE) };
    check(ret as isize).map(drop)
}

/// Sets xattr `name` on `path` without following a final symlink.
pub fn lsetxattr(path: &CStr, name: &CStr, value: &[u8]) -> io::Result<()> {
    // SAFETY: both strings are NUL-terminated; `value` is valid for `value.len()` bytes.
    let ret = unsafe { libc::lsetxattr(path.as_ptr(), name.as_ptr(), value.as_ptr().cast(), value.len(), 0) };
    check(ret as isize).map(drop)
}

type GetFn =
    unsafe extern "C" fn(*const libc::c_char, *const libc::c_char, *mut libc::c_void, usize) -> isize;
type ListFn = unsafe extern "C" fn(*const libc::c_char, *mut libc::c_char, usize) -> isize;

/// Reads xattr `name` of `path` (final symlink not followed); `None` when absent.
pub fn lgetxattr(path: &CStr, name: &CStr) -> io::Result<Option<Vec<u8>>> {
    get_with(libc::lgetxattr, path, name)
}

/// Reads xattr `name` of `path`, following it: only for `/proc/self/fd/N` of an fd the
/// caller opened `O_PATH|O_NOFOLLOW`, which lands on that very inode (a symlink's own).
pub fn getxattr(path: &CStr, name: &CStr) -> io::Result<Option<Vec<u8>>> {
    get_with(libc::getxattr, path, name)
}

fn get_with(f: GetFn, path: &CStr, name: &CStr) -> io::Result<Option<Vec<u8>>> {
    let mut buf = vec![0u8; 256];
    loop {
        // SAFETY: `f` is `lgetxattr` or `getxattr`; strings are NUL-terminated; `buf` is
        // writable for `buf.len()` bytes.
        let ret = unsafe { f(path.as_ptr(), name.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
        match check(ret) {
            Ok(n) => {
                buf.truncate(n);
                return Ok(Some(buf));
            }
            Err(e) if e.raw_os_error() == Some(libc::ENODATA) => return Ok(None),
            Err(e) if e.raw_os_error() == Some(libc::ERANGE) && buf.len() < (1 << 16) => {
                buf.resize(buf.len() * 4, 0)
            }
            Err(e) => return Err(e),
        }
    }
}

/// Names of the xattrs of `path` (final symlink not followed).
pub fn llistxattr(path: &CStr) -> io::Result<Vec<Vec<u8>>> {
    list_with(libc::llistxattr, path)
}

/// Names of the xattrs of `path`, following it (see [`getxattr`] for the one use).
pub fn listxattr(path: &CStr) -> io::Result<Vec<Vec<u8>>> {
    list_with(libc::listxattr, path)
}

fn list_with(f: ListFn, path: &CStr) -> io::Result<Vec<Vec<u8>>> {
    let mut buf = vec![0u8; 1024];
    loop {
        // SAFETY: `f` is `llistxattr` or `listxattr`; `path` is NUL-terminated; `buf` is
        // writable for `buf.len()` bytes.
        let ret = unsafe { f(path.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
        match check(ret) {
            Ok(n) => {
                buf.truncate(n);
                return Ok(buf.split(|b| *b == 0).filter(|s| !s.is_empty()).map(<[u8]>::to_vec).collect());
            }
            Err(e) if e.raw_os_error() == Some(libc::ERANGE) && buf.len() < (1 << 20) => {
                buf.resize(buf.len() * 4, 0)
            }
            Err(e) => return Err(e),
        }
    }
}
