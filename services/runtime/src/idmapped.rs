//! The rootfs of a container in a user namespace (a pod with `hostUsers: false`), through
//! id-mapped mounts.
//!
//! The image's files are owned by host ids (0 for most); seen from a user namespace that
//! maps container 0 to host 100000 they would all be `nobody`. So each lower layer is cloned
//! (`open_tree(OPEN_TREE_CLONE)`) and id-mapped with the pod's user namespace
//! (`mount_setattr(MOUNT_ATTR_IDMAP)`): on-disk 0 reads as host 100000, which is root
//! inside. The clones are attached under `lower/<n>` just long enough for overlayfs to take
//! them as `lowerdir` (it keeps private clones of its layers), then detached. The upper dir
//! stays unmapped, so what the container writes is owned on disk by the host ids it runs as,
//! and its top directory is given to the container's root. A single-layer (bind) rootfs is
//! an id-mapped clone moved into place.
//!
//! Everything lives at `<state>/roots/<ns>/<id>/` (dirs 0711, unlike the bundle's 0700
//! ancestors: runc's and crun's init run as the mapped root and must reach the rootfs):
//!
//! ```text
//! rootfs/     the overlay (or the id-mapped bind) the OCI runtime pivots into
//! lower/<n>   id-mapped clones of the layers, only while the overlay is being mounted
//! ```
// The new mount API (open_tree, mount_setattr, move_mount) has no wrapper in nix.
#![allow(unsafe_code)]

use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use berth_ipc::snapshot::Mount;
use berth_ipc::{Error, Result};
use nix::mount::{MntFlags, MsFlags};
use oci_spec::runtime::{LinuxNamespaceType, Spec};

const OPEN_TREE_CLONE: libc::c_uint = 1;
const AT_RECURSIVE: libc::c_uint = 0x8000;
const MOUNT_ATTR_RDONLY: u64 = 0x1;
const MOUNT_ATTR_IDMAP: u64 = 0x0010_0000;
const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 0x4;

/// `struct mount_attr` of `mount_setattr(2)`.
#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

/// What a container's spec says of its user namespace: joined by path, root mapped to
/// `root_uid`/`root_gid` on the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Userns {
    /// The user namespace file (the sandbox's `ns/user`).
    pub path: PathBuf,
    /// Host uid of container uid 0.
    pub root_uid: u32,
    /// Host gid of container gid 0.
    pub root_gid: u32,
}

/// The user namespace a container spec joins by path, if any.
pub fn userns_of(spec: &Spec) -> Option<Userns> {
    let linux = spec.linux().as_ref()?;
    let path =
        linux.namespaces().as_ref()?.iter().find(|n| n.typ() == LinuxNamespaceType::User)?.path().clone()?;
    let root = |maps: &Option<Vec<oci_spec::runtime::LinuxIdMapping>>| {
        maps.iter().flatten().find_map(|m| (m.container_id() == 0 && m.size() > 0).then_some(m.host_id()))
    };
    Some(Userns {
        path,
        root_uid: root(linux.uid_mappings()).unwrap_or(0),
        root_gid: root(linux.gid_mappings()).unwrap_or(0),
    })
}

/// `<state>/roots/<ns>/<id>`.
pub fn roots_dir(state: &Path, ns: &str, id: &str) -> PathBuf {
    state.join("roots").join(ns).join(id)
}

fn err(what: impl std::fmt::Display, e: impl std::fmt::Display) -> Error {
    Error::internal_cause(what, e)
}

/// Mounts `mounts` id-mapped through `userns` at `<dir>/rootfs` and answers that path. On
/// failure nothing stays mounted. The kernel must support id-mapped mounts of the layers'
/// filesystem and overlayfs on id-mapped layers (Linux 5.19 and later); an older one gets a
/// clear error, never a chown of the image.
pub fn mount(mounts: &[Mount], dir: &Path, userns: &Userns) -> Result<PathBuf> {
    let mut dirs = std::fs::DirBuilder::new();
    dirs.recursive(true).mode(0o711);
    let rootfs = dir.join("rootfs");
    dirs.create(&rootfs).map_err(|e| err(rootfs.display(), e))?;
    // The whole way down must be searchable by the mapped root (the ancestors too: `roots`
    // and `roots/<ns>` may be older than this call or made by a stricter umask).
    for d in dir.ancestors().take(3) {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o711));
    }
    reachable(&rootfs, userns)?;
    let ns_file = std::fs::File::open(&userns.path)
        .map_err(|e| err(format_args!("user namespace {}", userns.path.display()), e))?;
    let result = match mounts {
        [m] if m.kind == "overlay" => overlay(m, dir, &rootfs, &ns_file, userns),
        [m] if m.kind == "bind" || m.options.iter().any(|o| o == "bind" || o == "rbind") => {
            let ro = m.options.iter().any(|o| o == "ro");
            idmapped_clone(Path::new(&m.source), &ns_file, ro).and_then(|fd| attach(&fd, &rootfs))
        }
        _ => Err(Error::invalid(format!(
            "a rootfs of {} mounts ({}) cannot be id-mapped; one overlay or one bind can",
            mounts.len(),
            mounts.iter().map(|m| m.kind.as_str()).collect::<Vec<_>>().join(", ")
        ))),
    };
    clear_lowers(dir);
    match result {
        Ok(()) => Ok(rootfs),
        Err(e) => {
            let _ = nix::mount::umount2(&rootfs, MntFlags::MNT_DETACH);
            Err(e)
        }
    }
}

/// Fails unless every ancestor of `path` can be searched by the container's root (as host
/// `root_uid`, which is neither their owner nor, usually, in their group): runc's and
/// crun's init run as it when they mount and pivot into the rootfs.
fn reachable(path: &Path, userns: &Userns) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    for dir in path.ancestors().skip(1) {
        let Ok(md) = std::fs::metadata(dir) else { continue };
        let mode = md.mode();
        let ok = if md.uid() == userns.root_uid {
            mode & 0o100 != 0
        } else if md.gid() == userns.root_gid {
            mode & 0o010 != 0
        } else {
            mode & 0o001 != 0
        };
        if !ok {
            return Err(Error::precondition(format!(
                "{} (mode {:o}) cannot be searched by the pod's root (host uid {}); a user-namespaced container's rootfs must be reachable: make it 0711",
                dir.display(),
                mode & 0o7777,
                userns.root_uid
            )));
        }
    }
    Ok(())
}

fn overlay(m: &Mount, dir: &Path, rootfs: &Path, ns: &std::fs::File, userns: &Userns) -> Result<()> {
    let mut data = Vec::new();
    let mut flags = MsFlags::empty();
    let mut lowers = Vec::new();
    for opt in &m.options {
        match opt.split_once('=') {
            Some(("lowerdir", list)) => lowers.extend(list.split(':').map(PathBuf::from)),
            Some(("upperdir", upper)) => {
                // The overlay's root is the upper dir's top: it must be root's inside.
                std::os::unix::fs::chown(upper, Some(userns.root_uid), Some(userns.root_gid))
                    .map_err(|e| err(format_args!("chown of upper dir {upper}"), e))?;
                data.push(opt.clone());
            }
            _ if opt == "ro" => flags |= MsFlags::MS_RDONLY,
            _ if opt == "rw" => {}
            _ => data.push(opt.clone()),
        }
    }
    if lowers.is_empty() {
        return Err(Error::invalid("overlay rootfs without lowerdir".to_string()));
    }
    let mut mapped = Vec::new();
    for (n, lower) in lowers.iter().enumerate() {
        let at = dir.join("lower").join(n.to_string());
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&at)
            .map_err(|e| err(at.display(), e))?;
        let fd = idmapped_clone(lower, ns, true)?;
        attach(&fd, &at)?;
        mapped.push(at.display().to_string());
    }
    data.push(format!("lowerdir={}", mapped.join(":")));
    let data = data.join(",");
    nix::mount::mount(Some("overlay"), rootfs, Some("overlay"), flags, Some(data.as_str())).map_err(|e| {
        Error::precondition(format!(
            "overlay on id-mapped layers at {}: {e} (this kernel or filesystem may not support overlayfs on id-mapped mounts)",
            rootfs.display()
        ))
    })
}

/// Detaches and removes `<dir>/lower/*` (the overlay, if mounted, holds its own clones).
fn clear_lowers(dir: &Path) {
    let lower = dir.join("lower");
    for e in std::fs::read_dir(&lower).into_iter().flatten().flatten() {
        let _ = nix::mount::umount2(&e.path(), MntFlags::MNT_DETACH);
        let _ = std::fs::remove_dir(e.path());
    }
    let _ = std::fs::remove_dir(&lower);
}

/// A detached, recursive clone of `source`, id-mapped through user namespace `ns`.
fn idmapped_clone(source: &Path, ns: &std::fs::File, read_only: bool) -> Result<OwnedFd> {
    let what = || format!("id-mapped clone of {}", source.display());
    let path = CString::new(source.as_os_str().as_encoded_bytes()).map_err(|e| err(what(), e))?;
    // SAFETY: open_tree with a valid NUL-terminated path; the answer is a new fd or -1.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_open_tree,
            libc::AT_FDCWD,
            path.as_ptr(),
            OPEN_TREE_CLONE | AT_RECURSIVE | libc::O_CLOEXEC as libc::c_uint,
        )
    };
    if fd < 0 {
        return Err(err(what(), std::io::Error::last_os_error()));
    }
    // SAFETY: `fd` was just returned by open_tree and is owned by nothing else.
    let fd = unsafe { OwnedFd::from_raw_fd(fd as libc::c_int) };
    let attr = MountAttr {
        attr_set: MOUNT_ATTR_IDMAP | if read_only { MOUNT_ATTR_RDONLY } else { 0 },
        attr_clr: 0,
        propagation: 0,
        userns_fd: ns.as_raw_fd() as u64,
    };
    let empty = c"";
    // SAFETY: mount_setattr on our fd with an empty path and AT_EMPTY_PATH, `attr` a valid
    // `struct mount_attr` of the size passed.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            fd.as_raw_fd(),
            empty.as_ptr(),
            libc::AT_EMPTY_PATH as libc::c_uint | AT_RECURSIVE,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    if rc < 0 {
        return Err(Error::precondition(format!(
            "{}: {} (this kernel or filesystem may not support id-mapped mounts)",
            what(),
            std::io::Error::last_os_error()
        )));
    }
    Ok(fd)
}

/// Attaches detached mount `fd` on `target`.
fn attach(fd: &OwnedFd, target: &Path) -> Result<()> {
    let to = CString::new(target.as_os_str().as_encoded_bytes()).map_err(|e| err(target.display(), e))?;
    let empty = c"";
    // SAFETY: move_mount from our fd (empty path, F_EMPTY_PATH) to a NUL-terminated path.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            fd.as_raw_fd(),
            empty.as_ptr(),
            libc::AT_FDCWD,
            to.as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH,
        )
    };
    if rc < 0 {
        return Err(err(
            format_args!("attach id-mapped mount on {}", target.display()),
            std::io::Error::last_os_error(),
        ));
    }
    Ok(())
}

/// Unmounts and removes `<state>/roots/<ns>/<id>` (and its namespace's dir once empty);
/// nothing there is fine.
pub fn unmount(dir: &Path) -> Result<()> {
    if !dir.exists() {
        return Ok(());
    }
    clear_lowers(dir);
    let rootfs = dir.join("rootfs");
    crate::mount::unmount_all(&rootfs)?;
    std::fs::remove_dir_all(dir).or_else(|e| match e.kind() {
        std::io::ErrorKind::NotFound => Ok(()),
        _ => Err(err(dir.display(), e)),
    })?;
    if let Some(parent) = dir.parent() {
        let _ = std::fs::remove_dir(parent);
    }
    Ok(())
}

/// At start: every `roots/<ns>/<id>` whose task bundle is gone (a delete or failed create
/// cut off by a crash) is unmounted and removed.
pub fn reconcile(state: &Path) {
    for ns in std::fs::read_dir(state.join("roots")).into_iter().flatten().flatten() {
        let Ok(ns_name) = ns.file_name().into_string() else { continue };
        for id in std::fs::read_dir(ns.path()).into_iter().flatten().flatten() {
            let Ok(id_name) = id.file_name().into_string() else { continue };
            if !crate::bundle::Bundle::new(state, &ns_name, &id_name).dir.exists() {
                tracing::warn!(namespace = %ns_name, id = %id_name, "removing an id-mapped rootfs without a task");
                if let Err(e) = unmount(&id.path()) {
                    tracing::warn!(namespace = %ns_name, id = %id_name, error = %e, "id-mapped rootfs not removed");
                }
            }
        }
    }
}
