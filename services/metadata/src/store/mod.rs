//! The store: every record in one fjall keyspace, read through snapshots and written in
//! single-writer transactions that are fsynced (`SyncAll`) before they return.
//!
//! Group commit: a transaction commits into the journal under fjall's writer lock, then
//! waits outside it until a `SyncAll` that started after its commit has finished. One
//! fsync thus covers every transaction committed while the previous one ran, so concurrent
//! writers share fsyncs instead of queueing for their own; each still returns only once
//! its own write is on disk.
//!
//! This layer knows nothing about sockets: the service calls it from blocking tasks.

pub mod containers;
pub mod images;
pub mod keys;
pub mod leases;
mod migrate;
pub mod namespaces;
pub mod records;
pub mod sandboxes;
pub mod update;

use berth_ipc::sync::{lock, wait};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};

use berth_ipc::{Error, Result, codec};
use fjall::{KeyspaceCreateOptions, PersistMode, Readable, SingleWriterTxDatabase, SingleWriterTxKeyspace};
use serde::Serialize;
use serde::de::DeserializeOwned;

pub use migrate::{FORMAT_VERSION, MIGRATIONS, Migration, stored_version};

/// The metadata store.
pub struct Store {
    db: SingleWriterTxDatabase,
    ks: SingleWriterTxKeyspace,
    mutations: AtomicU64,
    sync: Mutex<SyncState>,
    synced: Condvar,
}

/// Group-commit bookkeeping: transactions are numbered as they commit.
#[derive(Default)]
struct SyncState {
    /// Number of the last committed transaction.
    committed: u64,
    /// Every transaction up to this number is on disk.
    synced: u64,
    /// A `SyncAll` is running.
    syncing: bool,
}

/// A write transaction: reads see its own writes; nothing is visible to others before
/// [`Store::write`] commits it.
pub struct Tx<'a> {
    tx: fjall::SingleWriterWriteTx<'a>,
    ks: &'a SingleWriterTxKeyspace,
    now: u64,
}

/// A consistent read view.
pub struct View<'a> {
    snap: fjall::Snapshot,
    ks: &'a SingleWriterTxKeyspace,
}

/// Maps a storage error: the store is broken, not the request.
pub fn storage(err: fjall::Error) -> Error {
    Error::internal_cause("metadata store", err)
}

/// Nanoseconds since the Unix epoch (the kit's clock).
pub use berth_service_kit::time::now_ns;

/// Memtables flushed at 4 MiB: a restart replays at most that much journal.
fn keyspace_options() -> KeyspaceCreateOptions {
    KeyspaceCreateOptions::default().max_memtable_size(4 << 20)
}

impl Store {
    /// Opens (or creates) the store in `dir` and brings its format up to date.
    pub fn open(dir: &Path) -> Result<Store> {
        Store::open_with(dir, MIGRATIONS)
    }

    /// Opens the store running `migrations` (tests pass their own list).
    pub fn open_with(dir: &Path, migrations: &[Migration]) -> Result<Store> {
        let db = SingleWriterTxDatabase::builder(dir).open().map_err(storage)?;
        let ks = db.keyspace("metadata", keyspace_options).map_err(storage)?;
        // What the journal replay just rebuilt goes to a table now, so the next start does not
        // replay it again (with the default 64 MiB memtable a small store never flushed, and
        // every restart replayed its whole history: 0.2 s grew to 8.7 s in a 20-minute soak).
        // In the background: the flush is not on the restart's path (a process killed again
        // before it ends replays the same journal once more).
        ks.inner().rotate_memtable().map_err(storage)?;
        let store =
            Store { db, ks, mutations: AtomicU64::new(0), sync: Mutex::default(), synced: Condvar::new() };
        migrate::run(&store, migrations)?;
        Ok(store)
    }

    /// Runs `f` in a write transaction and commits it durably if `f` succeeds; on error
    /// nothing is written.
    pub fn write<T>(&self, f: impl FnOnce(&mut Tx<'_>) -> Result<T>) -> Result<T> {
        let mut tx =
            Tx { tx: self.db.write_tx().durability(Some(PersistMode::Buffer)), ks: &self.ks, now: now_ns() };
        let out = f(&mut tx)?;
        berth_ipc::failpoint!("metadata.tx.before_commit");
        tx.tx.commit().map_err(storage)?;
        berth_ipc::failpoint!("metadata.tx.after_commit");
        let number = {
            let mut s = self.lock_sync();
            s.committed += 1;
            s.committed
        };
        self.wait_durable(number)?;
        berth_ipc::failpoint!("metadata.tx.after_sync");
        self.mutations.fetch_add(1, Ordering::Relaxed);
        Ok(out)
    }

    fn lock_sync(&self) -> MutexGuard<'_, SyncState> {
        lock(&self.sync)
    }

    /// Returns once transaction `number` is on disk, running the `SyncAll` itself when no
    /// other writer is.
    fn wait_durable(&self, number: u64) -> Result<()> {
        let mut s = self.lock_sync();
        loop {
            if s.synced >= number {
                return Ok(());
            }
            if s.syncing {
                s = wait(&self.synced, s);
                continue;
            }
            s.syncing = true;
            let target = s.committed;
            drop(s);
            let result = self.db.persist(PersistMode::SyncAll);
            s = self.lock_sync();
            s.syncing = false;
            if result.is_ok() {
                s.synced = s.synced.max(target);
            }
            self.synced.notify_all();
            result.map_err(storage)?;
        }
    }

    /// A consistent read view of the store.
    pub fn view(&self) -> View<'_> {
        View { snap: self.db.read_tx(), ks: &self.ks }
    }

    /// Write transactions committed since the store was opened.
    pub fn mutations(&self) -> u64 {
        self.mutations.load(Ordering::Relaxed)
    }
}

/// Reads shared by [`Tx`] and [`View`].
pub trait Read {
    /// The raw value at `key`.
    fn raw(&self, key: &[u8]) -> Result<Option<Vec<u8>>>;
    /// Every `(key, value)` under `prefix`, in key order.
    fn scan_raw(&self, prefix: &[u8]) -> Result<Vec<(Vec<u8>, Vec<u8>)>>;

    /// The decoded value at `key`.
    fn get<T: DeserializeOwned>(&self, key: &[u8]) -> Result<Option<T>> {
        self.raw(key)?.map(|v| decode(key, &v)).transpose()
    }

    /// Every decoded value under `prefix` with its key.
    fn scan<T: DeserializeOwned>(&self, prefix: &[u8]) -> Result<Vec<(Vec<u8>, T)>> {
        self.scan_raw(prefix)?.into_iter().map(|(k, v)| decode(&k, &v).map(|t| (k, t))).collect()
    }

    /// Whether anything exists under `prefix`.
    fn any_under(&self, prefix: &[u8]) -> Result<bool>;
}

fn decode<T: DeserializeOwned>(key: &[u8], value: &[u8]) -> Result<T> {
    codec::decode(value).map_err(|e| {
        Error::new(
            berth_ipc::Code::DataLoss,
            format!("record {}: {}", String::from_utf8_lossy(key), e.message),
        )
    })
}

fn scan_on<R: Readable>(
    r: &R,
    ks: &SingleWriterTxKeyspace,
    prefix: &[u8],
) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
    r.prefix(ks, prefix)
        .map(|g| g.into_inner().map(|(k, v)| (k.to_vec(), v.to_vec())).map_err(storage))
        .collect()
}

impl Read for Tx<'_> {
    fn raw(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self.tx.get(self.ks, key).map_err(storage)?.map(|v| v.to_vec()))
    }
    fn scan_raw(&self, prefix: &[u8]) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        scan_on(&self.tx, self.ks, prefix)
    }
    fn any_under(&self, prefix: &[u8]) -> Result<bool> {
        match self.tx.prefix(self.ks, prefix).next() {
            Some(g) => g.key().map(|_| true).map_err(storage),
            None => Ok(false),
        }
    }
}

impl Read for View<'_> {
    fn raw(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self.snap.get(self.ks, key).map_err(storage)?.map(|v| v.to_vec()))
    }
    fn scan_raw(&self, prefix: &[u8]) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        scan_on(&self.snap, self.ks, prefix)
    }
    fn any_under(&self, prefix: &[u8]) -> Result<bool> {
        match self.snap.prefix(self.ks, prefix).next() {
            Some(g) => g.key().map(|_| true).map_err(storage),
            None => Ok(false),
        }
    }
}

impl Tx<'_> {
    /// The transaction's timestamp (ns since the epoch), used for `created`/`updated`.
    pub fn now(&self) -> u64 {
        self.now
    }

    /// Writes `value` at `key`.
    pub fn put<T: Serialize>(&mut self, key: &[u8], value: &T) -> Result<()> {
        let bytes = codec::encode(value)?;
        self.tx.insert(self.ks, key, bytes);
        Ok(())
    }

    /// Removes `key`.
    pub fn delete(&mut self, key: &[u8]) {
        self.tx.remove(self.ks, key);
    }

    /// Removes every key under `prefix`; returns how many.
    pub fn delete_under(&mut self, prefix: &[u8]) -> Result<usize> {
        let keys: Vec<Vec<u8>> = self.scan_raw(prefix)?.into_iter().map(|(k, _)| k).collect();
        for k in &keys {
            self.delete(k);
        }
        Ok(keys.len())
    }
}
