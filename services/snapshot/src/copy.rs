//! Whole-tree helpers: the native backend's full copy of a parent, and disk usage of a
//! snapshot's own directory.

use std::collections::HashSet;
use std::os::fd::{AsFd, BorrowedFd};
use std::path::Path;

use berth_ipc::snapshot::Usage;
use berth_ipc::{Error, Result};

use crate::walk;

/// Copies the tree `from` into the existing, empty directory `to`, keeping owners, modes,
/// times, xattrs, hardlinks, device nodes and fifos (`cp -a`, with reflinks when the file
/// system has them).
pub fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    let mut src = from.as_os_str().to_owned();
    src.push("/.");
    let out = std::process::Command::new("cp")
        .args(["-a", "--reflink=auto", "--no-target-directory"])
        .arg(&src)
        .arg(to)
        .output()
        .map_err(|e| Error::internal_cause(format_args!("copy snapshot {}: cp", from.display()), e))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        return Err(Error::internal_cause(format_args!("copy snapshot {}", from.display()), err.trim()));
    }
    Ok(())
}

/// Bytes allocated and inodes used under `dir` (hardlinked files counted once). Walked by
/// directory fds ([`crate::walk`]): no symlink is followed, and a directory that changed
/// between its listing and its open (a live container swapping it for a symlink) is counted
/// as listed but not entered.
pub fn usage(dir: &Path) -> Result<Usage> {
    let mut u = Usage::default();
    let mut seen = HashSet::new();
    let root = walk::open_root(dir)?;
    usage_of(root.as_fd(), &[], &mut u, &mut seen)?;
    Ok(u)
}

fn usage_of(dir: BorrowedFd<'_>, rel: &[u8], u: &mut Usage, seen: &mut HashSet<(u64, u64)>) -> Result<()> {
    for c in walk::children(dir, rel)? {
        let st = &c.st;
        let is_dir = walk::is(st, libc::S_IFDIR);
        if st.st_nlink > 1 && !is_dir && !seen.insert((st.st_dev, st.st_ino)) {
            continue;
        }
        u.inodes += 1;
        u.size += st.st_blocks.max(0) as u64 * 512;
        if is_dir {
            let rel = walk::join(rel, &c.name);
            if let Some(d) = walk::open_dir(dir, &c, &rel)? {
                usage_of(d.as_fd(), &rel, u, seen)?;
            }
        }
    }
    Ok(())
}
