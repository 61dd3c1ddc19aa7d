//! An entry's metadata (owner, mode, mtime, xattrs, device numbers) read from its header and
//! PAX records, and applied to what the extractor created: through the open fd where there
//! is one, else relative to the parent fd without following the final symlink.

use std::ffi::CString;
use std::io::Read;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};

use berth_ipc::Result;
use nix::fcntl::{AT_FDCWD, OFlag, openat};
use nix::sys::stat::{
    FchmodatFlags, Mode, SFlag, UtimensatFlags, fchmod, fchmodat, fstat, futimens, utimensat,
};
use nix::sys::time::TimeSpec;
use nix::unistd::{Gid, Uid, fchown, fchownat};

use super::fsops::errno;

/// Xattrs the archive may not set: overlayfs' own, which would change how the mount reads.
const FORBIDDEN_XATTR_PREFIX: &str = "trusted.overlay.";

/// What an entry says about itself besides name and data.
#[derive(Debug, Clone, Default)]
pub struct Meta {
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Permission bits incl. setuid, setgid, sticky.
    pub mode: u32,
    /// Modification time, seconds and nanoseconds.
    pub mtime: (i64, i64),
    /// Device numbers for device nodes.
    pub rdev: (u32, u32),
    /// Extended attributes, names checked.
    pub xattrs: Vec<(CString, Vec<u8>)>,
}

fn parse_num(v: &[u8]) -> Option<u64> {
    std::str::from_utf8(v).ok()?.trim().parse().ok()
}

impl Meta {
    /// Reads header and PAX records of `entry`.
    pub fn read<R: Read>(entry: &mut tar::Entry<'_, R>, path: &[u8]) -> Result<Meta> {
        let bad = |what: &str| {
            berth_ipc::Error::invalid(format!("layer entry {:?}: bad {what}", super::path::show(path)))
        };
        let h = entry.header();
        let mut m = Meta {
            // An empty owner or time field reads as 0, as GNU tar reads it; a value too big
            // for a Linux id is refused.
            uid: h.uid().unwrap_or(0).try_into().map_err(|_| bad("uid"))?,
            gid: h.gid().unwrap_or(0).try_into().map_err(|_| bad("gid"))?,
            mode: h.mode().map_err(|_| bad("mode"))? & 0o7777,
            mtime: (h.mtime().unwrap_or(0).min(i64::MAX as u64) as i64, 0),
            rdev: (
                h.device_major().ok().flatten().unwrap_or(0),
                h.device_minor().ok().flatten().unwrap_or(0),
            ),
            xattrs: Vec::new(),
        };
        let Some(pax) = entry.pax_extensions().map_err(|_| bad("pax header"))? else { return Ok(m) };
        for ext in pax {
            let ext = ext.map_err(|_| bad("pax record"))?;
            let key = ext.key_bytes();
            if let Some(name) = key.strip_prefix(b"SCHILY.xattr.") {
                let name = String::from_utf8_lossy(name);
                if name.starts_with(FORBIDDEN_XATTR_PREFIX) {
                    continue;
                }
                let c = CString::new(name.as_bytes()).map_err(|_| bad("xattr name"))?;
                m.xattrs.push((c, ext.value_bytes().to_vec()));
            } else if key == b"uid" {
                m.uid =
                    parse_num(ext.value_bytes()).and_then(|v| v.try_into().ok()).ok_or_else(|| bad("uid"))?;
            } else if key == b"gid" {
                m.gid =
                    parse_num(ext.value_bytes()).and_then(|v| v.try_into().ok()).ok_or_else(|| bad("gid"))?;
            } else if key == b"mtime" {
                let v = String::from_utf8_lossy(ext.value_bytes()).into_owned();
                let (s, frac) = v.split_once('.').unwrap_or((&v, ""));
                let secs: i64 = s.trim().parse().map_err(|_| bad("mtime"))?;
                let mut digits: String = frac.chars().take(9).filter(char::is_ascii_digit).collect();
                while digits.len() < 9 {
                    digits.push('0');
                }
                m.mtime = (secs, digits.parse().unwrap_or(0));
            }
        }
        Ok(m)
    }

    fn times(&self) -> TimeSpec {
        TimeSpec::new(self.mtime.0, self.mtime.1)
    }

    /// Applies owner, mode, xattrs and times to an open file or directory.
    pub fn apply_fd(&self, fd: BorrowedFd<'_>, path: &[u8]) -> Result<()> {
        fchown(fd, Some(Uid::from_raw(self.uid)), Some(Gid::from_raw(self.gid)))
            .map_err(|e| errno("chown", path, e))?;
        fchmod(fd, Mode::from_bits_truncate(self.mode)).map_err(|e| errno("chmod", path, e))?;
        for (name, value) in &self.xattrs {
            crate::sys::fsetxattr(fd, name, value).map_err(|e| xattr_err(path, e))?;
        }
        self.set_times_fd(fd, path)
    }

    /// Sets the times of an open file.
    pub fn set_times_fd(&self, fd: BorrowedFd<'_>, path: &[u8]) -> Result<()> {
        futimens(fd, &self.times(), &self.times()).map_err(|e| errno("set times", path, e))
    }

    /// Applies metadata to `name` in `dir` (a symlink, device node or fifo this extractor
    /// just created). `chmod` is skipped for symlinks, whose mode means nothing.
    pub fn apply_at(&self, dir: BorrowedFd<'_>, name: &[u8], path: &[u8], symlink: bool) -> Result<()> {
        fchownat(
            dir,
            name,
            Some(Uid::from_raw(self.uid)),
            Some(Gid::from_raw(self.gid)),
            nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
        )
        .map_err(|e| errno("chown", path, e))?;
        if !symlink {
            // Through an O_PATH fd of the node itself, checked not to be a symlink, so a
            // process swapping the name meanwhile cannot redirect the chmod.
            let fd = openat(dir, name, OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC, Mode::empty())
                .map_err(|e| errno("chmod", path, e))?;
            let st = fstat(&fd).map_err(|e| errno("chmod", path, e))?;
            if SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT != SFlag::S_IFLNK {
                let proc = format!("/proc/self/fd/{}", fd.as_raw_fd());
                fchmodat(
                    AT_FDCWD,
                    proc.as_str(),
                    Mode::from_bits_truncate(self.mode),
                    FchmodatFlags::FollowSymlink,
                )
                .map_err(|e| errno("chmod", path, e))?;
            }
        }
        if !self.xattrs.is_empty() {
            let mut p = format!("/proc/self/fd/{}/", dir.as_fd().as_raw_fd()).into_bytes();
            p.extend_from_slice(name);
            let p = CString::new(p).map_err(|_| errno("xattr", path, nix::errno::Errno::EINVAL))?;
            for (n, value) in &self.xattrs {
                crate::sys::lsetxattr(&p, n, value).map_err(|e| xattr_err(path, e))?;
            }
        }
        self.set_times_at(dir, name, path)
    }

    /// Sets the times of `name` in `dir`, not following a symlink.
    pub fn set_times_at(&self, dir: BorrowedFd<'_>, name: &[u8], path: &[u8]) -> Result<()> {
        utimensat(dir, name, &self.times(), &self.times(), UtimensatFlags::NoFollowSymlink)
            .map_err(|e| errno("set times", path, e))
    }
}

fn xattr_err(path: &[u8], e: std::io::Error) -> berth_ipc::Error {
    errno("set xattr", path, nix::errno::Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)))
}
