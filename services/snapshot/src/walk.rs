//! Walking a snapshot's tree by directory fds, for `Diff` and `Usage`, safe against a live
//! container changing it underneath. The root is opened once (`O_DIRECTORY|O_NOFOLLOW`);
//! every child is listed from its parent's fd and opened relative to it with
//! `openat2(RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS|RESOLVE_NO_MAGICLINKS)` and `O_NOFOLLOW`.
//!
//! `Diff` opens each entry `O_PATH` (so a FIFO or device node is never opened for I/O) and
//! takes its type, metadata and size from `fstat` of that fd: whatever the name held at
//! that instant is what the layer gets, read through the fd: a directory is listed through
//! `openat(fd, ".")`, a regular file reopened through `/proc/self/fd`, a symlink read with
//! `readlinkat(fd, "")`, xattrs through `/proc/self/fd`. A directory swapped for a symlink is
//! therefore written as that symlink, never followed; a file swapped for a FIFO is written
//! as a FIFO, never read. `Usage` stats children with `fstatat(AT_SYMLINK_NOFOLLOW)` and
//! enters a directory only if what it opens is the inode it stat'ed.

use std::ffi::CString;
use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use berth_ipc::{Error, Result};
use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag, OpenHow, ResolveFlag, open, openat2, readlinkat};
use nix::sys::stat::{FileStat, Mode, fstat, fstatat};

use crate::layer::path::show;

/// One name in a directory and what `fstatat` saw there.
pub struct Child {
    /// Its name.
    pub name: Vec<u8>,
    /// Its stat, not following a symlink.
    pub st: FileStat,
}

/// An entry opened `O_PATH|O_NOFOLLOW` and its stat, taken from the fd.
pub struct Opened {
    /// The fd.
    pub fd: OwnedFd,
    /// Its stat.
    pub st: FileStat,
}

/// The file type bits of `st`.
pub fn kind(st: &FileStat) -> u32 {
    st.st_mode & libc::S_IFMT
}

/// Whether `st` is of file type `t` (`libc::S_IFDIR`, …).
pub fn is(st: &FileStat, t: u32) -> bool {
    kind(st) == t
}

/// The error for entry `rel` that is no longer what was listed.
pub fn changed(rel: &[u8]) -> Error {
    Error::unavailable(format!("diff: entry {:?} changed while being read; retry", show(rel)))
}

fn errno(what: &str, rel: &[u8], e: Errno) -> Error {
    let msg = format!("diff: entry {:?}: {what}: {}", show(rel), e.desc().to_lowercase());
    match e {
        Errno::ENOSPC | Errno::EDQUOT | Errno::EMFILE | Errno::ENFILE => Error::unavailable(msg),
        _ => Error::internal(msg),
    }
}

/// Opens the walk's root `dir` (a path of berth's own, not the container's).
pub fn open_root(dir: &Path) -> Result<OwnedFd> {
    open(dir, OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC, Mode::empty())
        .map_err(|e| {
            Error::internal_cause(format_args!("diff: open {}", dir.display()), e.desc().to_lowercase())
        })
}

/// The names in the directory `dir` (entry `rel`), sorted.
pub fn names(dir: BorrowedFd<'_>, rel: &[u8]) -> Result<Vec<Vec<u8>>> {
    let mut names = crate::layer::fsops::list_dir(dir).map_err(|e| errno("list", rel, e))?;
    names.sort();
    Ok(names)
}

/// The children of the directory `dir` (entry `rel`) with their `fstatat`, sorted by name.
/// A name gone between the listing and its stat is left out, as if removed before the walk.
pub fn children(dir: BorrowedFd<'_>, rel: &[u8]) -> Result<Vec<Child>> {
    let names = crate::layer::fsops::list_dir(dir).map_err(|e| errno("list", rel, e))?;
    let mut out = Vec::with_capacity(names.len());
    for name in names {
        match fstatat(dir, name.as_slice(), AtFlags::AT_SYMLINK_NOFOLLOW) {
            Ok(st) => out.push(Child { name, st }),
            Err(Errno::ENOENT) => {}
            Err(e) => return Err(errno("stat", &join(rel, &name), e)),
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// `rel/name` (just `name` at the root).
pub fn join(rel: &[u8], name: &[u8]) -> Vec<u8> {
    let mut p = rel.to_vec();
    if !p.is_empty() {
        p.push(b'/');
    }
    p.extend_from_slice(name);
    p
}

fn how(flags: OFlag) -> OpenHow {
    OpenHow::new().flags(flags | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC).resolve(
        ResolveFlag::RESOLVE_BENEATH | ResolveFlag::RESOLVE_NO_SYMLINKS | ResolveFlag::RESOLVE_NO_MAGICLINKS,
    )
}

fn same_inode(a: &FileStat, b: &FileStat) -> bool {
    a.st_dev == b.st_dev && a.st_ino == b.st_ino && kind(a) == kind(b)
}

/// Opens child `c` of `dir` with `flags`; `None` if it is no longer the inode listed.
fn open_as(dir: BorrowedFd<'_>, c: &Child, rel: &[u8], flags: OFlag) -> Result<Option<Opened>> {
    let fd = match openat2(dir, c.name.as_slice(), how(flags)) {
        Ok(fd) => fd,
        Err(Errno::ENOENT | Errno::ELOOP | Errno::ENOTDIR | Errno::EXDEV) => return Ok(None),
        Err(e) => return Err(errno("open", rel, e)),
    };
    let st = fstat(&fd).map_err(|e| errno("stat", rel, e))?;
    Ok(same_inode(&st, &c.st).then_some(Opened { fd, st }))
}

/// Opens `name` in `dir` (layer path `rel`) as `O_PATH`, whatever it is now, and stats the
/// fd: the stat describes exactly the inode opened, so there is no window between the two
/// for a swap to slip into. `None`: the name is gone (removed while the walk ran).
pub fn open_entry(dir: BorrowedFd<'_>, name: &[u8], rel: &[u8]) -> Result<Option<Opened>> {
    let fd = match openat2(dir, name, how(OFlag::O_PATH)) {
        Ok(fd) => fd,
        Err(Errno::ENOENT) => return Ok(None),
        Err(e) => return Err(errno("open", rel, e)),
    };
    let st = fstat(&fd).map_err(|e| errno("stat", rel, e))?;
    Ok(Some(Opened { fd, st }))
}

/// The opened directory `o` (entry `rel`) opened for listing: the same inode, through its fd.
pub fn listing(o: &Opened, rel: &[u8]) -> Result<OwnedFd> {
    let fd = openat2(o.fd.as_fd(), ".", how(OFlag::O_RDONLY | OFlag::O_DIRECTORY))
        .map_err(|e| errno("open", rel, e))?;
    let st = fstat(&fd).map_err(|e| errno("stat", rel, e))?;
    if !same_inode(&st, &o.st) {
        return Err(changed(rel));
    }
    Ok(fd)
}

/// Opens child `c` of `dir`, listed as a directory, for listing; `None` if it is no longer
/// that directory (for `Usage`, which then does not enter it).
pub fn open_dir(dir: BorrowedFd<'_>, c: &Child, rel: &[u8]) -> Result<Option<OwnedFd>> {
    if !is(&c.st, libc::S_IFDIR) {
        return Ok(None);
    }
    Ok(open_as(dir, c, rel, OFlag::O_RDONLY | OFlag::O_DIRECTORY)?.map(|o| o.fd))
}

fn proc_path(fd: BorrowedFd<'_>) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

/// The opened regular file `o` (entry `rel`) opened for reading: the same inode, reached
/// through its fd, never a FIFO or device that took its name since.
pub fn read_regular(o: &Opened, rel: &[u8]) -> Result<File> {
    if !is(&o.st, libc::S_IFREG) {
        return Err(changed(rel));
    }
    let fd =
        open(&proc_path(o.fd.as_fd()), OFlag::O_RDONLY | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC, Mode::empty())
            .map_err(|e| errno("open", rel, e))?;
    let st = fstat(&fd).map_err(|e| errno("stat", rel, e))?;
    if !same_inode(&st, &o.st) {
        return Err(changed(rel));
    }
    Ok(File::from(fd))
}

/// The target of the opened symlink `o`.
pub fn read_link(o: &Opened, rel: &[u8]) -> Result<PathBuf> {
    readlinkat(o.fd.as_fd(), "").map(PathBuf::from).map_err(|e| errno("readlink", rel, e))
}

/// The xattrs of the opened entry `o`, without overlayfs' own, sorted.
pub fn xattrs(fd: BorrowedFd<'_>, rel: &[u8]) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
    let io = |e: std::io::Error| errno("xattrs", rel, Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)));
    let c =
        CString::new(format!("/proc/self/fd/{}", fd.as_raw_fd())).map_err(|_| Error::internal("fd path"))?;
    let mut out = Vec::new();
    let names = match crate::sys::listxattr(&c) {
        Ok(n) => n,
        Err(e) if e.raw_os_error() == Some(libc::ENOTSUP) => return Ok(out),
        Err(e) => return Err(io(e)),
    };
    for n in names {
        if n.starts_with(b"trusted.overlay.") {
            continue;
        }
        let cn = CString::new(n.clone()).map_err(|_| Error::internal("xattr name with NUL"))?;
        if let Some(v) = crate::sys::getxattr(&c, &cn).map_err(io)? {
            out.push((n, v));
        }
    }
    out.sort();
    Ok(out)
}

/// Whether the opened directory carries overlayfs' opaque mark.
pub fn is_opaque(fd: BorrowedFd<'_>) -> bool {
    let Ok(c) = CString::new(format!("/proc/self/fd/{}", fd.as_raw_fd())) else { return false };
    matches!(crate::sys::getxattr(&c, crate::layer::whiteout::OVERLAY_OPAQUE_XATTR), Ok(Some(v)) if v == b"y")
}
