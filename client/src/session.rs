//! [`Session`]: one distribution job in one namespace under one lease. Everything it writes
//! (ingests, blobs, content records, snapshot records) is added to the lease from the first
//! byte, so garbage collection cannot take half an image; dropping the lease at the end
//! leaves only what the image record (and its reference labels) keeps.

use berth_ipc::sync::lock;
use std::collections::BTreeMap;

use berth_ipc::content::proxy::{ContentClient, RemoteWriter};
use berth_ipc::content::store::{ContentStore, ContentWriter};
use berth_ipc::metadata::{
    AddLeaseResource, CreateLease, DeleteLease, GetContent, LeaseResource, LeaseResourceRequest, PutContent,
    PutSnapshot, RenewLease, SnapshotRecord,
};
use berth_ipc::{Code, Digest, Result};

use crate::Services;

/// Lease lifetime: a live session renews its lease every [`RENEW_EVERY`], so this only says
/// how long a killed client's lease (and what only it protects) outlives the client.
const LEASE_TTL_MS: u64 = 5 * 60 * 1000;
/// How often a live session pushes its lease's expiry out.
const RENEW_EVERY: std::time::Duration = std::time::Duration::from_secs(60);
/// Bytes per content write.
pub const CHUNK: usize = 4 << 20;

/// A namespace, a lease, and the services.
pub struct Session {
    /// The services.
    pub services: Services,
    /// The content service with its store interface.
    pub content: ContentClient,
    /// The namespace.
    pub namespace: String,
    /// The lease id.
    pub lease: String,
    /// The snapshotter (empty: the service's default, `overlayfs`).
    pub snapshotter: String,
    /// Renews the lease while the session lives.
    heartbeat: tokio::task::JoinHandle<()>,
    /// Blobs whose bytes this session wrote and had verified: this namespace may record
    /// them, and need not write them again.
    proved: std::sync::Mutex<std::collections::HashSet<Digest>>,
}

impl Drop for Session {
    fn drop(&mut self) {
        self.heartbeat.abort();
    }
}

/// Renews lease `id` every [`RENEW_EVERY`] until aborted. A renewal that fails is retried at
/// the next beat; one refused because the lease is gone ends the beat (the job's own calls
/// under the lease then fail with `NotFound`).
async fn heartbeat(services: Services, namespace: String, id: String) {
    loop {
        tokio::time::sleep(RENEW_EVERY).await;
        let req = RenewLease { namespace: namespace.clone(), id: id.clone(), ttl_ms: LEASE_TTL_MS };
        match services.metadata.call(req).await {
            Ok(_) => {}
            Err(e) if e.is(Code::NotFound) => return,
            Err(_) => {}
        }
    }
}

/// A lease id unique to this job: purpose, pid, and the clock's nanoseconds.
fn lease_id(purpose: &str) -> String {
    let nanos =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    let purpose: String = purpose.chars().filter(char::is_ascii_alphanumeric).take(16).collect();
    format!("{}-{}-{nanos:x}", if purpose.is_empty() { "job" } else { &purpose }, std::process::id())
}

impl Session {
    /// Opens a session: creates a lease labelled with `purpose`.
    pub async fn open(services: &Services, namespace: &str, purpose: &str) -> Result<Session> {
        berth_ipc::names::validate_namespace(namespace)?;
        let labels = BTreeMap::from([("berth.io/purpose".to_string(), purpose.to_string())]);
        // The id is chosen here, so a create whose answer was lost (metadata restarted) can
        // be sent again: `AlreadyExists` for this id is the first create's success.
        let id = lease_id(purpose);
        let req = CreateLease {
            namespace: namespace.to_string(),
            id: id.clone(),
            labels,
            ttl_ms: Some(LEASE_TTL_MS),
        };
        let lease = match services.metadata.call_repeatable(req).await {
            Ok(l) => l,
            Err(e) if e.is(Code::AlreadyExists) => {
                services
                    .metadata
                    .call(RenewLease { namespace: namespace.into(), id, ttl_ms: LEASE_TTL_MS })
                    .await?
            }
            Err(e) => return Err(e),
        };
        let heartbeat = tokio::spawn(heartbeat(services.clone(), namespace.to_string(), lease.id.clone()));
        Ok(Session {
            services: services.clone(),
            content: ContentClient::new(services.content.clone()),
            namespace: namespace.to_string(),
            lease: lease.id,
            snapshotter: "overlayfs".to_string(),
            heartbeat,
            proved: Default::default(),
        })
    }

    /// Ends the session: deletes the lease (what nothing else references goes at the next GC).
    pub async fn close(&self) -> Result<()> {
        self.heartbeat.abort();
        let req = DeleteLease { namespace: self.namespace.clone(), id: self.lease.clone(), sync: false };
        // A repeat after a lost answer finds the lease gone: `NotFound` is success too.
        match self.services.metadata.call_repeatable(req).await {
            Err(e) if !e.is(Code::NotFound) => Err(e),
            _ => Ok(()),
        }
    }

    async fn lease_add(&self, resource: LeaseResource) -> Result<()> {
        let req =
            LeaseResourceRequest { namespace: self.namespace.clone(), lease: self.lease.clone(), resource };
        self.services.metadata.call(AddLeaseResource(req)).await
    }

    /// Records a blob in the namespace (replacing its labels) under the lease.
    pub async fn record(&self, digest: Digest, size: u64, labels: BTreeMap<String, String>) -> Result<()> {
        let req = PutContent {
            namespace: self.namespace.clone(),
            digest,
            size,
            labels,
            lease: Some(self.lease.clone()),
        };
        self.services.metadata.call(req).await.map(drop)
    }

    /// Records a snapshot under the lease.
    pub async fn record_snapshot(&self, key: String, parent: Option<String>) -> Result<()> {
        let snapshot = SnapshotRecord {
            snapshotter: self.snapshotter.clone(),
            key,
            parent,
            labels: BTreeMap::new(),
            created: 0,
            updated: 0,
        };
        let req =
            PutSnapshot { namespace: self.namespace.clone(), snapshot, lease: Some(self.lease.clone()) };
        self.services.metadata.call(req).await.map(drop)
    }

    /// Does this namespace already have the blob (a record of it here, and its bytes in the
    /// content store)? A blob only another namespace has counts as absent: the session must
    /// write its bytes (see [`Session::writer`]) before this namespace records it.
    pub async fn has_blob(&self, digest: &Digest) -> Result<Option<u64>> {
        if !lock(&self.proved).contains(digest) {
            let get = GetContent { namespace: self.namespace.clone(), digest: *digest };
            match self.services.metadata.call(get).await {
                Ok(_) => {}
                Err(e) if e.is(Code::NotFound) => return Ok(None),
                Err(e) => return Err(e),
            }
        }
        match self.content.info(digest).await {
            Ok(i) => Ok(Some(i.size)),
            Err(e) if e.is(Code::NotFound) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Is the blob in the content store at all (any namespace's)? Only for blobs this session
    /// has written or this namespace has recorded: what the session is about to record.
    pub async fn stored(&self, digest: &Digest) -> Result<Option<u64>> {
        match self.content.info(digest).await {
            Ok(i) => Ok(Some(i.size)),
            Err(e) if e.is(Code::NotFound) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Notes that this session wrote `digest`'s bytes and the content service verified them.
    pub fn proved(&self, digest: Digest) {
        lock(&self.proved).insert(digest);
    }

    /// Adds a blob to the lease.
    pub async fn protect(&self, digest: Digest) -> Result<()> {
        self.lease_add(LeaseResource::Content(digest)).await
    }

    /// Opens the ingest `ref` under the lease (resuming whatever it holds). The bytes are
    /// written even when another namespace already stored the blob: commit verifies them
    /// (answering `AlreadyExists`, which [`commit`] takes for success), so this namespace's
    /// record of a blob always rests on bytes it supplied.
    pub async fn writer(&self, r#ref: &str, expected: Option<(Digest, u64)>) -> Result<RemoteWriter> {
        self.lease_add(LeaseResource::Ingest(r#ref.to_string())).await?;
        if let Some((d, _)) = expected {
            self.lease_add(LeaseResource::Content(d)).await?;
        }
        self.content.writer_proving(r#ref, expected.map(|e| e.0), expected.map(|e| e.1)).await
    }

    /// Writes a whole small blob (a config or manifest) and returns its digest.
    pub async fn put_bytes(&self, data: &[u8]) -> Result<Digest> {
        let digest = Digest::of(data);
        // Lease first, look second: a blob seen present and only then leased could be
        // collected in between.
        self.protect(digest).await?;
        if self.has_blob(&digest).await?.is_some() {
            return Ok(digest);
        }
        let mut w = self.writer(&format!("put-{digest}"), Some((digest, data.len() as u64))).await?;
        let mut first = true;
        for chunk in data.chunks(CHUNK) {
            if first {
                w.write_at(0, chunk.to_vec()).await?;
                first = false;
            } else {
                w.push(chunk.to_vec()).await?;
            }
        }
        commit(w, data.len() as u64, digest).await?;
        self.proved(digest);
        Ok(digest)
    }

    /// A small blob's bytes, refusing blobs over [`crate::oci::MAX_JSON`].
    pub async fn get_json(&self, digest: &Digest) -> Result<Vec<u8>> {
        crate::image::get_json(&self.content, digest).await
    }
}

/// Commits a writer, treating an already present blob as success.
pub async fn commit(w: RemoteWriter, size: u64, digest: Digest) -> Result<()> {
    match w.commit(Some(size), Some(digest)).await {
        Ok(_) => Ok(()),
        Err(e) if e.is(Code::AlreadyExists) => Ok(()),
        Err(e) => Err(e),
    }
}

pub use berth_ipc::digest::chain_ids;
