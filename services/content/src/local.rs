//! The store in-process, behind the same [`ContentStore`] trait as the socket proxy, so the
//! conformance suite runs against both. Calls run on the blocking pool.

use berth_service_kit::blocking;
use std::sync::Arc;

use berth_ipc::content::store::{ContentStore, ContentWriter};
use berth_ipc::content::{BlobInfo, IngestStatus};
use berth_ipc::filter::{Adaptor, Filters};
use berth_ipc::{Digest, Error, Result};

use crate::ingest::{self, Ingest};
use crate::store::Store;

/// The local store.
#[derive(Clone)]
pub struct LocalStore {
    store: Arc<Store>,
}

impl LocalStore {
    /// Wraps an open store.
    pub fn new(store: Arc<Store>) -> Self {
        LocalStore { store }
    }
}

struct RefField<'a>(&'a IngestStatus);

impl Adaptor for RefField<'_> {
    fn field(&self, path: &[String]) -> Option<std::borrow::Cow<'_, str>> {
        match path {
            [f] if f == "ref" => Some(std::borrow::Cow::Borrowed(self.0.r#ref.as_str())),
            _ => None,
        }
    }
}

/// Ingests matching containerd-style filters on `ref`.
pub fn filter_statuses(all: Vec<IngestStatus>, filters: &[String]) -> Result<Vec<IngestStatus>> {
    let filters = Filters::parse(filters)?;
    Ok(all.into_iter().filter(|s| filters.matches(&RefField(s))).collect())
}

impl ContentStore for LocalStore {
    type Writer = LocalWriter;

    async fn info(&self, digest: &Digest) -> Result<BlobInfo> {
        let (s, d) = (self.store.clone(), *digest);
        blocking("content worker", move || s.info(&d)).await
    }

    async fn list(&self, filters: &[String]) -> Result<Vec<BlobInfo>> {
        let (s, f) = (self.store.clone(), filters.to_vec());
        blocking("content worker", move || s.list(&f)).await
    }

    async fn delete(&self, digest: &Digest) -> Result<()> {
        let (s, d) = (self.store.clone(), *digest);
        blocking("content worker", move || s.delete(&d)).await
    }

    async fn read(&self, digest: &Digest, offset: u64, length: Option<u64>) -> Result<Vec<u8>> {
        let (s, d) = (self.store.clone(), *digest);
        blocking("content worker", move || {
            let (file, size) = s.open_blob(&d)?;
            let end = Store::range(&d, size, offset, length)?;
            let len = usize::try_from(end - offset).map_err(|_| Error::invalid("read too large"))?;
            Store::read_chunk(&file, &d, offset, len)
        })
        .await
    }

    async fn status(&self, r#ref: &str) -> Result<IngestStatus> {
        let (s, r) = (self.store.clone(), r#ref.to_string());
        blocking("content worker", move || ingest::status(&s, &r)).await
    }

    async fn list_statuses(&self, filters: &[String]) -> Result<Vec<IngestStatus>> {
        let s = self.store.clone();
        let all = blocking("content worker", move || ingest::list(&s)).await?;
        filter_statuses(all, filters)
    }

    async fn abort(&self, r#ref: &str) -> Result<()> {
        let (s, r) = (self.store.clone(), r#ref.to_string());
        blocking("content worker", move || ingest::abort(&s, &r)).await
    }

    async fn writer(
        &self,
        r#ref: &str,
        expected_digest: Option<Digest>,
        expected_size: Option<u64>,
    ) -> Result<LocalWriter> {
        let (s, r) = (self.store.clone(), r#ref.to_string());
        let ingest =
            blocking("content worker", move || Ingest::open(&s, &r, expected_digest, expected_size)).await?;
        Ok(LocalWriter { store: self.store.clone(), ingest: Some(ingest) })
    }
}

/// A local open ingest.
pub struct LocalWriter {
    store: Arc<Store>,
    /// Always `Some` outside a blocking call.
    ingest: Option<Ingest>,
}

impl LocalWriter {
    async fn with<T: Send + 'static>(
        &mut self,
        f: impl FnOnce(&mut Ingest, &Store) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let mut ingest = self.ingest.take().ok_or_else(|| Error::internal("writer lost its ingest"))?;
        let store = self.store.clone();
        let (ingest, result) = tokio::task::spawn_blocking(move || {
            let r = f(&mut ingest, &store);
            (ingest, r)
        })
        .await
        .map_err(|e| Error::internal_cause("content worker", e))?;
        self.ingest = Some(ingest);
        result
    }
}

impl ContentWriter for LocalWriter {
    fn status(&self) -> IngestStatus {
        self.ingest.as_ref().map(|i| i.status().clone()).unwrap_or_else(|| IngestStatus {
            r#ref: String::new(),
            offset: 0,
            total: None,
            expected: None,
            started_at_ns: 0,
            updated_at_ns: 0,
        })
    }

    async fn write_at(&mut self, offset: u64, data: Vec<u8>) -> Result<u64> {
        self.with(move |i, _| i.write_at(offset, &data)).await
    }

    async fn commit(mut self, size: Option<u64>, digest: Option<Digest>) -> Result<BlobInfo> {
        self.with(move |i, s| i.commit(s, size, digest)).await
    }

    async fn abort(mut self) -> Result<()> {
        self.with(|i, _| {
            i.remove();
            Ok(())
        })
        .await
    }
}
