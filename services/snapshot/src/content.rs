//! [`Blobs`] over the content service: a layer's bytes arrive as an open read-only fd
//! passed over content's side socket (`content-fd.sock`, SCM_RIGHTS), so apply reads the
//! blob file itself with no copy through a socket; a diff is written through content's
//! ingest API (ref `diff-<digest>`, expected digest and size, pipelined chunks) and an
//! existing blob counts as written. Labels such as the diff_id are returned to the caller,
//! which records them in metadata (content keeps no labels).

use std::collections::BTreeMap;
use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;

use berth_ipc::content::proxy::ContentClient;
use berth_ipc::content::store::{ContentStore, ContentWriter};
use berth_ipc::digest::Digest;
use berth_ipc::{Code, Error, Result};

use crate::blobs::{Blobs, BoxFuture, Followed};

/// Chunk size of diff uploads.
const CHUNK: usize = 1 << 20;

/// The content service as a blob store.
#[derive(Clone)]
pub struct ContentBlobs(pub ContentClient);

async fn upload(c: &ContentClient, path: PathBuf, digest: Digest, size: u64) -> Result<()> {
    let mut w = match c.writer(&format!("diff-{digest}"), Some(digest), Some(size)).await {
        Err(e) if e.code == Code::AlreadyExists => return Ok(()),
        r => r?,
    };
    let io = |e: std::io::Error| Error::io(format_args!("diff {}", path.display()), e);
    let mut f = std::fs::File::open(&path).map_err(io)?;
    let start = w.offset().min(size);
    f.seek(SeekFrom::Start(start)).map_err(io)?;
    loop {
        let mut buf = vec![0u8; CHUNK];
        let n = f.read(&mut buf).map_err(io)?;
        if n == 0 {
            break;
        }
        buf.truncate(n);
        w.push(buf).await?;
    }
    match w.commit(Some(size), Some(digest)).await {
        Err(e) if e.code == Code::AlreadyExists => Ok(()),
        r => r.map(drop),
    }
}

impl Blobs for ContentBlobs {
    fn open(&self, digest: Digest) -> BoxFuture<'_, Result<std::fs::File>> {
        Box::pin(async move { Ok(self.0.read_fd(&digest).await?.file) })
    }

    fn follow(&self, digest: Digest) -> BoxFuture<'_, Result<Followed>> {
        Box::pin(async move {
            let f = self.0.follow_fd(&digest).await?;
            Ok(Followed { file: f.file, committed: f.reply.committed, total: f.reply.total })
        })
    }

    fn put(
        &self,
        path: PathBuf,
        digest: Digest,
        size: u64,
        _labels: BTreeMap<String, String>,
    ) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move { upload(&self.0, path, digest, size).await })
    }
}
