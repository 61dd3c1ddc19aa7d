//! Mounting a snapshot's mount list on a directory (the bundle's `rootfs/`) and taking it
//! down again.

use std::path::Path;

use berth_ipc::snapshot::Mount;
use berth_ipc::{Error, Result};
use nix::mount::{MntFlags, MsFlags};

/// Mounts `mounts` (as the snapshot service lists them: one bind or one overlay) on `target`.
pub fn mount_all(mounts: &[Mount], target: &Path) -> Result<()> {
    for m in mounts {
        let mut flags = MsFlags::empty();
        let mut data = Vec::new();
        for opt in &m.options {
            match opt.as_str() {
                "ro" => flags |= MsFlags::MS_RDONLY,
                "rw" => {}
                "bind" => flags |= MsFlags::MS_BIND,
                "rbind" => flags |= MsFlags::MS_BIND | MsFlags::MS_REC,
                "nosuid" => flags |= MsFlags::MS_NOSUID,
                "nodev" => flags |= MsFlags::MS_NODEV,
                "noexec" => flags |= MsFlags::MS_NOEXEC,
                other => data.push(other),
            }
        }
        let fstype = if m.kind == "bind" {
            flags |= MsFlags::MS_BIND;
            None
        } else {
            Some(m.kind.as_str())
        };
        let data = data.join(",");
        let data = (!data.is_empty()).then_some(data.as_str());
        nix::mount::mount(Some(m.source.as_str()), target, fstype, flags, data)
            .map_err(|e| Error::internal(format!("mount {} on {}: {e}", m.kind, target.display())))?;
        if flags.contains(MsFlags::MS_BIND) && flags.contains(MsFlags::MS_RDONLY) {
            nix::mount::mount(None::<&str>, target, None::<&str>, flags | MsFlags::MS_REMOUNT, None::<&str>)
                .map_err(|e| Error::internal(format!("remount {} read-only: {e}", target.display())))?;
        }
    }
    Ok(())
}

/// Whether `path` is a mount point (per `/proc/self/mountinfo`).
pub fn is_mounted(path: &Path) -> bool {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else { return false };
    let p = path.to_string_lossy();
    info.lines().any(|l| l.split(' ').nth(4) == Some(&*p))
}

/// Unmounts everything on `target` (lazily if busy); not mounted is fine.
pub fn unmount_all(target: &Path) -> Result<()> {
    for _ in 0..8 {
        if !is_mounted(target) {
            return Ok(());
        }
        if nix::mount::umount2(target, MntFlags::empty()).is_err() {
            nix::mount::umount2(target, MntFlags::MNT_DETACH)
                .map_err(|e| Error::internal(format!("unmount {}: {e}", target.display())))?;
        }
    }
    Ok(())
}
