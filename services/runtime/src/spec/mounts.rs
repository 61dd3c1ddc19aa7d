//! A container's bind mounts: `rbind` with the asked propagation (`Private` → `rprivate`,
//! `HostToContainer` → `rslave`, `Bidirectional` → `rshared`), `ro`, and `rro` (every mount
//! under it read-only too: runc ≥ 1.1 and crun ≥ 1.4 on Linux ≥ 5.12).
//!
//! As containerd's CRI: a propagating mount needs its source on a mount that propagates
//! (shared for `Bidirectional`, shared or slave for `HostToContainer`, read from
//! `/proc/self/mountinfo`), and the rootfs propagation is set so it works (`rshared`, or
//! `rslave`).

use std::path::{Component, Path, PathBuf};

use berth_ipc::runtime::{BindMount, Propagation};
use berth_ipc::{Error, Result};
use oci_spec::runtime::Mount;

/// One line of `/proc/self/mountinfo`: where it is mounted and how it propagates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountInfo {
    /// The mount point.
    pub mount_point: PathBuf,
    /// Has a `shared:N` tag.
    pub shared: bool,
    /// Has a `master:N` tag (a slave).
    pub slave: bool,
}

/// `\040`-style escapes of mountinfo undone.
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 3 < b.len() && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c)) {
            let v = (b[i + 1] - b'0') as u32 * 64 + (b[i + 2] - b'0') as u32 * 8 + (b[i + 3] - b'0') as u32;
            out.push(v as u8);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The lines of a mountinfo text (malformed lines skipped).
pub fn parse_mountinfo(text: &str) -> Vec<MountInfo> {
    text.lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split(' ').collect();
            let sep = fields.iter().position(|f| *f == "-")?;
            if sep < 6 {
                return None;
            }
            let tags = &fields[6..sep];
            Some(MountInfo {
                mount_point: PathBuf::from(unescape(fields[4])),
                shared: tags.iter().any(|t| t.starts_with("shared:")),
                slave: tags.iter().any(|t| t.starts_with("master:")),
            })
        })
        .collect()
}

/// The mount `path` (absolute, symlinks resolved) is on: the last mounted of the longest
/// mount points holding it.
pub fn mount_of<'a>(path: &Path, mounts: &'a [MountInfo]) -> Option<&'a MountInfo> {
    let mut best: Option<&MountInfo> = None;
    for m in mounts {
        if path.starts_with(&m.mount_point)
            && best.is_none_or(|b| m.mount_point.components().count() >= b.mount_point.components().count())
        {
            best = Some(m);
        }
    }
    best
}

/// The container's bind mounts and the rootfs propagation they need (`None`: the default);
/// `mountinfo` is the text of `/proc/self/mountinfo`, read only when a mount propagates.
pub fn binds(
    binds: &[BindMount],
    mountinfo: impl Fn() -> Result<String>,
) -> Result<(Vec<Mount>, Option<&'static str>)> {
    let mut table: Option<Vec<MountInfo>> = None;
    let mut rootfs = None;
    let mut out = Vec::with_capacity(binds.len());
    for bind in binds {
        out.push(bind_mount(bind)?);
        if bind.propagation == Propagation::Private {
            continue;
        }
        if table.is_none() {
            table = Some(parse_mountinfo(&mountinfo()?));
        }
        let table = table.as_deref().unwrap_or_default();
        check_propagates(bind, table)?;
        rootfs = match (bind.propagation, rootfs) {
            (Propagation::Bidirectional, _) | (_, Some("rshared")) => Some("rshared"),
            _ => Some("rslave"),
        };
    }
    Ok((out, rootfs))
}

/// A propagating mount's source is on a mount that propagates that way.
fn check_propagates(bind: &BindMount, table: &[MountInfo]) -> Result<()> {
    let source = std::fs::canonicalize(&bind.source)
        .map_err(|e| Error::invalid(format!("mount source {}: {e}", bind.source)))?;
    let Some(m) = mount_of(&source, table) else {
        return Err(Error::invalid(format!(
            "mount source {}: not found in /proc/self/mountinfo",
            bind.source
        )));
    };
    let (ok, need) = match bind.propagation {
        Propagation::Bidirectional => (m.shared, "a shared mount (mount --make-shared)"),
        _ => (m.shared || m.slave, "a shared or slave mount (mount --make-shared or --make-slave)"),
    };
    if !ok {
        return Err(Error::invalid(format!(
            "mount {}: propagation {:?} needs its source on {need}, but {} is mounted on {}, which is private",
            bind.destination,
            bind.propagation,
            bind.source,
            m.mount_point.display()
        )));
    }
    Ok(())
}

fn bind_mount(bind: &BindMount) -> Result<Mount> {
    if !bind.source.starts_with('/') || !bind.destination.starts_with('/') {
        return Err(Error::invalid(format!(
            "mount {}:{}: paths must be absolute",
            bind.source, bind.destination
        )));
    }
    if Path::new(&bind.destination).components().any(|c| matches!(c, Component::ParentDir)) {
        return Err(Error::invalid(format!("mount {}: destination must not contain ..", bind.destination)));
    }
    if !Path::new(&bind.source).exists() {
        return Err(Error::invalid(format!("mount source {}: not found", bind.source)));
    }
    let propagation = match bind.propagation {
        Propagation::Private => "rprivate",
        Propagation::HostToContainer => "rslave",
        Propagation::Bidirectional => "rshared",
    };
    let mut options = vec!["rbind".to_string(), propagation.to_string()];
    if bind.read_only {
        options.push("ro".to_string());
    }
    if bind.recursive_read_only {
        if !bind.read_only {
            return Err(Error::invalid(format!(
                "mount {}: recursive read-only needs the mount read-only",
                bind.destination
            )));
        }
        if bind.propagation != Propagation::Private {
            return Err(Error::invalid(format!(
                "mount {}: recursive read-only needs private propagation",
                bind.destination
            )));
        }
        options.push("rro".to_string());
    }
    let mut m = Mount::default();
    m.set_destination(PathBuf::from(&bind.destination));
    m.set_typ(Some("bind".into()));
    m.set_source(Some(PathBuf::from(&bind.source)));
    m.set_options(Some(options));
    Ok(m)
}
