//! Mounting a snapshot's mount list on a directory (the bundle's `rootfs/`) and taking it
//! down again: [`berth_oci::mount`] with the runtime's choices (a container's rootfs as the
//! list says, a lookup view restricted, busy mounts detached).

use std::path::Path;

use berth_ipc::Result;
use berth_ipc::snapshot::Mount;
use berth_oci::mount::{Busy, Purpose};

pub use berth_oci::mount::is_mounted;

/// Mounts `mounts` (as the snapshot service lists them: one bind or one overlay) on `target`.
pub fn mount_all(mounts: &[Mount], target: &Path) -> Result<()> {
    berth_oci::mount::mount_all(mounts, target, Purpose::Rootfs)
}

/// Mounts an image's rootfs on `target` for the host to read files of it (the spec's
/// `/etc/passwd`): read-only, `nosuid`, `nodev`.
pub fn mount_for_lookup(mounts: &[Mount], target: &Path) -> Result<()> {
    berth_oci::mount::mount_all(mounts, target, Purpose::HostView)
}

/// Unmounts everything on `target` (lazily if busy); not mounted is fine.
pub fn unmount_all(target: &Path) -> Result<()> {
    berth_oci::mount::unmount_all(target, Busy::Detach)
}
