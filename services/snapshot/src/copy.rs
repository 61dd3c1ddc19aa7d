//! Whole-tree helpers: the native backend's full copy of a parent, and disk usage of a
//! snapshot's own directory.

use std::collections::HashSet;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use berth_ipc::snapshot::Usage;
use berth_ipc::{Error, Result};

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
        .map_err(|e| Error::internal(format!("copy snapshot {}: cp: {e}", from.display())))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        return Err(Error::internal(format!("copy snapshot {}: {}", from.display(), err.trim())));
    }
    Ok(())
}

/// Bytes allocated and inodes used under `dir` (hardlinked files counted once; symlinks
/// not followed).
pub fn usage(dir: &Path) -> Result<Usage> {
    let mut u = Usage::default();
    let mut seen = HashSet::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let rd = std::fs::read_dir(&d).map_err(|e| crate::backend::io_err("read", &d, e))?;
        for e in rd {
            let e = e.map_err(|e| crate::backend::io_err("read", &d, e))?;
            let m =
                e.path().symlink_metadata().map_err(|err| crate::backend::io_err("stat", &e.path(), err))?;
            if m.nlink() > 1 && !m.is_dir() && !seen.insert((m.dev(), m.ino())) {
                continue;
            }
            u.inodes += 1;
            u.size += m.blocks() * 512;
            if m.is_dir() {
                stack.push(e.path());
            }
        }
    }
    Ok(u)
}
