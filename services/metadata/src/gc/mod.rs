//! Garbage collection: mark-and-sweep of records in one transaction ([`mark`]), then the
//! backend phase: every backend object that no namespace references is deleted — at once
//! if it ever had a record (its record was just swept, or an earlier pass failed to delete
//! it), after the grace period if it never had one (a crash between writing a blob and
//! recording it, or a store that lost its last writes, must not cost data). Ingests (writes
//! in progress) that no lease holds are aborted once they have not moved for the grace
//! period: their writer died and its lease went.
//!
//! Writes that could add references wait while a pass runs: they hold [`Collector::writer`]
//! (a shared lock) and a pass takes it exclusively, so nothing marked unreferenced can be
//! claimed before its backend object is gone.
//!
//! # Layout
//! - [`refs`] — containerd's GC labels.
//! - [`mark`] — mark and sweep of records.
//! - [`backend`] — the [`Backend`] trait and the content-service backend.

pub mod backend;
pub mod mark;
pub mod refs;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use berth_ipc::Result;
use berth_ipc::digest::Digest;
use berth_ipc::metadata::GcReport;
use tokio::sync::{RwLock, RwLockReadGuard};

pub use backend::{Backend, BackendObject, ObjectId};

use crate::store::{Read, Store, keys, now_ns};

/// Runs GC passes over a store and its backends.
pub struct Collector {
    store: Arc<Store>,
    backends: Vec<Arc<dyn Backend>>,
    grace: Duration,
    lock: RwLock<()>,
    /// `store.mutations()` when the last pass started.
    last_pass: std::sync::atomic::AtomicU64,
    /// Passes completed, and what they did, for `Metrics`.
    stats: GcStats,
}

/// Counters of completed passes.
#[derive(Debug, Default)]
pub struct GcStats {
    /// Passes that ran to the end (with or without backend errors).
    pub runs: std::sync::atomic::AtomicU64,
    /// How long the last one took, µs.
    pub last_us: std::sync::atomic::AtomicU64,
    /// Blobs and snapshots deleted by all passes.
    pub deleted: std::sync::atomic::AtomicU64,
    /// Passes that reported errors.
    pub failed: std::sync::atomic::AtomicU64,
}

impl Collector {
    /// A collector; backend objects that never had a record are spared while younger than
    /// `grace`.
    pub fn new(store: Arc<Store>, backends: Vec<Arc<dyn Backend>>, grace: Duration) -> Self {
        Collector {
            store,
            backends,
            grace,
            lock: RwLock::new(()),
            last_pass: 0.into(),
            stats: GcStats::default(),
        }
    }

    /// The shared side of the GC lock: held by every write that may add a reference.
    pub async fn writer(&self) -> RwLockReadGuard<'_, ()> {
        self.lock.read().await
    }

    /// Mutations since the last pass started.
    pub fn mutations_since_pass(&self) -> u64 {
        self.store.mutations().saturating_sub(self.last_pass.load(std::sync::atomic::Ordering::Relaxed))
    }

    /// Counters of the passes so far.
    pub fn stats(&self) -> &GcStats {
        &self.stats
    }

    /// Runs one full pass: mark and sweep the records, delete what no record references
    /// from each backend, forget the markers of objects gone, count and log the pass.
    pub async fn collect(&self) -> Result<GcReport> {
        let started = Instant::now();
        let _exclusive = self.lock.write().await;
        self.last_pass.store(self.store.mutations(), std::sync::atomic::Ordering::Relaxed);
        let (marked, known) = self.mark().await?;
        berth_ipc::failpoint!("metadata.gc.after_sweep");
        let mut report = GcReport {
            content_records: marked.content_records,
            snapshot_records: marked.snapshot_records,
            leases: marked.leases,
            mark_sweep_us: micros(started.elapsed()),
            ..GcReport::default()
        };
        let pass = Pass {
            marked: &marked,
            known: &known,
            now: now_ns(),
            grace: u64::try_from(self.grace.as_nanos()).unwrap_or(u64::MAX),
        };
        let mut forget: Vec<ObjectId> = Vec::new();
        for backend in &self.backends {
            pass.sweep(backend.as_ref(), &mut report, &mut forget).await;
        }
        berth_ipc::failpoint!("metadata.gc.before_forget");
        self.forget(forget).await?;
        report.total_us = micros(started.elapsed());
        self.record(&report);
        Ok(report)
    }

    /// Marks what the records reference and sweeps the unreferenced records; the marked set
    /// and the objects the store knows it once referenced.
    async fn mark(&self) -> Result<(mark::Marked, HashSet<ObjectId>)> {
        let store = self.store.clone();
        berth_service_kit::blocking("gc", move || {
            store.write(|tx| {
                let now = tx.now();
                let marked = mark::mark_and_sweep(tx, now)?;
                Ok((marked, read_known(tx)?))
            })
        })
        .await
    }

    /// Drops the markers of objects deleted or found gone.
    async fn forget(&self, forget: Vec<ObjectId>) -> Result<()> {
        if forget.is_empty() {
            return Ok(());
        }
        let store = self.store.clone();
        berth_service_kit::blocking("gc", move || {
            store.write(|tx| {
                for id in &forget {
                    match id {
                        ObjectId::Content(d) => tx.delete(&keys::known_content(d)),
                        ObjectId::Snapshot(sn, k) => tx.delete(&keys::known_snapshot(sn, k)),
                    }
                }
                Ok(())
            })
        })
        .await
    }

    /// Counts the pass in the stats and logs it.
    fn record(&self, report: &GcReport) {
        let relaxed = std::sync::atomic::Ordering::Relaxed;
        self.stats.runs.fetch_add(1, relaxed);
        self.stats.last_us.store(report.total_us, relaxed);
        self.stats.deleted.fetch_add(report.blobs_deleted + report.snapshots_deleted, relaxed);
        if !report.errors.is_empty() {
            self.stats.failed.fetch_add(1, relaxed);
        }
        tracing::info!(
            content_records = report.content_records,
            snapshot_records = report.snapshot_records,
            leases = report.leases,
            blobs = report.blobs_deleted,
            snapshots = report.snapshots_deleted,
            spared = report.spared,
            errors = report.errors.len(),
            ms = report.total_us / 1000,
            "gc pass"
        );
    }
}

/// What one pass decides by: the marked set, the objects once referenced, the pass's clock
/// and the grace of objects that never had a record.
struct Pass<'a> {
    marked: &'a mark::Marked,
    known: &'a HashSet<ObjectId>,
    now: u64,
    grace: u64,
}

impl Pass<'_> {
    /// Deletes `backend`'s unreferenced objects (and abandoned ingests); what it deleted or
    /// no longer holds of the known objects goes to `forget`.
    async fn sweep(&self, backend: &dyn Backend, report: &mut GcReport, forget: &mut Vec<ObjectId>) {
        let objects = match backend.list().await {
            Ok(o) => o,
            Err(e) => {
                report.errors.push(format!("{}: list: {e}", backend.name()));
                return;
            }
        };
        let mut present: HashSet<ObjectId> = HashSet::new();
        let mut doomed: Vec<(ObjectId, bool)> = Vec::new();
        for obj in objects {
            present.insert(obj.id.clone());
            let was_known = self.known.contains(&obj.id);
            if referenced(self.marked, &obj.id) {
                continue;
            }
            if !was_known && self.now.saturating_sub(obj.created_ns) < self.grace {
                report.spared += 1;
                continue;
            }
            doomed.push((obj.id, was_known));
        }
        delete_in_rounds(backend, doomed, report, forget).await;
        abort_ingests(backend, self.marked, self.now, self.grace, report).await;
        // Known objects that are unreferenced and no longer stored need no marker.
        forget.extend(
            self.known
                .iter()
                .filter(|id| backend.holds(id) && !present.contains(*id) && !referenced(self.marked, id))
                .cloned(),
        );
    }
}

/// Deletes `doomed` (each with whether the store knew it) from `backend` in rounds: a
/// snapshot refuses removal while it has children, so a parent may only go in the round
/// after its last child. Stops when a round deletes nothing; its errors go to the report.
async fn delete_in_rounds(
    backend: &dyn Backend,
    mut doomed: Vec<(ObjectId, bool)>,
    report: &mut GcReport,
    forget: &mut Vec<ObjectId>,
) {
    loop {
        let mut failed = Vec::new();
        let mut last_errors = Vec::new();
        let before = doomed.len();
        for (id, was_known) in doomed {
            match backend.delete(&id).await {
                Ok(()) => {
                    berth_ipc::failpoint!("metadata.gc.after_delete");
                    match id {
                        ObjectId::Content(_) => report.blobs_deleted += 1,
                        ObjectId::Snapshot(..) => report.snapshots_deleted += 1,
                    }
                    if was_known {
                        forget.push(id);
                    }
                }
                Err(e) => {
                    last_errors.push(format!("{}: delete {id}: {e}", backend.name()));
                    failed.push((id, was_known));
                }
            }
        }
        if failed.is_empty() || failed.len() == before {
            report.errors.extend(last_errors);
            return;
        }
        doomed = failed;
    }
}

/// Aborts the backend's ingests that no lease holds and that have not moved for `grace`:
/// a writer that died (its lease expired or was deleted) would otherwise leave them forever.
async fn abort_ingests(
    backend: &dyn Backend,
    marked: &mark::Marked,
    now: u64,
    grace: u64,
    report: &mut GcReport,
) {
    let ingests = match backend.ingests().await {
        Ok(i) => i,
        Err(e) => {
            report.errors.push(format!("{}: list ingests: {e}", backend.name()));
            return;
        }
    };
    for (r, updated) in ingests {
        if marked.ingests.contains(&r) || now.saturating_sub(updated) < grace {
            continue;
        }
        match backend.abort_ingest(&r).await {
            Ok(()) => tracing::info!(r#ref = %r, "gc: aborted an abandoned ingest"),
            Err(e) => report.errors.push(format!("{}: abort ingest {r:?}: {e}", backend.name())),
        }
    }
}

fn referenced(marked: &mark::Marked, id: &ObjectId) -> bool {
    match id {
        ObjectId::Content(d) => marked.content.contains(d),
        ObjectId::Snapshot(sn, k) => marked.snapshots.contains(&(sn.clone(), k.clone())),
    }
}

/// Every object that has had a record, as of the pass's transaction.
fn read_known(tx: &crate::store::Tx<'_>) -> Result<HashSet<ObjectId>> {
    let mut out = HashSet::new();
    for (k, _) in tx.scan_raw(&keys::known_contents())? {
        if let Some(d) = keys::last_part(&k).and_then(|s| Digest::parse(s).ok()) {
            out.insert(ObjectId::Content(d));
        }
    }
    let prefix = keys::known_snapshots_all();
    for (k, _) in tx.scan_raw(&prefix)? {
        let tail = std::str::from_utf8(&k[prefix.len()..]).ok();
        if let Some((sn, key)) = tail.and_then(|t| t.split_once('\0')) {
            out.insert(ObjectId::Snapshot(sn.to_string(), key.to_string()));
        }
    }
    Ok(out)
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}
