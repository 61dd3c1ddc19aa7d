//! The blob store on disk: committed blobs, their info, listing, deletion, reading and
//! re-hashing. Ingests (writes in progress) are in [`crate::ingest`].
//!
//! ```text
//! <root>/content/
//! ├── blobs/sha256/<hex>          committed blobs, mode 0444, named by their digest
//! └── ingest/<sha256(ref)>/       one dir per ingest in progress
//!     ├── data                    the bytes so far
//!     ├── ref                     the ref, verbatim
//!     ├── total                   expected size, decimal (absent if unknown)
//!     ├── startedat               ns since the epoch, decimal
//!     └── updatedat               ns since the epoch, decimal (at open; data's mtime after)
//! ```
//!
//! Every path is built from a validated [`Digest`] (hex only) or from the sha256 of a ref,
//! never from a caller's string.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::UNIX_EPOCH;

use berth_ipc::content::{BlobInfo, CheckItem};
use berth_ipc::filter::{Adaptor, Filters, label_field};
use berth_ipc::{Digest, Error, Result};
use sha2::Digest as _;

/// Size of the buffer used when hashing files.
pub(crate) const HASH_BUF: usize = 1 << 20;

/// The content store rooted at `<root>/content`.
#[derive(Debug)]
pub struct Store {
    pub(crate) root: PathBuf,
    pub(crate) blobs: PathBuf,
    pub(crate) ingest: PathBuf,
    /// Refs whose writer lock is held, with what the holder knows.
    pub(crate) locks: Mutex<HashMap<String, Held>>,
}

/// What a held ingest shares with status readers.
#[derive(Debug, Clone, Default)]
pub(crate) struct Held {
    /// The writer's expected digest.
    pub expected: Option<Digest>,
    /// Bytes written so far, including those still staged in memory.
    pub offset: Arc<std::sync::atomic::AtomicU64>,
    /// The writer's expected total size.
    pub total: Option<u64>,
    /// The ingest's files are set up: its `data` file is the one being written.
    pub ready: Arc<std::sync::atomic::AtomicBool>,
}

pub(crate) use berth_service_kit::time::now_ns;

pub(crate) fn mtime_ns(meta: &std::fs::Metadata) -> u64 {
    meta.modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

struct InfoFields<'a>(&'a BlobInfo);

impl Adaptor for InfoFields<'_> {
    fn field(&self, path: &[String]) -> Option<Cow<'_, str>> {
        match path.first().map(String::as_str) {
            Some("digest") if path.len() == 1 => Some(Cow::Owned(self.0.digest.to_string())),
            Some("size") if path.len() == 1 => Some(Cow::Owned(self.0.size.to_string())),
            Some("labels") => label_field(&self.0.labels, &path[1..]),
            _ => None,
        }
    }
}

impl Store {
    /// Opens (creating if needed) the store under `root` (`<root>/content`).
    pub fn open(root: &Path) -> Result<Arc<Store>> {
        let blobs = root.join("blobs").join("sha256");
        let ingest = root.join("ingest");
        for dir in [&blobs, &ingest] {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(dir.display(), e))?;
        }
        sweep_ingests(&ingest);
        Ok(Arc::new(Store { root: root.to_path_buf(), blobs, ingest, locks: Mutex::default() }))
    }

    /// The store's root (`<root>/content`).
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where the blob `digest` lives.
    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.blobs.join(digest.hex())
    }

    fn not_found(digest: &Digest) -> Error {
        Error::not_found(format!("blob {digest}: not found"))
    }

    /// A blob's info.
    pub fn info(&self, digest: &Digest) -> Result<BlobInfo> {
        match std::fs::metadata(self.blob_path(digest)) {
            Ok(meta) => Ok(info_of(*digest, &meta)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(Self::not_found(digest)),
            Err(e) => Err(Error::from(e).context(format!("blob {digest}"))),
        }
    }

    /// Blobs matching `filters`.
    pub fn list(&self, filters: &[String]) -> Result<Vec<BlobInfo>> {
        let filters = Filters::parse(filters)?;
        let mut out = Vec::new();
        let entries = std::fs::read_dir(&self.blobs).map_err(|e| Error::io("blobs dir", e))?;
        for entry in entries {
            let entry = entry.map_err(|e| Error::io("blobs dir", e))?;
            let Some(digest) =
                entry.file_name().to_str().and_then(|n| Digest::parse(&format!("sha256:{n}")).ok())
            else {
                continue; // not a blob: ignore stray files
            };
            let Ok(meta) = entry.metadata() else { continue };
            let info = info_of(digest, &meta);
            if filters.matches(&InfoFields(&info)) {
                out.push(info);
            }
        }
        out.sort_by_key(|i| i.digest);
        Ok(out)
    }

    /// Removes a blob.
    pub fn delete(&self, digest: &Digest) -> Result<()> {
        match std::fs::remove_file(self.blob_path(digest)) {
            Ok(()) => {
                berth_ipc::failpoint!("content.delete.after_unlink");
                let _ = sync_dir(&self.blobs);
                Ok(())
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(Self::not_found(digest)),
            Err(e) => Err(Error::from(e).context(format!("delete blob {digest}"))),
        }
    }

    /// Opens a blob read-only.
    pub fn open_blob(&self, digest: &Digest) -> Result<(File, u64)> {
        let file = File::open(self.blob_path(digest)).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => Self::not_found(digest),
            _ => Error::from(e).context(format!("blob {digest}")),
        })?;
        let size = file.metadata().map_err(|e| Error::io(format!("blob {digest}"), e))?.len();
        Ok((file, size))
    }

    /// Reads up to `len` bytes at `offset` of an open blob.
    pub fn read_chunk(file: &File, digest: &Digest, offset: u64, len: usize) -> Result<Vec<u8>> {
        let mut buf = vec![0u8; len];
        let mut filled = 0;
        while filled < len {
            let n = file
                .read_at(&mut buf[filled..], offset + filled as u64)
                .map_err(|e| Error::io(format!("blob {digest}"), e))?;
            if n == 0 {
                break;
            }
            filled += n;
        }
        buf.truncate(filled);
        Ok(buf)
    }

    /// Checks `offset`/`length` against a blob's `size`; returns the end of the range.
    pub fn range(digest: &Digest, size: u64, offset: u64, length: Option<u64>) -> Result<u64> {
        if offset > size {
            return Err(Error::new(
                berth_ipc::Code::OutOfRange,
                format!("blob {digest}: offset {offset} is past its end ({size} bytes)"),
            ));
        }
        Ok(length.map_or(size, |l| offset.saturating_add(l).min(size)))
    }

    /// Re-hashes every blob; calls `bad` for each one that does not match its name.
    /// Returns (checked, bad).
    pub fn check(&self, mut bad: impl FnMut(CheckItem) -> bool) -> Result<(u64, u64)> {
        let (mut checked, mut bads) = (0u64, 0u64);
        let entries = std::fs::read_dir(&self.blobs).map_err(|e| Error::io("blobs dir", e))?;
        for entry in entries {
            let entry = entry.map_err(|e| Error::io("blobs dir", e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            checked += 1;
            let problem = match Digest::parse(&format!("sha256:{name}")) {
                Err(_) => Some("file name is not a sha256 digest".to_string()),
                Ok(want) => match hash_file(&entry.path()) {
                    Ok((got, _)) if got == want => None,
                    Ok((got, _)) => Some(format!("content hashes to {got}")),
                    Err(e) => Some(format!("cannot read: {e}")),
                },
            };
            if let Some(problem) = problem {
                bads += 1;
                if !bad(CheckItem::Bad { name: format!("sha256/{name}"), problem }) {
                    break;
                }
            }
        }
        Ok((checked, bads))
    }
}

fn info_of(digest: Digest, meta: &std::fs::Metadata) -> BlobInfo {
    let t = mtime_ns(meta);
    BlobInfo { digest, size: meta.len(), created_at_ns: t, updated_at_ns: t, labels: Default::default() }
}

/// The sha256 and size of a file's content.
pub fn hash_file(path: &Path) -> io::Result<(Digest, u64)> {
    let mut file = File::open(path)?;
    let mut hasher = sha2::Sha256::new();
    let mut buf = vec![0u8; HASH_BUF];
    let mut total = 0u64;
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        total += n as u64;
    }
    Ok((Digest::from_sha256(hasher.finalize().into()), total))
}

/// Removes ingest dirs without a `data` or a `ref` file: left by a crash after a commit's
/// rename and before the dir's removal, or while a new ingest was being set up. Nothing
/// lists, resumes or aborts such a dir, so it would stay forever. At open no writer holds any.
fn sweep_ingests(ingest: &Path) {
    for entry in std::fs::read_dir(ingest).into_iter().flatten().flatten() {
        let dir = entry.path();
        if dir.is_dir() && !(dir.join("data").exists() && dir.join("ref").exists()) {
            match std::fs::remove_dir_all(&dir) {
                Ok(()) => tracing::info!(dir = %dir.display(), "removed a half-removed ingest"),
                Err(e) => tracing::warn!(dir = %dir.display(), error = %e, "cannot remove ingest dir"),
            }
        }
    }
}

/// fsyncs a directory, making renames and unlinks in it durable.
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}
