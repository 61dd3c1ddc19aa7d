//! The file-system steps the extractor is built from, all relative to directory fds and
//! none following a symlink where it could lead outside the layer root: resolving a parent
//! directory inside the root (`openat2` with `RESOLVE_IN_ROOT`: `/` and `..` stop at the
//! root, magic links and mount crossings are refused), creating missing parents, and
//! removing a tree without following symlinks.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use berth_ipc::{Error, Result};
use nix::errno::Errno;
use nix::fcntl::{OFlag, OpenHow, ResolveFlag, openat, openat2};
use nix::sys::stat::{Mode, mkdirat};
use nix::unistd::{UnlinkatFlags, unlinkat};

use super::path::show;

/// Turns an errno met while handling entry `path` into a wire error: errors the layer can
/// cause are `InvalidArgument`, the rest `Internal`.
pub fn errno(what: &str, path: &[u8], e: Errno) -> Error {
    let msg = format!("layer entry {:?}: {what}: {}", show(path), e.desc().to_lowercase());
    match e {
        Errno::ELOOP
        | Errno::ENOTDIR
        | Errno::EXDEV
        | Errno::EEXIST
        | Errno::ENOENT
        | Errno::EPERM
        | Errno::EISDIR
        | Errno::ENAMETOOLONG
        | Errno::EINVAL
        | Errno::ENOTEMPTY => Error::invalid(msg),
        Errno::ENOSPC | Errno::EDQUOT => Error::unavailable(msg),
        _ => Error::internal(msg),
    }
}

fn resolve_flags() -> ResolveFlag {
    ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS | ResolveFlag::RESOLVE_NO_XDEV
}

/// Opens directory `path` (joined components, may be empty for the root) as an `O_PATH`
/// fd, resolving every symlink as if `root` were `/`.
pub fn open_dir_in_root(root: BorrowedFd<'_>, path: &[u8]) -> nix::Result<OwnedFd> {
    let p: &[u8] = if path.is_empty() { b"." } else { path };
    let how =
        OpenHow::new().flags(OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC).resolve(resolve_flags());
    openat2(root, p, how)
}

/// Opens directory `path` without following any symlink on the way (hardlink targets).
pub fn open_dir_no_symlinks(root: BorrowedFd<'_>, path: &[u8]) -> nix::Result<OwnedFd> {
    let p: &[u8] = if path.is_empty() { b"." } else { path };
    let how = OpenHow::new()
        .flags(OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC)
        .resolve(resolve_flags() | ResolveFlag::RESOLVE_NO_SYMLINKS);
    openat2(root, p, how)
}

/// Opens `name` in `dir` as a directory, never following a symlink.
pub fn open_child_dir(dir: BorrowedFd<'_>, name: &[u8], flags: OFlag) -> nix::Result<OwnedFd> {
    openat(dir, name, flags | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC, Mode::empty())
}

/// Opens the parent directory `comps` inside `root`, creating missing directories (0755).
/// A parent that is a dangling symlink, a symlink loop or not a directory is refused.
pub fn make_parent(root: BorrowedFd<'_>, comps: &[Vec<u8>], entry: &[u8]) -> Result<OwnedFd> {
    let joined = super::path::join(comps);
    match open_dir_in_root(root, &joined) {
        Ok(fd) => return Ok(fd),
        Err(Errno::ENOENT) => {}
        Err(e) => return Err(errno("parent directory", entry, e)),
    }
    let mut cur = open_dir_in_root(root, b"").map_err(|e| errno("layer root", entry, e))?;
    for i in 0..comps.len() {
        let prefix = super::path::join(&comps[..=i]);
        match open_dir_in_root(root, &prefix) {
            Ok(fd) => cur = fd,
            Err(Errno::ENOENT) => {
                mkdirat(cur.as_fd(), comps[i].as_slice(), Mode::from_bits_truncate(0o755)).map_err(|e| {
                    let e = if e == Errno::EEXIST { Errno::ENOENT } else { e };
                    errno("parent is a dangling symlink or missing", entry, e)
                })?;
                cur = open_child_dir(cur.as_fd(), &comps[i], OFlag::O_PATH)
                    .map_err(|e| errno("parent directory", entry, e))?;
            }
            Err(e) => return Err(errno("parent directory", entry, e)),
        }
    }
    Ok(cur)
}

/// Removes `name` in `dir` and, if it is a directory, everything below it, never following
/// symlinks. A missing `name` is not an error.
pub fn remove_all(dir: BorrowedFd<'_>, name: &[u8]) -> nix::Result<()> {
    match unlinkat(dir, name, UnlinkatFlags::NoRemoveDir) {
        Ok(()) | Err(Errno::ENOENT) => return Ok(()),
        Err(Errno::EISDIR) => {}
        Err(e) => return Err(e),
    }
    let child = open_child_dir(dir, name, OFlag::O_RDONLY)?;
    for n in list_dir(child.as_fd())? {
        remove_all(child.as_fd(), &n)?;
    }
    unlinkat(dir, name, UnlinkatFlags::RemoveDir)
}

/// Names in directory `dir` (an fd open for reading), without `.` and `..`.
pub fn list_dir(dir: BorrowedFd<'_>) -> nix::Result<Vec<Vec<u8>>> {
    let fd = openat(dir, ".", OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC, Mode::empty())?;
    let mut d = nix::dir::Dir::from_fd(fd)?;
    let mut out = Vec::new();
    for e in d.iter() {
        let e = e?;
        let n = e.file_name().to_bytes();
        if n != b"." && n != b".." {
            out.push(n.to_vec());
        }
    }
    Ok(out)
}
