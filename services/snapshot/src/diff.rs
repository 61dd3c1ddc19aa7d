//! `Diff`: the changes from `lower` to `upper` as a gzip layer, stored through [`Blobs`]
//! with its diff_id as the `containerd.io/uncompressed` label.
//!
//! On overlayfs, when `upper`'s parent is `lower`, the upper directory *is* the change set:
//! it is written as it stands, overlay whiteouts (char 0/0) turned back into `.wh.<name>`
//! and opaque directories into `<dir>/.wh..wh..opq`. Otherwise (native full copies, or two
//! overlayfs snapshots further apart, whose views are mounted read-only for the walk) the
//! two trees are walked side by side: what is new or changed in `upper` is written, what
//! `upper` lacks becomes a whiteout. Either way, applying the result onto `lower` gives
//! `upper`'s view.
//!
//! [`Blobs`]: crate::blobs::Blobs

use std::io::Read;
use std::os::fd::{AsFd, BorrowedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use berth_ipc::snapshot::{Descriptor, Diff, LABEL_UNCOMPRESSED, MEDIA_TYPE_LAYER_GZIP};
use berth_ipc::{Error, Result};
use berth_oci::mount::{Busy, Purpose, mount_all, unmount_all};

use crate::backend::BackendKind;
use crate::layer::whiteout::{OPAQUE, PREFIX};
use crate::service::SnapshotService;
use crate::tarwrite::{LayerWriter, Written};
use crate::walk::{self, Opened, join};
use berth_service_kit::blocking;
use nix::sys::stat::FileStat;

/// Runs a diff.
pub async fn diff(svc: &SnapshotService, r: Diff) -> Result<Descriptor> {
    let b = svc.backend(&r.snapshotter)?;
    let (upper_dir, lower_dir, upper_parent) = {
        let index = b.lock();
        let u = index.get(&r.upper)?;
        let l = r.lower.as_deref().map(|l| index.get(l).map(|x| x.id)).transpose()?;
        (b.fs_dir(u.id), l.map(|id| b.fs_dir(id)), u.parent.clone())
    };
    let overlay = b.kind() == BackendKind::Overlay && upper_parent == r.lower;
    let views = if b.kind() == BackendKind::Overlay && !overlay {
        let lower = r.lower.as_deref().map(|l| b.view_mounts(l)).transpose()?;
        Some((lower, b.view_mounts(&r.upper)?))
    } else {
        None
    };
    static N: AtomicU64 = AtomicU64::new(0);
    let tmp = b.dir().join("tmp").join(format!(
        "diff-{}-{}.tar.gz",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let t2 = tmp.clone();
    let written = blocking("snapshot task", move || {
        let file = std::fs::File::create(&t2).map_err(|e| Error::io_at("create", &t2, e))?;
        let mut w = LayerWriter::new(file);
        if overlay {
            walk_upper(&mut w, walk::open_root(&upper_dir)?.as_fd(), &[])?;
        } else if let Some((lower, upper)) = views {
            let base = t2.with_extension("mnt");
            let l = lower.map(|m| TempMount::new(&m, &base.with_extension("lower"))).transpose()?;
            let u = TempMount::new(&upper, &base.with_extension("upper"))?;
            let l = l.map(|m| walk::open_root(&m.dir)).transpose()?;
            walk_two(&mut w, l.as_ref().map(|d| d.as_fd()), walk::open_root(&u.dir)?.as_fd(), &[])?;
        } else {
            let l = lower_dir.as_deref().map(walk::open_root).transpose()?;
            walk_two(&mut w, l.as_ref().map(|d| d.as_fd()), walk::open_root(&upper_dir)?.as_fd(), &[])?;
        }
        w.finish()
    })
    .await;
    let Written { digest, size, diff_id } = match written {
        Ok(w) => w,
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
    };
    let mut labels = r.labels.clone();
    labels.insert(LABEL_UNCOMPRESSED.to_string(), diff_id.to_string());
    if let Err(e) = svc.blobs.put(tmp.clone(), digest, size, labels).await {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    let _ = std::fs::remove_file(&tmp);
    Ok(Descriptor { media_type: MEDIA_TYPE_LAYER_GZIP.to_string(), digest, size, diff_id })
}

/// A read-only mount on a fresh directory, unmounted and removed when dropped.
struct TempMount {
    dir: PathBuf,
}

impl TempMount {
    fn new(mounts: &[berth_ipc::snapshot::Mount], dir: &Path) -> Result<TempMount> {
        std::fs::create_dir(dir).map_err(|e| Error::io_at("create", dir, e))?;
        let guard = TempMount { dir: dir.to_path_buf() };
        if mounts.is_empty() {
            return Err(Error::internal("diff: no mounts"));
        }
        mount_all(mounts, dir, Purpose::HostView)
            .map_err(|e| Error::new(e.code, format!("diff: {}", e.message)))?;
        Ok(guard)
    }
}

impl Drop for TempMount {
    fn drop(&mut self) {
        let _ = unmount_all(&self.dir, Busy::Detach);
        let _ = std::fs::remove_dir(&self.dir);
    }
}

fn is_whiteout(st: &FileStat) -> bool {
    walk::is(st, libc::S_IFCHR) && st.st_rdev == 0
}

/// Writes an overlay upper dir (the directory `dir`, layer path `rel`) as a layer.
fn walk_upper(w: &mut LayerWriter, dir: BorrowedFd<'_>, rel: &[u8]) -> Result<()> {
    for name in walk::names(dir, rel)? {
        let name_rel = join(rel, &name);
        let Some(o) = walk::open_entry(dir, &name, &name_rel)? else { continue };
        if is_whiteout(&o.st) {
            w.marker(&join(rel, &[PREFIX.as_bytes(), &name].concat()))?;
            continue;
        }
        w.add(&name_rel, &o)?;
        if walk::is(&o.st, libc::S_IFDIR) {
            let d = walk::listing(&o, &name_rel)?;
            drop(o);
            if walk::is_opaque(d.as_fd()) {
                w.marker(&join(&name_rel, OPAQUE.as_bytes()))?;
            }
            walk_upper(w, d.as_fd(), &name_rel)?;
        }
    }
    Ok(())
}

fn fd_err(rel: &[u8], e: std::io::Error) -> Error {
    Error::unavailable(format!("diff: entry {:?}: {e}", crate::layer::path::show(rel)))
}

/// Writes what differs between the directories `lower` (none: empty) and `upper`.
fn walk_two(
    w: &mut LayerWriter,
    lower: Option<BorrowedFd<'_>>,
    upper: BorrowedFd<'_>,
    rel: &[u8],
) -> Result<()> {
    let ups = walk::names(upper, rel)?;
    let lows = match lower {
        Some(l) => walk::names(l, rel)?,
        None => Vec::new(),
    };
    for name in &lows {
        if ups.binary_search(name).is_err() {
            w.marker(&join(rel, &[PREFIX.as_bytes(), name].concat()))?;
        }
    }
    for name in &ups {
        let name_rel = join(rel, name);
        let Some(up) = walk::open_entry(upper, name, &name_rel)? else { continue };
        let low = match lower {
            Some(l) if lows.binary_search(name).is_ok() => walk::open_entry(l, name, &name_rel)?,
            _ => None,
        };
        let changed = match &low {
            Some(lo) => !same(lo, &up, &name_rel)?,
            None => true,
        };
        if changed {
            w.add(&name_rel, &up)?;
        }
        if walk::is(&up.st, libc::S_IFDIR) {
            let ud = walk::listing(&up, &name_rel)?;
            let ld = match low {
                Some(lo) if walk::is(&lo.st, libc::S_IFDIR) => Some(walk::listing(&lo, &name_rel)?),
                _ => None,
            };
            drop(up);
            walk_two(w, ld.as_ref().map(|d| d.as_fd()), ud.as_fd(), &name_rel)?;
        }
    }
    Ok(())
}

/// Whether two opened entries are the same for a layer's purposes.
fn same(l: &Opened, u: &Opened, rel: &[u8]) -> Result<bool> {
    let (lm, um) = (&l.st, &u.st);
    if lm.st_mode != um.st_mode || lm.st_uid != um.st_uid || lm.st_gid != um.st_gid {
        return Ok(false);
    }
    if walk::is(um, libc::S_IFDIR) {
        return Ok(walk::xattrs(l.fd.as_fd(), rel)? == walk::xattrs(u.fd.as_fd(), rel)?);
    }
    if lm.st_mtime != um.st_mtime
        || lm.st_mtime_nsec != um.st_mtime_nsec
        || lm.st_size != um.st_size
        || lm.st_rdev != um.st_rdev
    {
        return Ok(false);
    }
    if walk::is(um, libc::S_IFLNK) {
        return Ok(walk::read_link(l, rel)? == walk::read_link(u, rel)?);
    }
    if walk::xattrs(l.fd.as_fd(), rel)? != walk::xattrs(u.fd.as_fd(), rel)? {
        return Ok(false);
    }
    if walk::is(um, libc::S_IFREG) && um.st_mtime_nsec == 0 {
        return same_content(l, u, rel);
    }
    Ok(true)
}

fn same_content(a: &Opened, b: &Opened, rel: &[u8]) -> Result<bool> {
    let (mut fa, mut fb) = (walk::read_regular(a, rel)?, walk::read_regular(b, rel)?);
    let (mut ba, mut bb) = (vec![0u8; 64 << 10], vec![0u8; 64 << 10]);
    loop {
        let na = read_full(&mut fa, &mut ba).map_err(|e| fd_err(rel, e))?;
        let nb = read_full(&mut fb, &mut bb).map_err(|e| fd_err(rel, e))?;
        if na != nb || ba[..na] != bb[..nb] {
            return Ok(false);
        }
        if na == 0 {
            return Ok(true);
        }
    }
}

fn read_full(f: &mut std::fs::File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}
