//! The extractor: walks the tar entries one by one (never `tar::Archive::unpack`) and
//! creates each inside the layer root. Parents are resolved with `RESOLVE_IN_ROOT`, the
//! final component is never followed, metadata goes through fds, hardlink targets are
//! resolved without any symlink, and an earlier entry of the same layer cannot redirect a
//! later one outside (the parent cache is dropped whenever an entry replaces one of its
//! components).

use std::collections::HashSet;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use berth_ipc::{Error, Result};
use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag, openat};
use nix::sys::stat::{Mode, SFlag, fstatat, makedev, mkdirat, mknodat};
use nix::unistd::{linkat, symlinkat};
use tar::EntryType;

use super::fsops::{self, errno, make_parent, open_child_dir, remove_all};
use super::limits::Limits;
use super::meta::Meta;
use super::path::{self, EntryPath};
use super::whiteout;

/// Files at least this large have their writeback started as soon as they are written.
const WRITEBACK_MIN: usize = 256 << 10;

/// How whiteouts are carried out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Whiteouts {
    /// Written as overlay whiteouts (char 0/0, opaque xattr) into an upper dir.
    Overlay,
    /// Carried out as deletions in a full tree.
    Delete,
}

/// The extraction state of one layer.
pub struct Extractor {
    pub(super) root: OwnedFd,
    pub(super) mode: Whiteouts,
    /// Paths this layer created: whiteouts and opaque markers spare them.
    pub(super) written: HashSet<Vec<u8>>,
    parent_cache: Option<(Vec<u8>, OwnedFd)>,
    dir_times: Vec<(EntryPath, Meta)>,
    buf: Vec<u8>,
    entries: u64,
    /// File bytes this layer may still write (logical size: holes count).
    budget: u64,
    /// Bytes held in `written` and `dir_times`, bounded by `limits.memory_bytes`.
    held: u64,
    limits: Limits,
}

/// What remembering one path costs, besides its bytes (hash slot, vector header).
const PATH_OVERHEAD: u64 = 64;

impl Extractor {
    /// An extractor writing under `root` (an open directory).
    pub fn new(root: OwnedFd, mode: Whiteouts, limits: Limits) -> Self {
        Extractor {
            root,
            mode,
            written: HashSet::new(),
            parent_cache: None,
            dir_times: Vec::new(),
            buf: vec![0; 256 << 10],
            entries: 0,
            budget: limits.bytes,
            held: 0,
            limits,
        }
    }

    /// Forgets cached parents at or under `p`, which an entry is about to replace.
    pub(super) fn invalidate(&mut self, p: &[u8]) {
        if self.parent_cache.as_ref().is_some_and(|(k, _)| path::is_under(k, p)) {
            self.parent_cache = None;
        }
    }

    fn parent(&mut self, comps: &[Vec<u8>], entry: &[u8]) -> Result<BorrowedFd<'_>> {
        cached_parent(&mut self.parent_cache, &self.root, comps, entry)
    }

    /// Extracts one entry.
    pub fn entry<R: Read>(&mut self, entry: &mut tar::Entry<'_, R>) -> Result<()> {
        self.entries += 1;
        if self.entries > self.limits.entries {
            return Err(Error::new(
                berth_ipc::Code::OutOfRange,
                format!("layer: more than {} entries (max_layer_entries)", self.limits.entries),
            ));
        }
        let raw = entry.path_bytes().into_owned();
        let p = EntryPath::parse(&raw)?;
        let kind = entry.header().entry_type();
        if matches!(
            kind,
            EntryType::XGlobalHeader | EntryType::XHeader | EntryType::GNULongName | EntryType::GNULongLink
        ) {
            return Ok(());
        }
        let meta = Meta::read(entry, &raw)?;
        let Some((parent, name)) = p.split_last() else {
            if kind == EntryType::Directory {
                let fd = open_child_dir(self.root.as_fd(), b".", OFlag::O_RDONLY)
                    .map_err(|e| errno("open", &raw, e))?;
                meta.apply_fd(fd.as_fd(), &raw)?;
                self.hold(raw.len())?;
                self.dir_times.push((p, meta));
            }
            return Ok(());
        };
        if let Some(target) = name.strip_prefix(whiteout::PREFIX.as_bytes()) {
            return whiteout::apply(self, &p, parent, target, &raw);
        }
        let joined = p.joined();
        self.invalidate(&joined);
        match kind {
            EntryType::Regular | EntryType::Continuous | EntryType::GNUSparse => {
                let dir = cached_parent(&mut self.parent_cache, &self.root, parent, &raw)?;
                let budget = Budget { left: &mut self.budget, cap: self.limits.bytes };
                write_file(dir, name, entry, &meta, &raw, &mut self.buf, budget)?;
            }
            EntryType::Directory => {
                let dir = self.parent(parent, &raw)?;
                make_dir(dir, name, &meta, &raw)?;
                self.hold(raw.len())?;
                self.dir_times.push((p.clone(), meta));
            }
            EntryType::Symlink => {
                let target =
                    entry.link_name_bytes().ok_or_else(|| bad(&raw, "symlink without target"))?.into_owned();
                if target.is_empty() || target.contains(&0) || target.len() > path::MAX_PATH {
                    return Err(bad(&raw, "bad symlink target"));
                }
                let dir = self.parent(parent, &raw)?;
                replace(dir, name, &raw)?;
                symlinkat(target.as_slice(), dir, name).map_err(|e| errno("symlink", &raw, e))?;
                meta.apply_at(dir, name, &raw, true)?;
            }
            EntryType::Link => {
                let target =
                    entry.link_name_bytes().ok_or_else(|| bad(&raw, "hardlink without target"))?.into_owned();
                let t = EntryPath::parse(&target)
                    .map_err(|e| bad(&raw, &format!("hardlink target: {}", e.message)))?;
                let Some((tparent, tname)) = t.split_last() else {
                    return Err(bad(&raw, "hardlink to the root"));
                };
                let tdir = fsops::open_dir_no_symlinks(self.root.as_fd(), &path::join(tparent))
                    .map_err(|e| errno("hardlink target", &raw, e))?;
                let dir = self.parent(parent, &raw)?;
                if t.joined() != joined {
                    replace(dir, name, &raw)?;
                    linkat(tdir.as_fd(), tname, dir, name, AtFlags::empty())
                        .map_err(|e| errno("hardlink", &raw, e))?;
                }
            }
            EntryType::Char | EntryType::Block | EntryType::Fifo => {
                let sflag = match kind {
                    EntryType::Char => SFlag::S_IFCHR,
                    EntryType::Block => SFlag::S_IFBLK,
                    _ => SFlag::S_IFIFO,
                };
                let dir = self.parent(parent, &raw)?;
                replace(dir, name, &raw)?;
                let dev = makedev(meta.rdev.0.into(), meta.rdev.1.into());
                mknodat(dir, name, sflag, Mode::from_bits_truncate(0o600), dev)
                    .map_err(|e| errno("mknod", &raw, e))?;
                meta.apply_at(dir, name, &raw, false)?;
            }
            other => return Err(bad(&raw, &format!("unsupported entry type {:?}", other.as_byte() as char))),
        }
        self.mark_written(joined)
    }

    /// Counts `n` more remembered bytes against the layer's memory limit.
    fn hold(&mut self, n: usize) -> Result<()> {
        self.held = self.held.saturating_add(n as u64 + PATH_OVERHEAD);
        if self.held > self.limits.memory_bytes {
            return Err(Error::new(
                berth_ipc::Code::OutOfRange,
                format!(
                    "layer: paths remembered take more than {} bytes (max_layer_memory_bytes)",
                    self.limits.memory_bytes
                ),
            ));
        }
        Ok(())
    }

    /// Records `p` and its ancestors as written by this layer.
    fn mark_written(&mut self, mut p: Vec<u8>) -> Result<()> {
        loop {
            if self.written.contains(&p) {
                return Ok(());
            }
            self.hold(p.len())?;
            self.written.insert(p.clone());
            match p.iter().rposition(|b| *b == b'/') {
                Some(i) => p.truncate(i),
                None => return Ok(()),
            }
        }
    }

    /// Sets directory times last (creating children changes them), re-resolving each
    /// directory inside the root.
    pub fn finish(mut self) -> Result<()> {
        for (p, meta) in std::mem::take(&mut self.dir_times).iter().rev() {
            let raw = p.joined();
            let Some((parent, name)) = p.split_last() else {
                meta.set_times_at(self.root.as_fd(), b".", &raw)?;
                continue;
            };
            let Ok(dir) = fsops::open_dir_in_root(self.root.as_fd(), &path::join(parent)) else { continue };
            match fstatat(dir.as_fd(), name, AtFlags::AT_SYMLINK_NOFOLLOW) {
                Ok(st) if SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFDIR => {
                    meta.set_times_at(dir.as_fd(), name, &raw)?
                }
                _ => {}
            }
        }
        Ok(())
    }
}

/// The parent directory `comps`, from the one-entry cache or resolved (and created).
fn cached_parent<'a>(
    cache: &'a mut Option<(Vec<u8>, OwnedFd)>,
    root: &'a OwnedFd,
    comps: &[Vec<u8>],
    entry: &[u8],
) -> Result<BorrowedFd<'a>> {
    let key = path::join(comps);
    if cache.as_ref().is_none_or(|(k, _)| *k != key) {
        let fd = make_parent(root.as_fd(), comps, entry)?;
        *cache = Some((key, fd));
    }
    Ok(cache.as_ref().map(|(_, fd)| fd.as_fd()).unwrap_or(root.as_fd()))
}

fn bad(raw: &[u8], why: &str) -> Error {
    Error::invalid(format!("layer entry {:?}: {why}", path::show(raw)))
}

fn io(raw: &[u8], e: std::io::Error) -> Error {
    errno("io", raw, Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)))
}

/// Removes whatever is at `name` so a new entry can take its place.
fn replace(dir: BorrowedFd<'_>, name: &[u8], raw: &[u8]) -> Result<()> {
    remove_all(dir, name).map_err(|e| errno("replace", raw, e))
}

fn write_file<R: Read>(
    dir: BorrowedFd<'_>,
    name: &[u8],
    data: &mut R,
    meta: &Meta,
    raw: &[u8],
    buf: &mut [u8],
    budget: Budget<'_>,
) -> Result<()> {
    let flags = OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    let mode = Mode::from_bits_truncate(0o600);
    let fd = match openat(dir, name, flags, mode) {
        Err(Errno::EEXIST) => {
            replace(dir, name, raw)?;
            openat(dir, name, flags, mode)
        }
        r => r,
    }
    .map_err(|e| errno("create", raw, e))?;
    let mut file = std::fs::File::from(fd);
    let mut written = 0;
    loop {
        let n = match data.read(buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(read_err(raw, e)),
        };
        *budget.left = budget.left.checked_sub(n as u64).ok_or_else(|| {
            Error::new(
                berth_ipc::Code::OutOfRange,
                format!(
                    "layer entry {:?}: file content over the layer's cap of {} bytes (max_layer_bytes)",
                    path::show(raw),
                    budget.cap
                ),
            )
        })?;
        if buf[..n].iter().all(|b| *b == 0) {
            // A run of zeros (a sparse entry's hole, or just zeros) stays a hole.
            file.seek(SeekFrom::Current(n as i64)).map_err(|e| io(raw, e))?;
        } else {
            file.write_all(&buf[..n]).map_err(|e| io(raw, e))?;
        }
        written += n;
    }
    file.set_len(written as u64).map_err(|e| io(raw, e))?;
    if written >= WRITEBACK_MIN {
        // The commit's syncfs must wait for these bytes anyway; start them now, while the
        // rest of the layer is still being extracted. A refusal only loses the head start.
        let _ = crate::sys::start_writeback(file.as_fd());
    }
    meta.apply_fd(file.as_fd(), raw)
}

/// What is left of a layer's byte budget, and the cap it came from.
struct Budget<'a> {
    left: &'a mut u64,
    cap: u64,
}

/// A read error of the layer stream (corrupt archive, bad compression, size cap).
pub fn read_err(raw: &[u8], e: std::io::Error) -> Error {
    Error::invalid(format!("layer entry {:?}: read: {e}", path::show(raw)))
}

fn make_dir(dir: BorrowedFd<'_>, name: &[u8], meta: &Meta, raw: &[u8]) -> Result<()> {
    match mkdirat(dir, name, Mode::from_bits_truncate(0o700)) {
        Ok(()) => {}
        Err(Errno::EEXIST) => {
            let st = fstatat(dir, name, AtFlags::AT_SYMLINK_NOFOLLOW).map_err(|e| errno("stat", raw, e))?;
            if SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT != SFlag::S_IFDIR {
                replace(dir, name, raw)?;
                mkdirat(dir, name, Mode::from_bits_truncate(0o700)).map_err(|e| errno("mkdir", raw, e))?;
            }
        }
        Err(e) => return Err(errno("mkdir", raw, e)),
    }
    let fd = open_child_dir(dir, name, OFlag::O_RDONLY).map_err(|e| errno("open", raw, e))?;
    meta.apply_fd(fd.as_fd(), raw)
}
