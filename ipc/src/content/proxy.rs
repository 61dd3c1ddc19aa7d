//! [`ContentClient`]: the content service through its socket, as a [`ContentStore`].
//!
//! Its writer ([`RemoteWriter`], in `writer.rs`) pipelines chunks and rides through a
//! restart of the service. Fd exchanges on the side socket that only read (`read_fd`,
//! `follow_fd`) are retried while the service is down, until the client's deadline.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::client::{Client, Stream};
use crate::content::store::ContentStore;
use crate::content::{
    Abort, BlobInfo, Content, Delete, Info, IngestStatus, List, ListStatuses, OpenWriter, Read, Status,
    readfd,
};
use crate::digest::Digest;
use crate::error::{Code, Error, Result};

pub use super::writer::{PIPELINE_DEPTH, RemoteWriter};

/// A content service client with the store's interface.
#[derive(Clone)]
pub struct ContentClient {
    client: Client<Content>,
}

impl ContentClient {
    /// Wraps a typed client.
    pub fn new(client: Client<Content>) -> Self {
        ContentClient { client }
    }

    /// The typed client underneath.
    pub fn client(&self) -> &Client<Content> {
        &self.client
    }

    /// The side socket next to `content.sock`.
    pub fn fd_socket(&self) -> PathBuf {
        let dir = self.client.socket().parent().unwrap_or(Path::new("."));
        dir.join(readfd::SOCKET_NAME)
    }

    /// A blob's open read-only file and size, passed over the side socket.
    pub async fn read_fd(&self, digest: &Digest) -> Result<readfd::BlobFd> {
        let socket = self.fd_socket();
        self.while_down(|| readfd::read_fd(&socket, digest)).await
    }

    /// The open read-only file of a blob, or of the ingest in progress that is to become it
    /// (see [`readfd::follow_fd`]).
    pub async fn follow_fd(&self, digest: &Digest) -> Result<readfd::FollowFd> {
        let socket = self.fd_socket();
        self.while_down(|| readfd::follow_fd(&socket, digest)).await
    }

    /// Runs a read-only fd exchange again while it finds the service down (`Unavailable`),
    /// until the client's deadline.
    async fn while_down<T, F: Future<Output = Result<T>>>(&self, mut f: impl FnMut() -> F) -> Result<T> {
        let deadline = Instant::now() + self.client.deadline();
        let mut nap = Duration::from_millis(2);
        loop {
            match f().await {
                Err(e) if e.is(Code::Unavailable) && Instant::now() < deadline => {
                    tokio::time::sleep(nap).await;
                    nap = (nap * 2).min(Duration::from_millis(100));
                }
                r => return r,
            }
        }
    }
}

async fn collect<C: crate::Call>(mut s: Stream<C>) -> Result<Vec<C::Reply>> {
    let mut out = Vec::new();
    while let Some(item) = s.next().await {
        out.push(item?);
    }
    Ok(out)
}

impl ContentStore for ContentClient {
    type Writer = RemoteWriter;

    async fn info(&self, digest: &Digest) -> Result<BlobInfo> {
        self.client.call(Info { digest: *digest }).await
    }

    async fn list(&self, filters: &[String]) -> Result<Vec<BlobInfo>> {
        collect(self.client.stream(List { filters: filters.to_vec() }).await?).await
    }

    async fn delete(&self, digest: &Digest) -> Result<()> {
        self.client.call(Delete { digest: *digest }).await
    }

    /// A stream cut by a restart of the service is read on from where it stopped (a blob
    /// does not change), until the client's deadline.
    async fn read(&self, digest: &Digest, offset: u64, length: Option<u64>) -> Result<Vec<u8>> {
        let deadline = Instant::now() + self.client.deadline();
        let mut out = Vec::new();
        'again: loop {
            let done = out.len() as u64;
            let rest = length.map(|l| l.saturating_sub(done));
            if rest == Some(0) && done > 0 {
                return Ok(out);
            }
            let req = Read { digest: *digest, offset: offset + done, length: rest };
            let mut s = self.client.stream(req).await?;
            while let Some(chunk) = s.next().await {
                let chunk = match chunk {
                    Ok(c) => c,
                    Err(e) if e.is(Code::Unavailable) && !s.connected() && Instant::now() < deadline => {
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        continue 'again;
                    }
                    Err(e) => return Err(e),
                };
                if chunk.offset != offset + out.len() as u64 {
                    return Err(Error::internal(format!("blob {digest}: read chunk out of order")));
                }
                out.extend_from_slice(&chunk.data.0);
            }
            return Ok(out);
        }
    }

    async fn status(&self, r#ref: &str) -> Result<IngestStatus> {
        self.client.call(Status { r#ref: r#ref.to_string() }).await
    }

    async fn list_statuses(&self, filters: &[String]) -> Result<Vec<IngestStatus>> {
        self.client.call(ListStatuses { filters: filters.to_vec() }).await
    }

    async fn abort(&self, r#ref: &str) -> Result<()> {
        self.client.call(Abort { r#ref: r#ref.to_string(), session: None }).await
    }

    async fn writer(
        &self,
        r#ref: &str,
        expected_digest: Option<Digest>,
        expected_size: Option<u64>,
    ) -> Result<RemoteWriter> {
        self.open_writer(r#ref, expected_digest, expected_size, false).await
    }
}

impl ContentClient {
    /// [`ContentStore::writer`] that writes (and has commit verify) the bytes even when the
    /// expected blob is already stored: see [`OpenWriter::prove`]. While another writer
    /// holds the ref it waits (up to `HELD_WAIT`, 5 min) instead of failing.
    pub async fn writer_proving(
        &self,
        r#ref: &str,
        expected_digest: Option<Digest>,
        expected_size: Option<u64>,
    ) -> Result<RemoteWriter> {
        self.open_writer(r#ref, expected_digest, expected_size, true).await
    }

    async fn open_writer(
        &self,
        r#ref: &str,
        expected_digest: Option<Digest>,
        expected_size: Option<u64>,
        prove: bool,
    ) -> Result<RemoteWriter> {
        let open = OpenWriter { r#ref: r#ref.to_string(), expected_digest, expected_size, prove };
        // A job proving its bytes (`prove`) waits for another job writing the same ref
        // (two pulls sharing a layer); the plain store interface answers at once.
        RemoteWriter::open(self.client.clone(), open, prove).await
    }
}
