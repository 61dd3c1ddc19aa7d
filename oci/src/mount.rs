//! Applying a snapshot's mount list (as the snapshot service hands it out: one bind or one
//! overlay) to a directory, and taking it down again. The one copy for the runtime's
//! container rootfs, its read-only lookup mounts, the client's `images mount`, and the
//! snapshot service's diff views.
//!
//! A mount is a bind when its type is `bind` or an option says `bind`/`rbind`; `rbind` binds
//! recursively. `ro`, `nosuid`, `nodev` and `noexec` become flags (a bind takes them from a
//! remount), `rw` is the default, anything else is filesystem data (passed only when there
//! is some).

use std::path::Path;

use berth_ipc::snapshot::Mount;
use berth_ipc::{Error, Result};
use nix::mount::{MntFlags, MsFlags};

/// What the mount is for, deciding the flags added to the list's own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// A container's root filesystem: the list's options only.
    Rootfs,
    /// A view the host reads (a user's `images mount`, the runtime's `/etc/passwd` lookup,
    /// a diff's walk): read-only, `nosuid`, `nodev`, so nothing the image supplies can be
    /// opened there as a device, run with its setuid bit, or changed.
    HostView,
}

/// Flags and data of one mount, as [`mount_all`] applies them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Mount flags (`MS_BIND` for binds).
    pub flags: MsFlags,
    /// Filesystem type; `None` for a bind.
    pub fstype: Option<String>,
    /// Filesystem data, `None` when empty.
    pub data: Option<String>,
    /// Flags of the remount a bind needs to take its restrictions, if any.
    pub remount: Option<MsFlags>,
}

const RESTRICT: MsFlags =
    MsFlags::MS_RDONLY.union(MsFlags::MS_NOSUID).union(MsFlags::MS_NODEV).union(MsFlags::MS_NOEXEC);

/// How `m` is mounted for `purpose`.
pub fn plan(m: &Mount, purpose: Purpose) -> Plan {
    let mut flags = match purpose {
        Purpose::Rootfs => MsFlags::empty(),
        Purpose::HostView => MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
    };
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
    if m.kind == "bind" {
        flags |= MsFlags::MS_BIND;
    }
    let bind = flags.contains(MsFlags::MS_BIND);
    let data = data.join(",");
    Plan {
        flags,
        fstype: (!bind).then(|| m.kind.clone()),
        data: (!data.is_empty()).then_some(data),
        remount: (bind && flags.intersects(RESTRICT))
            .then(|| (flags & !MsFlags::MS_REC) | MsFlags::MS_REMOUNT),
    }
}

/// Mounts `mounts` on `target`, in order. On failure, whatever this call mounted is taken
/// down again (detached) before the error returns.
pub fn mount_all(mounts: &[Mount], target: &Path, purpose: Purpose) -> Result<()> {
    for (done, m) in mounts.iter().enumerate() {
        if let Err(e) = mount_one(m, target, purpose) {
            for _ in 0..done {
                let _ = nix::mount::umount2(target, MntFlags::MNT_DETACH);
            }
            return Err(e);
        }
    }
    Ok(())
}

fn mount_one(m: &Mount, target: &Path, purpose: Purpose) -> Result<()> {
    let p = plan(m, purpose);
    nix::mount::mount(Some(m.source.as_str()), target, p.fstype.as_deref(), p.flags, p.data.as_deref())
        .map_err(|e| Error::internal_cause(format_args!("mount {} on {}", m.kind, target.display()), e))?;
    if let Some(flags) = p.remount
        && let Err(e) = nix::mount::mount(None::<&str>, target, None::<&str>, flags, None::<&str>)
    {
        let _ = nix::mount::umount2(target, MntFlags::MNT_DETACH);
        return Err(Error::internal_cause(format_args!("remount {} {flags:?}", target.display()), e));
    }
    Ok(())
}

/// What [`unmount_all`] does with a mount that is busy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Busy {
    /// Detach it lazily (the runtime's teardown: it goes once its last user does).
    Detach,
    /// Fail with `FailedPrecondition` naming the directory (a user's `images unmount`).
    Fail,
}

/// The most mounts stacked on one directory [`unmount_all`] takes down.
pub const MAX_STACKED: usize = 64;

/// Unmounts everything mounted on `target`; not mounted (or not there) is fine.
pub fn unmount_all(target: &Path, busy: Busy) -> Result<()> {
    for _ in 0..MAX_STACKED {
        match nix::mount::umount2(target, MntFlags::empty()) {
            Ok(()) => {}
            Err(nix::Error::EINVAL | nix::Error::ENOENT) => return Ok(()),
            Err(e) if busy == Busy::Fail => {
                return Err(Error::precondition(format!("unmount {}: {e}", target.display())));
            }
            Err(_) => nix::mount::umount2(target, MntFlags::MNT_DETACH)
                .map_err(|e| Error::internal_cause(format_args!("unmount {}", target.display()), e))?,
        }
    }
    Err(Error::internal(format!("unmount {}: over {MAX_STACKED} mounts stacked", target.display())))
}

/// Whether `path` is a mount point (per `/proc/self/mountinfo`, whose paths escape space,
/// tab, newline and backslash as octal).
pub fn is_mounted(path: &Path) -> bool {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else { return false };
    let p = escape(&path.to_string_lossy());
    info.lines().any(|l| l.split(' ').nth(4) == Some(&*p))
}

fn escape(p: &str) -> String {
    let mut out = String::with_capacity(p.len());
    for c in p.chars() {
        match c {
            ' ' | '\t' | '\n' | '\\' => out.push_str(&format!("\\{:03o}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
#[path = "mount_tests.rs"]
mod tests;
