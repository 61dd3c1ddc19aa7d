//! Mounting a snapshot's mount list on a directory (the bundle's `rootfs/`) and taking it
//! down again.

use std::path::Path;

use berth_ipc::snapshot::Mount;
use berth_ipc::{Error, Result};
use nix::mount::{MntFlags, MsFlags};

/// Mounts `mounts` (as the snapshot service lists them: one bind or one overlay) on `target`.
pub fn mount_all(mounts: &[Mount], target: &Path) -> Result<()> {
    mount_all_with(mounts, target, MsFlags::empty())
}

/// Mounts an image's rootfs on `target` for the host to read files of it (the spec's
/// `/etc/passwd`): read-only, `nosuid`, `nodev`, so nothing the image supplies can be
/// opened there as a device or run with its setuid bit.
pub fn mount_for_lookup(mounts: &[Mount], target: &Path) -> Result<()> {
    mount_all_with(mounts, target, MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV)
}

fn mount_all_with(mounts: &[Mount], target: &Path, extra: MsFlags) -> Result<()> {
    for m in mounts {
        let mut flags = extra;
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
        // A bind mount takes its flags only from a remount.
        let restrict = MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
        if flags.contains(MsFlags::MS_BIND) && flags.intersects(restrict) {
            let flags = (flags & !MsFlags::MS_REC) | MsFlags::MS_REMOUNT;
            if let Err(e) = nix::mount::mount(None::<&str>, target, None::<&str>, flags, None::<&str>) {
                let _ = nix::mount::umount2(target, MntFlags::MNT_DETACH);
                return Err(Error::internal(format!("remount {} {flags:?}: {e}", target.display())));
            }
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
