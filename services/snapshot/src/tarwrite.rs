//! Writing a layer: a tar stream (owners, modes, times, xattrs as PAX `SCHILY.xattr.*`,
//! hardlinks, device nodes, fifos, whiteouts) gzip-compressed into a file, hashing both the
//! uncompressed stream (the diff_id) and the compressed blob (its digest) as it goes.

use std::collections::HashMap;
use std::ffi::CString;
use std::fs::File;
use std::io::{self, Write};
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use berth_ipc::digest::Digest;
use berth_ipc::{Error, Result};
use sha2::{Digest as _, Sha256};
use tar::{EntryType, Header};

use crate::walk::{self, Opened};

/// A writer that hashes and counts what passes through.
pub struct HashWriter<W> {
    inner: W,
    hasher: Sha256,
    count: u64,
}

impl<W: Write> Write for HashWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

impl<W> HashWriter<W> {
    fn new(inner: W) -> Self {
        HashWriter { inner, hasher: Sha256::new(), count: 0 }
    }
    fn done(self) -> (W, Digest, u64) {
        (self.inner, Digest::from_sha256(self.hasher.finalize().into()), self.count)
    }
}

type Gz = flate2::write::GzEncoder<HashWriter<File>>;

/// A gzip layer being written.
pub struct LayerWriter {
    tar: tar::Builder<HashWriter<Gz>>,
    links: HashMap<(u64, u64), Vec<u8>>,
}

/// What a finished layer is.
#[derive(Debug, Clone, Copy)]
pub struct Written {
    /// Digest of the compressed blob.
    pub digest: Digest,
    /// Its size.
    pub size: u64,
    /// Digest of the uncompressed tar.
    pub diff_id: Digest,
}

/// A failure writing the layer (the tar stream, its file, a source's xattrs).
fn write_err(e: io::Error) -> Error {
    Error::io("write layer", e)
}

fn as_path(p: &[u8]) -> &Path {
    Path::new(std::ffi::OsStr::from_bytes(p))
}

/// One PAX record: `<len> <key>=<value>\n`, `len` counting itself.
fn pax_record(key: &[u8], value: &[u8]) -> Vec<u8> {
    let body = key.len() + value.len() + 3;
    let mut len = body + body.to_string().len();
    if len.to_string().len() + body > len {
        len += 1;
    }
    let mut out = format!("{len} ").into_bytes();
    out.extend_from_slice(key);
    out.push(b'=');
    out.extend_from_slice(value);
    out.push(b'\n');
    out
}

impl LayerWriter {
    /// A layer written into `file`.
    pub fn new(file: File) -> Self {
        let gz = flate2::write::GzEncoder::new(HashWriter::new(file), flate2::Compression::new(6));
        LayerWriter { tar: tar::Builder::new(HashWriter::new(gz)), links: HashMap::new() }
    }

    /// Adds the entry `o` (opened by [`crate::walk`]) under the layer name `name`: its
    /// type, metadata and size are those of the opened inode, whatever the name holds now.
    pub fn add(&mut self, name: &[u8], o: &Opened) -> Result<()> {
        let st = &o.st;
        let mut h = Header::new_gnu();
        h.set_mode(st.st_mode & 0o7777);
        h.set_uid(st.st_uid.into());
        h.set_gid(st.st_gid.into());
        h.set_mtime(st.st_mtime.max(0) as u64);
        h.set_size(0);
        let xattrs = walk::xattrs(o.fd.as_fd(), name)?;
        if !xattrs.is_empty() {
            let mut data = Vec::new();
            for (k, v) in &xattrs {
                let mut key = b"SCHILY.xattr.".to_vec();
                key.extend_from_slice(k);
                data.extend(pax_record(&key, v));
            }
            let mut ph = Header::new_ustar();
            ph.set_entry_type(EntryType::XHeader);
            ph.set_size(data.len() as u64);
            ph.set_mode(0o644);
            ph.set_path("PaxHeader").map_err(write_err)?;
            ph.set_cksum();
            self.tar.append(&ph, data.as_slice()).map_err(write_err)?;
        }
        let kind = walk::kind(st);
        if kind != libc::S_IFDIR && st.st_nlink > 1 {
            if let Some(first) = self.links.get(&(st.st_dev, st.st_ino)) {
                h.set_entry_type(EntryType::Link);
                let first = first.clone();
                return self.tar.append_link(&mut h, as_path(name), as_path(&first)).map_err(write_err);
            }
            self.links.insert((st.st_dev, st.st_ino), name.to_vec());
        }
        let size = st.st_size.max(0) as u64;
        match kind {
            libc::S_IFREG => {
                h.set_entry_type(EntryType::Regular);
                h.set_size(size);
                let f = walk::read_regular(o, name)?;
                let exact = Exact { inner: io::Read::take(f, size), left: size, src: name.to_vec() };
                self.tar.append_data(&mut h, as_path(name), exact).map_err(write_err)
            }
            libc::S_IFDIR => {
                h.set_entry_type(EntryType::Directory);
                self.tar.append_data(&mut h, as_path(name), io::empty()).map_err(write_err)
            }
            libc::S_IFLNK => {
                h.set_entry_type(EntryType::Symlink);
                let target = walk::read_link(o, name)?;
                self.tar.append_link(&mut h, as_path(name), target).map_err(write_err)
            }
            libc::S_IFCHR | libc::S_IFBLK | libc::S_IFIFO => {
                h.set_entry_type(match kind {
                    libc::S_IFCHR => EntryType::Char,
                    libc::S_IFBLK => EntryType::Block,
                    _ => EntryType::Fifo,
                });
                let rdev = st.st_rdev;
                h.set_device_major(nix::sys::stat::major(rdev) as u32).map_err(write_err)?;
                h.set_device_minor(nix::sys::stat::minor(rdev) as u32).map_err(write_err)?;
                self.tar.append_data(&mut h, as_path(name), io::empty()).map_err(write_err)
            }
            _ => Ok(()), // sockets are not carried in layers
        }
    }

    /// Adds the whiteout (or opaque marker) `name`: an empty regular file.
    pub fn marker(&mut self, name: &[u8]) -> Result<()> {
        let mut h = Header::new_gnu();
        h.set_entry_type(EntryType::Regular);
        h.set_mode(0);
        h.set_size(0);
        h.set_mtime(0);
        self.tar.append_data(&mut h, as_path(name), io::empty()).map_err(write_err)
    }

    /// Ends the tar and the gzip stream, syncs the file, and returns the digests.
    pub fn finish(self) -> Result<Written> {
        let inner = self.tar.into_inner().map_err(write_err)?;
        let (gz, diff_id, _) = inner.done();
        let hw = gz.finish().map_err(write_err)?;
        let (file, digest, size) = hw.done();
        file.sync_all().map_err(write_err)?;
        Ok(Written { digest, size, diff_id })
    }
}

/// The xattrs of `path` (not following a symlink), without overlayfs' own (for tests and
/// paths berth owns; the diff walk reads them from its fds, [`walk::xattrs`]).
pub fn read_xattrs(path: &Path) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
    let c = CString::new(path.as_os_str().as_bytes()).map_err(|_| Error::internal("path with NUL"))?;
    let mut out = Vec::new();
    let names = match crate::sys::llistxattr(&c) {
        Ok(n) => n,
        Err(e) if e.raw_os_error() == Some(libc::ENOTSUP) => return Ok(out),
        Err(e) => return Err(write_err(e)),
    };
    for n in names {
        if n.starts_with(b"trusted.overlay.") {
            continue;
        }
        let cn = CString::new(n.clone()).map_err(|_| Error::internal("xattr name with NUL"))?;
        if let Some(v) = crate::sys::lgetxattr(&c, &cn).map_err(write_err)? {
            out.push((n, v));
        }
    }
    out.sort();
    Ok(out)
}

/// A file's bytes, exactly as many as its header says: one that grew is cut at the
/// stat'ed size, one that shrank is an error naming it (the tar stream stays well formed).
struct Exact<R> {
    inner: R,
    left: u64,
    src: Vec<u8>,
}

impl<R: io::Read> io::Read for Exact<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n == 0 && self.left > 0 && !buf.is_empty() {
            return Err(io::Error::other(format!(
                "entry {:?} shrank while being read",
                crate::layer::path::show(&self.src)
            )));
        }
        self.left -= n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn pax_record_length_counts_itself() {
        let r = super::pax_record(b"SCHILY.xattr.user.a", b"1");
        assert_eq!(r, b"25 SCHILY.xattr.user.a=1\n".to_vec());
        let r = super::pax_record(b"k", &[b'v'; 95]);
        let s = String::from_utf8(r).expect("utf8");
        let len: usize = s.split(' ').next().expect("len").parse().expect("num");
        assert_eq!(len, s.len());
    }
}
