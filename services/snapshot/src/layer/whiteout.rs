//! Whiteouts: `.wh.<name>` hides `<name>` of the layers below, `.wh..wh..opq` hides all of
//! a directory's lower content. On overlayfs they become overlay's own markers in the upper
//! dir (a 0/0 character device; `trusted.overlay.opaque=y`); on native they are carried out
//! as deletions. Either way a whiteout spares what this same layer wrote, and the name it
//! hides must be a plain component (`.wh..` and `.wh...` are refused). The whiteout's
//! target itself is never followed: `.wh.link` removes the symlink `link`, not its target.

use std::os::fd::AsFd;

use berth_ipc::{Error, Result};
use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::stat::{Mode, SFlag, makedev, mknodat};

use super::extract::{Extractor, Whiteouts};
use super::fsops::{self, errno, list_dir, make_parent, open_child_dir, remove_all};
use super::path::{self, EntryPath};

/// The whiteout prefix.
pub const PREFIX: &str = ".wh.";
/// The opaque-directory marker's name.
pub const OPAQUE: &str = ".wh..wh..opq";
/// The overlayfs xattr marking an opaque directory.
pub const OVERLAY_OPAQUE_XATTR: &std::ffi::CStr = c"trusted.overlay.opaque";

/// Carries out the whiteout entry `p` (in directory `parent`, hiding `target`).
pub fn apply(x: &mut Extractor, p: &EntryPath, parent: &[Vec<u8>], target: &[u8], raw: &[u8]) -> Result<()> {
    let dir_path = path::join(parent);
    if target == &OPAQUE.as_bytes()[PREFIX.len()..] {
        return opaque(x, parent, &dir_path, raw);
    }
    if target.is_empty() || target == b"." || target == b".." || target.contains(&b'/') {
        return Err(Error::invalid(format!("layer entry {:?}: bad whiteout", path::show(raw))));
    }
    let mut hidden = dir_path.clone();
    if !hidden.is_empty() {
        hidden.push(b'/');
    }
    hidden.extend_from_slice(target);
    if x.written.contains(&hidden) {
        return Ok(());
    }
    x.invalidate(&hidden);
    let _ = p;
    match x.mode {
        Whiteouts::Overlay => {
            let dir = make_parent(x.root.as_fd(), parent, raw)?;
            remove_all(dir.as_fd(), target).map_err(|e| errno("whiteout", raw, e))?;
            mknodat(dir.as_fd(), target, SFlag::S_IFCHR, Mode::empty(), makedev(0, 0))
                .map_err(|e| errno("whiteout", raw, e))?;
        }
        Whiteouts::Delete => match fsops::open_dir_in_root(x.root.as_fd(), &dir_path) {
            Ok(dir) => remove_all(dir.as_fd(), target).map_err(|e| errno("whiteout", raw, e))?,
            Err(Errno::ENOENT) => {}
            Err(e) => return Err(errno("whiteout", raw, e)),
        },
    }
    Ok(())
}

/// An opaque marker: on overlayfs the xattr on the (upper) directory; on native every
/// child this layer did not write is removed.
fn opaque(x: &mut Extractor, parent: &[Vec<u8>], dir_path: &[u8], raw: &[u8]) -> Result<()> {
    match x.mode {
        Whiteouts::Overlay => {
            let dir = make_parent(x.root.as_fd(), parent, raw)?;
            let fd = open_child_dir(dir.as_fd(), b".", OFlag::O_RDONLY).map_err(|e| errno("open", raw, e))?;
            crate::sys::fsetxattr(fd.as_fd(), OVERLAY_OPAQUE_XATTR, b"y")
                .map_err(|e| errno("opaque", raw, Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO))))?;
        }
        Whiteouts::Delete => {
            let dir = match fsops::open_dir_in_root(x.root.as_fd(), dir_path) {
                Ok(d) => d,
                Err(Errno::ENOENT) => return Ok(()),
                Err(e) => return Err(errno("opaque", raw, e)),
            };
            let rd = open_child_dir(dir.as_fd(), b".", OFlag::O_RDONLY).map_err(|e| errno("open", raw, e))?;
            for name in list_dir(rd.as_fd()).map_err(|e| errno("opaque", raw, e))? {
                let mut child = dir_path.to_vec();
                if !child.is_empty() {
                    child.push(b'/');
                }
                child.extend_from_slice(&name);
                if !x.written.contains(&child) {
                    x.invalidate(&child);
                    remove_all(rd.as_fd(), &name).map_err(|e| errno("opaque", raw, e))?;
                }
            }
        }
    }
    Ok(())
}

/// Whether the directory `p` carries overlayfs' opaque mark.
pub fn is_opaque(p: &std::path::Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let Ok(c) = std::ffi::CString::new(p.as_os_str().as_bytes()) else { return false };
    matches!(crate::sys::lgetxattr(&c, OVERLAY_OPAQUE_XATTR), Ok(Some(v)) if v == b"y")
}
