//! Where layer blobs come from and where diffs go: the [`Blobs`] trait, implemented over the
//! content service in production (`content.rs`: blobs arrive as fds passed over content's
//! side socket, diffs are written through its ingest API) and over a plain directory in
//! tests ([`DirBlobs`], laid out as content lays out blobs).

use std::collections::BTreeMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;

use berth_ipc::digest::Digest;
use berth_ipc::{Error, Result};

/// A boxed future, so the trait can be used as `dyn Blobs`.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The blob store the snapshot service reads layers from and writes diffs to.
pub trait Blobs: Send + Sync + 'static {
    /// An open, read-only file of blob `digest`; `NotFound` if absent.
    fn open(&self, digest: Digest) -> BoxFuture<'_, Result<std::fs::File>>;
    /// A read-only file of blob `digest` if committed, else of the download in progress
    /// that is to become it; `NotFound` for neither (yet).
    fn follow(&self, digest: Digest) -> BoxFuture<'_, Result<Followed>>;
    /// Stores the finished file `path` as blob `digest` of `size` bytes, with `labels`.
    /// `AlreadyExists` counts as success.
    fn put(
        &self,
        path: PathBuf,
        digest: Digest,
        size: u64,
        labels: BTreeMap<String, String>,
    ) -> BoxFuture<'_, Result<()>>;
}

/// A blob or its download in progress, from [`Blobs::follow`].
#[derive(Debug)]
pub struct Followed {
    /// The open file.
    pub file: std::fs::File,
    /// The file is the whole blob.
    pub committed: bool,
    /// The size the blob will have, if known.
    pub total: Option<u64>,
}

/// Blobs in a directory: `<dir>/blobs/sha256/<hex>` (content's own layout); labels are
/// written beside each blob as `<hex>.labels.json`.
#[derive(Debug, Clone)]
pub struct DirBlobs {
    dir: PathBuf,
}

impl DirBlobs {
    /// Blobs under `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        DirBlobs { dir: dir.into() }
    }

    /// The path of blob `digest`.
    pub fn path(&self, digest: &Digest) -> PathBuf {
        self.dir.join("blobs").join("sha256").join(digest.hex())
    }

    /// Adds `data` as a blob and returns its digest (tests).
    pub fn add(&self, data: &[u8]) -> std::io::Result<Digest> {
        let d = Digest::of(data);
        let p = self.path(&d);
        std::fs::create_dir_all(p.parent().unwrap_or(Path::new(".")))?;
        std::fs::write(p, data)?;
        Ok(d)
    }

    /// The labels stored with blob `digest`.
    pub fn labels(&self, digest: &Digest) -> Option<BTreeMap<String, String>> {
        let p = self.path(digest).with_extension("labels.json");
        serde_json::from_slice(&std::fs::read(p).ok()?).ok()
    }
}

impl Blobs for DirBlobs {
    fn open(&self, digest: Digest) -> BoxFuture<'_, Result<std::fs::File>> {
        Box::pin(async move {
            std::fs::File::open(self.path(&digest)).map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => Error::not_found(format!("blob {digest}: not found")),
                _ => Error::internal_cause(format_args!("blob {digest}"), e),
            })
        })
    }

    fn follow(&self, digest: Digest) -> BoxFuture<'_, Result<Followed>> {
        Box::pin(async move {
            let file = self.open(digest).await?;
            let total = file.metadata().map_err(|e| Error::io(format_args!("blob {digest}"), e))?.len();
            Ok(Followed { file, committed: true, total: Some(total) })
        })
    }

    fn put(
        &self,
        path: PathBuf,
        digest: Digest,
        _size: u64,
        labels: BTreeMap<String, String>,
    ) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move {
            let dest = self.path(&digest);
            let io = |e: std::io::Error| Error::io(format_args!("blob {digest}"), e);
            std::fs::create_dir_all(dest.parent().unwrap_or(Path::new("."))).map_err(io)?;
            std::fs::rename(&path, &dest).map_err(io)?;
            let json = serde_json::to_vec(&labels).map_err(|e| Error::internal(e.to_string()))?;
            std::fs::write(dest.with_extension("labels.json"), json).map_err(io)
        })
    }
}
