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

use std::collections::BTreeMap;
use std::fs::Metadata;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use berth_ipc::snapshot::{Descriptor, Diff, LABEL_UNCOMPRESSED, MEDIA_TYPE_LAYER_GZIP};
use berth_ipc::{Error, Result};

use crate::backend::{BackendKind, io_err};
use crate::layer::whiteout::{OPAQUE, PREFIX, is_opaque};
use crate::service::{SnapshotService, blocking};
use crate::tarwrite::{LayerWriter, Written, read_xattrs};

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
    let written = blocking(move || {
        let file = std::fs::File::create(&t2).map_err(|e| io_err("create", &t2, e))?;
        let mut w = LayerWriter::new(file);
        if overlay {
            walk_upper(&mut w, &upper_dir, &[])?;
        } else if let Some((lower, upper)) = views {
            let base = t2.with_extension("mnt");
            let l = lower.map(|m| TempMount::new(&m, &base.with_extension("lower"))).transpose()?;
            let u = TempMount::new(&upper, &base.with_extension("upper"))?;
            walk_two(&mut w, l.as_ref().map(|m| m.dir.as_path()), &u.dir, &[])?;
        } else {
            walk_two(&mut w, lower_dir.as_deref(), &upper_dir, &[])?;
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
        use nix::mount::{MsFlags, mount};
        std::fs::create_dir(dir).map_err(|e| io_err("create", dir, e))?;
        let guard = TempMount { dir: dir.to_path_buf() };
        let m = mounts.first().ok_or_else(|| Error::internal("diff: no mounts"))?;
        let err = |e: nix::errno::Errno| {
            Error::internal(format!("diff: mount {}: {}", dir.display(), e.desc().to_lowercase()))
        };
        if m.kind == "bind" {
            mount(Some(m.source.as_str()), dir, None::<&str>, MsFlags::MS_BIND, None::<&str>).map_err(err)?;
            let ro = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY;
            mount(None::<&str>, dir, None::<&str>, ro, None::<&str>).map_err(err)?;
        } else {
            let data = m.options.join(",");
            mount(Some("overlay"), dir, Some("overlay"), MsFlags::MS_RDONLY, Some(data.as_str()))
                .map_err(err)?;
        }
        Ok(guard)
    }
}

impl Drop for TempMount {
    fn drop(&mut self) {
        let _ = nix::mount::umount2(&self.dir, nix::mount::MntFlags::MNT_DETACH);
        let _ = std::fs::remove_dir(&self.dir);
    }
}

fn sorted_children(dir: &Path) -> Result<Vec<(Vec<u8>, PathBuf, Metadata)>> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).map_err(|e| io_err("read", dir, e))? {
        let e = e.map_err(|e| io_err("read", dir, e))?;
        let p = e.path();
        let m = p.symlink_metadata().map_err(|err| io_err("stat", &p, err))?;
        out.push((e.file_name().as_bytes().to_vec(), p, m));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

fn child(prefix: &[u8], name: &[u8]) -> Vec<u8> {
    let mut p = prefix.to_vec();
    if !p.is_empty() {
        p.push(b'/');
    }
    p.extend_from_slice(name);
    p
}

fn is_whiteout(m: &Metadata) -> bool {
    m.file_type().is_char_device() && m.rdev() == 0
}

/// Writes an overlay upper dir as a layer.
fn walk_upper(w: &mut LayerWriter, dir: &Path, rel: &[u8]) -> Result<()> {
    for (name, path, m) in sorted_children(dir)? {
        let name_rel = child(rel, &name);
        if is_whiteout(&m) {
            w.marker(&child(rel, &[PREFIX.as_bytes(), &name].concat()))?;
            continue;
        }
        w.add(&name_rel, &path, &m)?;
        if m.is_dir() {
            if is_opaque(&path) {
                w.marker(&child(&name_rel, OPAQUE.as_bytes()))?;
            }
            walk_upper(w, &path, &name_rel)?;
        }
    }
    Ok(())
}

/// Writes what differs between the trees `lower` (none: empty) and `upper`.
fn walk_two(w: &mut LayerWriter, lower: Option<&Path>, upper: &Path, rel: &[u8]) -> Result<()> {
    let ups = sorted_children(upper)?;
    let lows = match lower {
        Some(l) => sorted_children(l)?,
        None => Vec::new(),
    };
    let lower_map: BTreeMap<&[u8], (&PathBuf, &Metadata)> =
        lows.iter().map(|(n, p, m)| (n.as_slice(), (p, m))).collect();
    for (name, _, _) in &lows {
        if !ups.iter().any(|(n, _, _)| n == name) {
            w.marker(&child(rel, &[PREFIX.as_bytes(), name].concat()))?;
        }
    }
    for (name, path, m) in &ups {
        let name_rel = child(rel, name);
        let low = lower_map.get(name.as_slice());
        let both_dirs = low.is_some_and(|(_, lm)| lm.is_dir()) && m.is_dir();
        let changed = match low {
            None => true,
            Some((lp, lm)) => !same(lp, lm, path, m)?,
        };
        if changed {
            w.add(&name_rel, path, m)?;
        }
        if m.is_dir() {
            let lower_child = if both_dirs { low.map(|(p, _)| p.as_path()) } else { None };
            walk_two(w, lower_child, path, &name_rel)?;
        }
    }
    Ok(())
}

/// Whether two entries are the same for a layer's purposes.
fn same(lp: &Path, lm: &Metadata, up: &Path, um: &Metadata) -> Result<bool> {
    let kind = |m: &Metadata| m.mode() & libc::S_IFMT;
    if kind(lm) != kind(um) || lm.mode() != um.mode() || lm.uid() != um.uid() || lm.gid() != um.gid() {
        return Ok(false);
    }
    if um.is_dir() {
        return Ok(read_xattrs(lp)? == read_xattrs(up)?);
    }
    if lm.mtime() != um.mtime()
        || lm.mtime_nsec() != um.mtime_nsec()
        || lm.size() != um.size()
        || lm.rdev() != um.rdev()
    {
        return Ok(false);
    }
    if um.file_type().is_symlink() {
        let rl = |p: &Path| std::fs::read_link(p).map_err(|e| io_err("readlink", p, e));
        return Ok(rl(lp)? == rl(up)?);
    }
    if read_xattrs(lp)? != read_xattrs(up)? {
        return Ok(false);
    }
    if um.is_file() && um.mtime_nsec() == 0 {
        return same_content(lp, up);
    }
    Ok(true)
}

fn same_content(a: &Path, b: &Path) -> Result<bool> {
    let open = |p: &Path| std::fs::File::open(p).map_err(|e| io_err("open", p, e));
    let (mut fa, mut fb) = (open(a)?, open(b)?);
    let (mut ba, mut bb) = (vec![0u8; 64 << 10], vec![0u8; 64 << 10]);
    loop {
        let na = read_full(&mut fa, &mut ba).map_err(|e| io_err("read", a, e))?;
        let nb = read_full(&mut fb, &mut bb).map_err(|e| io_err("read", b, e))?;
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
