//! Device nodes of a container: the ones asked for (`LinuxOptions::devices`, read from the
//! host node with `stat`; a directory brings every device under it) and, privileged, every
//! device under the host's `/dev` (as runc's and containerd's privileged specs); plus the
//! cgroup rules: deny everything, then allow each device with its permissions (privileged:
//! allow everything).

use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Component, Path, PathBuf};

use berth_ipc::runtime::Device;
use berth_ipc::{Error, Result};
use oci_spec::runtime::{LinuxDevice, LinuxDeviceCgroup, LinuxDeviceType};

/// `/dev` entries a privileged container does not get from the host: mounts of their own
/// (`pts`, `shm`, `mqueue`), per-process (`fd`), other managers' state, and the console
/// (the runtime makes its own).
const HOST_SKIPPED: [&str; 7] = ["pts", "shm", "fd", "mqueue", ".lxc", ".lxd-mounts", ".udev"];

/// The devices and cgroup rules of a container.
#[derive(Debug, Default)]
pub struct Devices {
    /// Nodes made in the container.
    pub nodes: Vec<LinuxDevice>,
    /// cgroup rules, first deny-all (or, privileged, allow-all).
    pub rules: Vec<LinuxDeviceCgroup>,
}

/// `major(3)` and `minor(3)` of a device number (glibc's encoding).
fn major_minor(rdev: u64) -> (i64, i64) {
    let major = ((rdev >> 8) & 0xfff) | ((rdev >> 32) & !0xfff);
    let minor = (rdev & 0xff) | ((rdev >> 12) & !0xff);
    (major as i64, minor as i64)
}

/// The node at `meta` as device `path` in the container, or `None` when it is not a
/// character or block device.
fn node(path: PathBuf, meta: &std::fs::Metadata) -> Option<LinuxDevice> {
    let ft = meta.file_type();
    let typ = if ft.is_char_device() {
        LinuxDeviceType::C
    } else if ft.is_block_device() {
        LinuxDeviceType::B
    } else {
        return None;
    };
    let (major, minor) = major_minor(meta.rdev());
    let mut d = LinuxDevice::default();
    d.set_path(path);
    d.set_typ(typ);
    d.set_major(major);
    d.set_minor(minor);
    d.set_file_mode(Some(meta.mode() & 0o7777));
    d.set_uid(Some(meta.uid()));
    d.set_gid(Some(meta.gid()));
    Some(d)
}

fn rule(allow: bool, dev: Option<&LinuxDevice>, access: &str) -> LinuxDeviceCgroup {
    let mut r = LinuxDeviceCgroup::default();
    r.set_allow(allow);
    match dev {
        Some(d) => {
            r.set_typ(Some(d.typ()));
            r.set_major(Some(d.major()));
            r.set_minor(Some(d.minor()));
        }
        None => {
            r.set_typ(Some(LinuxDeviceType::A));
        }
    }
    r.set_access(Some(access.to_string()));
    r
}

/// Every device node under `dir` (recursively, not following symlinks), as the same path
/// under `target`; `skip` names the entries of `dir` itself left out.
fn walk(dir: &Path, target: &Path, skip: &[&str], out: &mut Vec<LinuxDevice>) -> std::io::Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)?.filter_map(|e| e.ok()).collect();
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let name = entry.file_name();
        if name.to_str().is_some_and(|n| skip.contains(&n)) {
            continue;
        }
        // A node that vanished since the listing is skipped, as runc does.
        let Ok(meta) = std::fs::symlink_metadata(entry.path()) else { continue };
        if meta.is_dir() {
            walk(&entry.path(), &target.join(&name), &[], out)?;
        } else if let Some(d) = node(target.join(&name), &meta) {
            out.push(d);
        }
    }
    Ok(())
}

/// The permissions `p` of a device rule: a subset of `rwm`, `rwm` when empty.
fn permissions(dev: &Device) -> Result<String> {
    let p = dev.permissions.as_str();
    if p.is_empty() {
        return Ok("rwm".into());
    }
    let mut seen = String::new();
    for c in p.chars() {
        if !matches!(c, 'r' | 'w' | 'm') || seen.contains(c) {
            return Err(Error::invalid(format!(
                "device {}: permissions {p:?}: expected a subset of \"rwm\"",
                dev.host_path
            )));
        }
        seen.push(c);
    }
    Ok(seen)
}

/// The nodes of one asked-for device (several for a directory).
fn asked(dev: &Device) -> Result<Vec<LinuxDevice>> {
    let host = Path::new(&dev.host_path);
    let target = if dev.container_path.is_empty() { &dev.host_path } else { &dev.container_path };
    let target = Path::new(target);
    for (what, p) in [("host path", host), ("container path", target)] {
        if !p.is_absolute() || p.components().any(|c| c == Component::ParentDir) {
            return Err(Error::invalid(format!(
                "device {}: {what} {} must be absolute, without ..",
                dev.host_path,
                p.display()
            )));
        }
    }
    let meta = std::fs::metadata(host)
        .map_err(|e| Error::invalid(format!("device {}: not usable on this host: {e}", dev.host_path)))?;
    if meta.is_dir() {
        let mut out = Vec::new();
        walk(host, target, &[], &mut out)
            .map_err(|e| Error::invalid(format!("device {}: reading the directory: {e}", dev.host_path)))?;
        if out.is_empty() {
            return Err(Error::invalid(format!(
                "device {}: no device nodes in the directory",
                dev.host_path
            )));
        }
        return Ok(out);
    }
    node(target.to_path_buf(), &meta)
        .map(|d| vec![d])
        .ok_or_else(|| Error::invalid(format!("device {}: not a character or block device", dev.host_path)))
}

/// The devices of a container asking for `asked_for`, `privileged` or not; `host_dev` is
/// the host's `/dev` (a parameter for tests).
pub fn devices(asked_for: &[Device], privileged: bool, host_dev: &Path) -> Result<Devices> {
    let mut out = Devices::default();
    if privileged {
        walk(host_dev, Path::new("/dev"), &HOST_SKIPPED, &mut out.nodes).map_err(|e| {
            Error::internal_cause(format_args!("host devices: reading {}", host_dev.display()), e)
        })?;
        out.nodes.retain(|d| d.path() != Path::new("/dev/console"));
        out.rules.push(rule(true, None, "rwm"));
    } else {
        out.rules.push(rule(false, None, "rwm"));
    }
    for dev in asked_for {
        let access = permissions(dev)?;
        for d in asked(dev)? {
            if !privileged {
                out.rules.push(rule(true, Some(&d), &access));
            }
            out.nodes.retain(|n| n.path() != d.path());
            out.nodes.push(d);
        }
    }
    Ok(out)
}
