//! [`ContentClient`]: the content service through its socket, as a [`ContentStore`].
//!
//! Its writer pipelines: [`RemoteWriter::push`] sends a chunk without waiting for the
//! previous ones to be answered, keeping up to [`PIPELINE_DEPTH`] in flight; errors surface
//! at the next push, flush or commit.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};

use tokio::task::JoinHandle;

use crate::client::{Client, Stream};
use crate::content::store::{ContentStore, ContentWriter};
use crate::content::{
    Abort, BlobInfo, Bytes, CommitWriter, Content, Delete, Info, IngestStatus, List, ListStatuses,
    OpenWriter, Read, Status, WriteChunk, WriterEvent, readfd,
};
use crate::digest::Digest;
use crate::error::{Error, Result};

/// Chunks a [`RemoteWriter`] keeps in flight.
pub const PIPELINE_DEPTH: usize = 4;

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
        readfd::read_fd(&self.fd_socket(), digest).await
    }

    /// The open read-only file of a blob, or of the ingest in progress that is to become it
    /// (see [`readfd::follow_fd`]).
    pub async fn follow_fd(&self, digest: &Digest) -> Result<readfd::FollowFd> {
        readfd::follow_fd(&self.fd_socket(), digest).await
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

    async fn read(&self, digest: &Digest, offset: u64, length: Option<u64>) -> Result<Vec<u8>> {
        let mut s = self.client.stream(Read { digest: *digest, offset, length }).await?;
        let mut out = Vec::new();
        while let Some(chunk) = s.next().await {
            let chunk = chunk?;
            if chunk.offset != offset + out.len() as u64 {
                return Err(Error::internal(format!("blob {digest}: read chunk out of order")));
            }
            out.extend_from_slice(&chunk.data.0);
        }
        Ok(out)
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
    /// expected blob is already stored: see [`OpenWriter::prove`].
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
        let mut lock = self.client.stream(open).await?;
        match lock.next().await {
            Some(Ok(WriterEvent::Opened { session, status })) => Ok(RemoteWriter {
                client: self.client.clone(),
                _lock: lock,
                session,
                seq: 0,
                offset: status.offset,
                status,
                inflight: VecDeque::new(),
            }),
            Some(Err(e)) => Err(e),
            None => Err(Error::unavailable(format!("ingest {ref:?}: writer stream ended before opening"))),
        }
    }
}

/// An open ingest on the content service. Dropping it releases the ref's lock.
pub struct RemoteWriter {
    client: Client<Content>,
    /// The `OpenWriter` stream: the lock lives as long as it does.
    _lock: Stream<OpenWriter>,
    session: u64,
    /// The next chunk's `seq`.
    seq: u64,
    /// Where the next pushed chunk goes.
    offset: u64,
    status: IngestStatus,
    inflight: VecDeque<JoinHandle<Result<u64>>>,
}

impl RemoteWriter {
    /// The session id.
    pub fn session(&self) -> u64 {
        self.session
    }

    /// Where the next pushed chunk will be written.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Sends `data` at the current offset without waiting for its answer (at most
    /// [`PIPELINE_DEPTH`] in flight; waits for the oldest when full).
    pub async fn push(&mut self, data: Vec<u8>) -> Result<()> {
        while self.inflight.len() >= PIPELINE_DEPTH {
            self.settle_oldest().await?;
        }
        let len = data.len() as u64;
        let req = WriteChunk { session: self.session, seq: self.seq, offset: self.offset, data: Bytes(data) };
        self.seq += 1;
        let client = self.client.clone();
        self.inflight.push_back(tokio::spawn(async move { client.call(req).await }));
        self.offset += len;
        Ok(())
    }

    /// Has the service read `fd` to its end and append it (over the fd socket, so the bytes
    /// do not cross a socket); returns the new end. Waits for pushed chunks first.
    pub async fn append_from(&mut self, fd: std::os::fd::BorrowedFd<'_>) -> Result<u64> {
        self.flush().await?;
        let req = readfd::AppendFdRequest { session: self.session, seq: self.seq, offset: self.offset };
        self.seq += 1;
        let socket = self.client.socket().parent().unwrap_or(Path::new(".")).join(readfd::SOCKET_NAME);
        let end = readfd::append_fd(&socket, req, fd).await?;
        self.status.offset = end;
        self.offset = end;
        Ok(end)
    }

    /// Waits for every pushed chunk; returns the service's offset.
    pub async fn flush(&mut self) -> Result<u64> {
        while !self.inflight.is_empty() {
            self.settle_oldest().await?;
        }
        Ok(self.status.offset)
    }

    async fn settle_oldest(&mut self) -> Result<()> {
        let Some(handle) = self.inflight.pop_front() else { return Ok(()) };
        let result = handle.await.map_err(|e| Error::internal(format!("write task: {e}")))?;
        match result {
            Ok(end) => {
                self.status.offset = end;
                Ok(())
            }
            Err(e) => {
                for h in self.inflight.drain(..) {
                    h.abort();
                }
                self.offset = self.status.offset;
                Err(e)
            }
        }
    }
}

impl ContentWriter for RemoteWriter {
    fn status(&self) -> IngestStatus {
        self.status.clone()
    }

    async fn write_at(&mut self, offset: u64, data: Vec<u8>) -> Result<u64> {
        self.flush().await?;
        let len = data.len() as u64;
        let req = WriteChunk { session: self.session, seq: self.seq, offset, data: Bytes(data) };
        self.seq += 1;
        let end = self.client.call(req).await?;
        debug_assert_eq!(end, offset + len);
        self.status.offset = end;
        self.offset = end;
        Ok(end)
    }

    async fn commit(mut self, size: Option<u64>, digest: Option<Digest>) -> Result<BlobInfo> {
        self.flush().await?;
        self.client.call(CommitWriter { session: self.session, size, digest }).await
    }

    async fn abort(mut self) -> Result<()> {
        let _ = self.flush().await;
        let r = self.status.r#ref.clone();
        self.client.call(Abort { r#ref: r, session: Some(self.session) }).await
    }
}
