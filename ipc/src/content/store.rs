//! The content store's interface, shared by the service's local store and the socket
//! proxy ([`super::proxy::ContentClient`]), so one conformance suite runs against both.

use std::future::Future;

use crate::content::{BlobInfo, IngestStatus};
use crate::digest::Digest;
use crate::error::Result;

/// A blob store with resumable, ref-keyed ingests (containerd's content store).
pub trait ContentStore: Send + Sync {
    /// An open ingest holding its ref's writer lock until it is dropped or committed.
    type Writer: ContentWriter;

    /// A blob's info; `NotFound` if absent.
    fn info(&self, digest: &Digest) -> impl Future<Output = Result<BlobInfo>> + Send;
    /// Blobs matching `filters` (containerd syntax, fields `digest` and `size`).
    fn list(&self, filters: &[String]) -> impl Future<Output = Result<Vec<BlobInfo>>> + Send;
    /// Removes a blob; `NotFound` if absent.
    fn delete(&self, digest: &Digest) -> impl Future<Output = Result<()>> + Send;
    /// Up to `length` bytes (all when `None`) from `offset`; past the end is `OutOfRange`.
    fn read(
        &self,
        digest: &Digest,
        offset: u64,
        length: Option<u64>,
    ) -> impl Future<Output = Result<Vec<u8>>> + Send;
    /// An ingest's status; `NotFound` if there is none.
    fn status(&self, r#ref: &str) -> impl Future<Output = Result<IngestStatus>> + Send;
    /// Ingests matching `filters` (field `ref`).
    fn list_statuses(&self, filters: &[String]) -> impl Future<Output = Result<Vec<IngestStatus>>> + Send;
    /// Drops an ingest; `NotFound` if none, `Unavailable` while a writer holds it.
    fn abort(&self, r#ref: &str) -> impl Future<Output = Result<()>> + Send;
    /// Opens (or resumes) the ingest `ref`; `Unavailable` if another writer holds it.
    fn writer(
        &self,
        r#ref: &str,
        expected_digest: Option<Digest>,
        expected_size: Option<u64>,
    ) -> impl Future<Output = Result<Self::Writer>> + Send;
}

/// A held ingest.
pub trait ContentWriter: Send {
    /// The ingest's status when it was opened, with the offset updated by writes.
    fn status(&self) -> IngestStatus;
    /// Writes `data` at `offset` (the current end, or 0 to restart); returns the new end.
    fn write_at(&mut self, offset: u64, data: Vec<u8>) -> impl Future<Output = Result<u64>> + Send;
    /// Verifies size and digest and commits the blob, releasing the lock.
    fn commit(
        self,
        size: Option<u64>,
        digest: Option<Digest>,
    ) -> impl Future<Output = Result<BlobInfo>> + Send;
    /// Drops the ingest and its data, releasing the lock.
    fn abort(self) -> impl Future<Output = Result<()>> + Send;
}
