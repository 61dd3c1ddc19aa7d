//! Shared test helpers: layers built entry by entry with the `tar` crate's low-level header
//! API (so names a normal tool refuses can be written), a canary outside the snapshot root,
//! backends and services on temp dirs, and overlay mounts that are always unmounted.
#![allow(dead_code)]

pub mod service;

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use berth_ipc::snapshot::{Kind, Mount};
use berth_snapshot::{Backend, BackendKind, DirBlobs};
use tar::{EntryType, Header};

/// A layer under construction.
#[derive(Default)]
pub struct Layer {
    out: Vec<u8>,
}

fn header(kind: EntryType, name: &[u8], size: u64, mode: u32) -> Header {
    let mut h = Header::new_gnu();
    h.set_entry_type(kind);
    h.set_size(size);
    h.set_mode(mode);
    h.set_mtime(1_600_000_000);
    h.set_uid(0);
    h.set_gid(0);
    set_name(&mut h, name);
    h
}

/// Writes `name` into the header's name field as is (no checks), up to 100 bytes.
fn set_name(h: &mut Header, name: &[u8]) {
    let f = &mut h.as_old_mut().name;
    f.fill(0);
    f[..name.len().min(100)].copy_from_slice(&name[..name.len().min(100)]);
}

fn set_link(h: &mut Header, target: &[u8]) {
    let f = &mut h.as_old_mut().linkname;
    f.fill(0);
    f[..target.len().min(100)].copy_from_slice(&target[..target.len().min(100)]);
}

impl Layer {
    /// An empty layer.
    pub fn new() -> Self {
        Layer::default()
    }

    fn push(&mut self, h: &mut Header, data: &[u8]) {
        h.set_cksum();
        self.out.extend_from_slice(h.as_bytes());
        self.out.extend_from_slice(data);
        let pad = (512 - data.len() % 512) % 512;
        self.out.extend(std::iter::repeat_n(0u8, pad));
    }

    /// A GNU long-name record for the next entry (names over 100 bytes, or with NULs).
    pub fn long_name(mut self, name: &[u8]) -> Self {
        let mut data = name.to_vec();
        data.push(0);
        let mut h = header(EntryType::GNULongName, b"././@LongLink", data.len() as u64, 0);
        self.push(&mut h, &data);
        self
    }

    /// A PAX record set for the next entry.
    pub fn pax(mut self, records: &[(&str, &[u8])]) -> Self {
        let mut data = Vec::new();
        for (k, v) in records {
            let body = k.len() + v.len() + 3;
            let mut len = body + body.to_string().len();
            if len.to_string().len() + body > len {
                len += 1;
            }
            data.extend(format!("{len} {k}=").as_bytes());
            data.extend_from_slice(v);
            data.push(b'\n');
        }
        let mut h = header(EntryType::XHeader, b"PaxHeader", data.len() as u64, 0o644);
        self.push(&mut h, &data);
        self
    }

    /// A regular file.
    pub fn file(self, name: &str, data: &[u8]) -> Self {
        self.file_mode(name.as_bytes(), data, 0o644)
    }

    /// A regular file with a raw name and mode.
    pub fn file_mode(mut self, name: &[u8], data: &[u8], mode: u32) -> Self {
        let mut h = header(EntryType::Regular, name, data.len() as u64, mode);
        self.push(&mut h, data);
        self
    }

    /// A file owned by `uid:gid`.
    pub fn file_owned(mut self, name: &str, data: &[u8], mode: u32, uid: u64, gid: u64) -> Self {
        let mut h = header(EntryType::Regular, name.as_bytes(), data.len() as u64, mode);
        h.set_uid(uid);
        h.set_gid(gid);
        self.push(&mut h, data);
        self
    }

    /// A directory.
    pub fn dir(mut self, name: &str) -> Self {
        let mut h = header(EntryType::Directory, name.as_bytes(), 0, 0o755);
        self.push(&mut h, &[]);
        self
    }

    /// A directory with a mode.
    pub fn dir_mode(mut self, name: &str, mode: u32) -> Self {
        let mut h = header(EntryType::Directory, name.as_bytes(), 0, mode);
        self.push(&mut h, &[]);
        self
    }

    /// A symlink.
    pub fn symlink(mut self, name: &str, target: &[u8]) -> Self {
        let mut h = header(EntryType::Symlink, name.as_bytes(), 0, 0o777);
        set_link(&mut h, target);
        self.push(&mut h, &[]);
        self
    }

    /// A hardlink with a given mode in its header.
    pub fn hardlink_mode(mut self, name: &str, target: &[u8], mode: u32) -> Self {
        let mut h = header(EntryType::Link, name.as_bytes(), 0, mode);
        set_link(&mut h, target);
        self.push(&mut h, &[]);
        self
    }

    /// A hardlink.
    pub fn hardlink(self, name: &str, target: &[u8]) -> Self {
        self.hardlink_mode(name, target, 0o644)
    }

    /// A device node or fifo.
    pub fn node(mut self, name: &str, kind: EntryType, major: u32, minor: u32, mode: u32) -> Self {
        let mut h = header(kind, name.as_bytes(), 0, mode);
        h.set_device_major(major).expect("major");
        h.set_device_minor(minor).expect("minor");
        self.push(&mut h, &[]);
        self
    }

    /// The finished tar (two zero blocks).
    pub fn tar(mut self) -> Vec<u8> {
        self.out.extend(std::iter::repeat_n(0u8, 1024));
        self.out
    }

    /// The finished tar, gzip-compressed.
    pub fn gzip(self) -> Vec<u8> {
        gzip(&self.tar())
    }
}

/// gzip of `data`.
pub fn gzip(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).expect("gzip");
    e.finish().expect("gzip")
}

/// A directory outside every snapshot root holding `canary` (mode 0644), which no layer
/// may change.
pub struct Canary {
    /// The directory.
    pub dir: tempfile::TempDir,
}

impl Canary {
    /// A fresh canary.
    pub fn new() -> Canary {
        let dir = tempfile::tempdir().expect("canary dir");
        std::fs::write(dir.path().join("canary"), b"canary").expect("canary");
        std::fs::set_permissions(dir.path().join("canary"), std::fs::Permissions::from_mode(0o644))
            .expect("mode");
        Canary { dir }
    }

    /// The canary file's path.
    pub fn file(&self) -> PathBuf {
        self.dir.path().join("canary")
    }

    /// Asserts nothing in the canary dir changed.
    pub fn check(&self) {
        let names: Vec<_> =
            std::fs::read_dir(self.dir.path()).expect("read").map(|e| e.expect("e").file_name()).collect();
        assert_eq!(names, vec![std::ffi::OsString::from("canary")], "canary dir gained entries");
        let m = std::fs::symlink_metadata(self.file()).expect("canary stat");
        assert!(m.is_file(), "canary replaced");
        assert_eq!(m.permissions().mode() & 0o7777, 0o644, "canary mode changed");
        assert_eq!(std::os::unix::fs::MetadataExt::uid(&m), 0, "canary owner changed");
        assert_eq!(std::fs::read(self.file()).expect("read"), b"canary", "canary content changed");
    }
}

/// A backend on a temp root with one fresh active snapshot `k`.
pub struct Env {
    /// The temp root.
    pub root: tempfile::TempDir,
    /// The backend.
    pub backend: Backend,
}

impl Env {
    /// A backend of `kind` with an active snapshot `k`.
    pub fn new(kind: BackendKind) -> Env {
        Env::with_cap(kind, 1 << 34)
    }

    /// Same, with an apply size cap.
    pub fn with_cap(kind: BackendKind, cap: u64) -> Env {
        let root = tempfile::tempdir().expect("root");
        let backend = Backend::open(root.path(), kind, cap).expect("open backend");
        backend.create("k", None, BTreeMap::new(), Kind::Active).expect("prepare");
        Env { root, backend }
    }

    /// The active snapshot's directory.
    pub fn fs(&self) -> PathBuf {
        self.backend.active_dir("k").expect("active dir")
    }

    /// Applies `blob` into `k`.
    pub fn apply(&self, blob: &[u8]) -> berth_ipc::Result<berth_ipc::snapshot::Applied> {
        self.backend.apply("k", blob)
    }
}

/// A blob directory for service tests.
pub fn blob_dir() -> (tempfile::TempDir, Arc<DirBlobs>) {
    let d = tempfile::tempdir().expect("blobs");
    let b = Arc::new(DirBlobs::new(d.path()));
    (d, b)
}

/// Whether overlay mounts work here (root, overlay available).
pub fn can_mount_overlay() -> bool {
    nix::unistd::geteuid().is_root()
        && std::fs::read_to_string("/proc/filesystems").is_ok_and(|s| s.contains("overlay"))
}

/// A mount that is undone when dropped.
pub struct Mounted {
    /// Where it is mounted.
    pub target: PathBuf,
}

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = nix::mount::umount2(&self.target, nix::mount::MntFlags::MNT_DETACH);
    }
}

/// Mounts `mounts` (a snapshot's mount list) on `target`.
pub fn mount(mounts: &[Mount], target: &Path) -> Mounted {
    use nix::mount::MsFlags;
    assert_eq!(mounts.len(), 1, "one mount expected");
    let m = &mounts[0];
    let ro = m.options.iter().any(|o| o == "ro");
    let guard = Mounted { target: target.to_path_buf() };
    if m.kind == "bind" {
        nix::mount::mount(
            Some(m.source.as_str()),
            target,
            None::<&str>,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None::<&str>,
        )
        .expect("bind mount");
        if ro {
            nix::mount::mount(
                None::<&str>,
                target,
                None::<&str>,
                MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY,
                None::<&str>,
            )
            .expect("remount ro");
        }
    } else {
        let data = m
            .options
            .iter()
            .filter(|o| o.as_str() != "ro" && o.as_str() != "rw")
            .cloned()
            .collect::<Vec<_>>()
            .join(",");
        let flags = if ro { MsFlags::MS_RDONLY } else { MsFlags::empty() };
        nix::mount::mount(Some("overlay"), target, Some("overlay"), flags, Some(data.as_str()))
            .expect("overlay mount");
    }
    guard
}

/// A listing of the tree under `root`: `path type mode uid gid size [target|content]`,
/// sorted, for comparing two trees.
pub fn tree(root: &Path) -> Vec<String> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("read dir") {
            let p = e.expect("entry").path();
            let m = p.symlink_metadata().expect("stat");
            let rel = p.strip_prefix(root).expect("under root").display().to_string();
            let ft = m.file_type();
            let extra = if ft.is_symlink() {
                format!("-> {}", std::fs::read_link(&p).expect("link").display())
            } else if ft.is_file() {
                String::from_utf8_lossy(&std::fs::read(&p).expect("read")).into_owned()
            } else if ft.is_char_device() || ft.is_block_device() {
                format!("dev {}", m.rdev())
            } else {
                String::new()
            };
            out.push(format!("{rel} {:o} {} {} {extra}", m.mode(), m.uid(), m.gid()));
            if m.is_dir() {
                stack.push(p);
            }
        }
    }
    out.sort();
    out
}
