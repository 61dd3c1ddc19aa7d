//! The request handler: one `handle_<request>` per message. It picks the backend, scopes
//! the request's keys to its namespace (see [`crate::scope`]), runs the
//! store's blocking work on the blocking pool, fetches blobs through [`Blobs`], and
//! publishes `/snapshot/*` events.

use berth_service_kit::blocking;
use std::collections::BTreeMap;
use std::sync::Arc;

use berth_ipc::snapshot::{
    self as wire, Applied, Descriptor, Info, Kind, Mount, Snapshot, SnapshotRequest, SnapshotResponse,
    Unpacked, Usage,
};
use berth_ipc::{Context, Error, Handler, Reply, Result};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::backend::{Backend, BackendKind};
use crate::blobs::Blobs;
use crate::events::Events;
use crate::scope::{local, scoped, scoped_opt};
use crate::unpack::Source;

/// The snapshot service's state.
#[derive(Clone)]
pub struct SnapshotService {
    pub(crate) overlay: Arc<Backend>,
    pub(crate) native: Arc<Backend>,
    pub(crate) default: BackendKind,
    pub(crate) blobs: Arc<dyn Blobs>,
    pub(crate) unpack_slots: Arc<Semaphore>,
    pub(crate) events: Events,
}

impl SnapshotService {
    /// A service over `overlay` and `native`, reading blobs from `blobs`.
    pub fn new(
        overlay: Backend,
        native: Backend,
        default: BackendKind,
        blobs: Arc<dyn Blobs>,
        parallel: usize,
        events: Events,
    ) -> Self {
        SnapshotService {
            overlay: Arc::new(overlay),
            native: Arc::new(native),
            default,
            blobs,
            unpack_slots: Arc::new(Semaphore::new(parallel.max(1))),
            events,
        }
    }

    /// The backend named `name` (empty: the default).
    pub fn backend(&self, name: &str) -> Result<Arc<Backend>> {
        let kind = if name.is_empty() { self.default } else { BackendKind::parse(name)? };
        Ok(match kind {
            BackendKind::Overlay => self.overlay.clone(),
            BackendKind::Native => self.native.clone(),
        })
    }

    async fn handle_create(
        &self,
        sn: &str,
        ns: &str,
        key: String,
        parent: Option<String>,
        labels: BTreeMap<String, String>,
        kind: Kind,
    ) -> Result<Vec<Mount>> {
        let b = self.backend(sn)?;
        let (k, p) = (scoped(ns, &key)?, scoped_opt(ns, parent.as_deref())?);
        let (k2, p2) = (k.clone(), p.clone());
        let mounts = blocking("snapshot task", move || b.create(&k2, p2.as_deref(), labels, kind)).await?;
        self.events.prepare(self.backend(sn)?.kind().name(), &k, p.as_deref());
        Ok(mounts)
    }

    async fn handle_commit(&self, r: wire::Commit) -> Result<()> {
        let b = self.backend(&r.snapshotter)?;
        let (name, key) = (scoped(&r.namespace, &r.name)?, scoped(&r.namespace, &r.key)?);
        let sn = b.kind().name();
        let (n2, k2) = (name.clone(), key.clone());
        blocking("snapshot task", move || b.commit(&n2, &k2, r.labels)).await?;
        self.events.commit(sn, &key, &name);
        Ok(())
    }

    async fn handle_remove(&self, r: wire::KeyRef) -> Result<()> {
        let b = self.backend(&r.snapshotter)?;
        let sn = b.kind().name();
        let key = scoped(&r.namespace, &r.key)?;
        let k2 = key.clone();
        blocking("snapshot task", move || b.remove(&k2)).await?;
        self.events.remove(sn, &key);
        Ok(())
    }

    async fn handle_mounts(&self, r: wire::KeyRef) -> Result<Vec<Mount>> {
        let b = self.backend(&r.snapshotter)?;
        let key = scoped(&r.namespace, &r.key)?;
        blocking("snapshot task", move || b.mounts(&key)).await
    }

    async fn handle_stat(&self, r: wire::KeyRef) -> Result<Info> {
        let b = self.backend(&r.snapshotter)?;
        let key = scoped(&r.namespace, &r.key)?;
        blocking("snapshot task", move || b.stat(&key)).await.map(local)
    }

    async fn handle_update(&self, r: wire::Update) -> Result<Info> {
        let b = self.backend(&r.snapshotter)?;
        let key = scoped(&r.namespace, &r.key)?;
        blocking("snapshot task", move || b.update(&key, r.labels, &r.fieldpaths)).await.map(local)
    }

    async fn handle_usage(&self, r: wire::KeyRef) -> Result<Usage> {
        let b = self.backend(&r.snapshotter)?;
        let key = scoped(&r.namespace, &r.key)?;
        blocking("snapshot task", move || b.usage(&key)).await
    }

    async fn handle_list(&self, r: wire::List) -> Result<Vec<Info>> {
        let b = self.backend(&r.snapshotter)?;
        if !r.all_namespaces {
            berth_ipc::names::validate_namespace(&r.namespace)?;
        }
        let ns = (!r.all_namespaces).then_some(r.namespace);
        blocking("snapshot task", move || b.list(ns.as_deref(), &r.filters)).await
    }

    async fn handle_cleanup(&self, r: wire::Cleanup) -> Result<u64> {
        let b = self.backend(&r.snapshotter)?;
        blocking("snapshot task", move || b.cleanup()).await
    }

    /// `Apply`: the blob's fd from content, extracted on the blocking pool.
    pub async fn handle_apply(&self, r: wire::Apply) -> Result<Applied> {
        let b = self.backend(&r.snapshotter)?;
        let key = scoped(&r.namespace, &r.key)?;
        b.active_dir(&key)?;
        let file = self.blobs.open(r.digest).await?;
        let _slot = self
            .unpack_slots
            .acquire()
            .await
            .map_err(|_| Error::unavailable("snapshot service: shutting down"))?;
        blocking("snapshot task", move || b.apply(&key, file)).await
    }

    async fn handle_unpack(&self, r: wire::Unpack, source: Source) -> Result<Unpacked> {
        crate::unpack::unpack(self, r, source).await
    }

    async fn handle_diff(&self, mut r: wire::Diff) -> Result<Descriptor> {
        // The diff works on index keys: both sides are this namespace's.
        r.upper = scoped(&r.namespace, &r.upper)?;
        r.lower = scoped_opt(&r.namespace, r.lower.as_deref())?;
        crate::diff::diff(self, r).await
    }
}

impl SnapshotService {
    /// Answers one request (the in-process [`crate::store::Local`]).
    pub async fn dispatch(&self, req: SnapshotRequest) -> Result<SnapshotResponse> {
        self.dispatch_until(req, CancellationToken::new()).await
    }

    /// Answers one request whose caller is gone once `cancel` is cancelled.
    pub async fn dispatch_until(
        &self,
        req: SnapshotRequest,
        cancel: CancellationToken,
    ) -> Result<SnapshotResponse> {
        use SnapshotRequest as Q;
        use SnapshotResponse as A;
        let r = match req {
            Q::Prepare(r) => self
                .handle_create(&r.snapshotter, &r.namespace, r.key, r.parent, r.labels, Kind::Active)
                .await
                .map(A::Prepare),
            Q::View(r) => self
                .handle_create(&r.snapshotter, &r.namespace, r.key, r.parent, r.labels, Kind::View)
                .await
                .map(A::View),
            Q::Commit(r) => self.handle_commit(r).await.map(A::Commit),
            Q::Mounts(r) => self.handle_mounts(r.0).await.map(A::Mounts),
            Q::Remove(r) => self.handle_remove(r.0).await.map(A::Remove),
            Q::Stat(r) => self.handle_stat(r.0).await.map(A::Stat),
            Q::Update(r) => self.handle_update(r).await.map(A::Update),
            Q::Usage(r) => self.handle_usage(r.0).await.map(A::Usage),
            Q::List(r) => self.handle_list(r).await.map(A::List),
            Q::Cleanup(r) => self.handle_cleanup(r).await.map(A::Cleanup),
            Q::Apply(r) => self.handle_apply(r).await.map(A::Apply),
            Q::Unpack(r) => self.handle_unpack(r, Source::Committed).await.map(A::Unpack),
            Q::UnpackFollow(r) => self.handle_unpack(r.0, Source::Follow(cancel)).await.map(A::UnpackFollow),
            Q::Diff(r) => self.handle_diff(r).await.map(A::Diff),
        };
        if let Err(e) = &r {
            tracing::debug!(code = %e.code, "snapshot request failed: {e}");
        }
        r
    }
}

impl Handler<Snapshot> for SnapshotService {
    async fn handle(&self, req: SnapshotRequest, ctx: Context) -> Reply<SnapshotResponse> {
        Reply::Unary(self.dispatch_until(req, ctx.cancel).await)
    }

    fn gauges(&self) -> Vec<(String, f64)> {
        let mut g: Vec<(String, f64)> = [&self.overlay, &self.native]
            .iter()
            .map(|b| (format!("snapshots.{}", b.kind().name()), b.lock().snapshots.len() as f64))
            .collect();
        g.push(("unpack_slots_free".into(), self.unpack_slots.available_permits() as f64));
        g
    }
}
