//! Ingests: writes in progress, keyed by ref, resumable after any crash.
//!
//! An [`Ingest`] is an open writer. It holds the ref's lock (one writer per ref; a second
//! opener gets `Unavailable`) until dropped. Opening an existing ingest re-hashes the data
//! already there and resumes at its end. Commit verifies size and digest, then makes the
//! blob durable: the data file is made read-only (0444) and fsynced, renamed into `blobs/`,
//! and the blobs dir is fsynced. (The mode is set before the fsync rather than after the
//! rename so that a blob is never seen writable, and its mode is as durable as its bytes.)

use berth_ipc::sync::lock;
use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use berth_ipc::content::readfd::FollowFdReply;
use berth_ipc::content::{BlobInfo, IngestStatus, check_ref};
use berth_ipc::{Code, Digest, Error, Result};
use sha2::Digest as _;

use crate::direct::StagedFile;
use crate::store::{HASH_BUF, Held, Store, mtime_ns, now_ns, sync_dir};

/// Chunks at least this large are hashed on a second thread while they are written.
const PARALLEL_MIN: usize = 256 << 10;

/// The ingest dir of `ref`: `<ingest>/<sha256(ref)>`.
fn ingest_dir(store: &Store, r: &str) -> PathBuf {
    store.ingest.join(Digest::of(r.as_bytes()).hex())
}

/// The writer lock of one ref, released on drop.
#[derive(Debug)]
struct RefLock {
    store: Arc<Store>,
    r#ref: String,
    /// The live offset status readers see.
    offset: Arc<AtomicU64>,
    /// Set once the ingest's files are in place (followers wait for it).
    ready: Arc<std::sync::atomic::AtomicBool>,
}

impl RefLock {
    fn take(store: &Arc<Store>, r: &str, expected: Option<Digest>, total: Option<u64>) -> Result<RefLock> {
        let mut locks = lock(&store.locks);
        if locks.contains_key(r) {
            return Err(Error::unavailable(format!("ingest {r:?}: another writer holds it, retry later")));
        }
        let held = Held { expected, offset: Arc::default(), total, ready: Arc::default() };
        locks.insert(r.to_string(), held.clone());
        Ok(RefLock { store: store.clone(), r#ref: r.to_string(), offset: held.offset, ready: held.ready })
    }
}

impl Drop for RefLock {
    fn drop(&mut self) {
        lock(&self.store.locks).remove(&self.r#ref);
    }
}

/// An open, locked ingest.
#[derive(Debug)]
pub struct Ingest {
    lock: RefLock,
    dir: PathBuf,
    data: StagedFile,
    hasher: sha2::Sha256,
    status: IngestStatus,
    /// Committed or removed: nothing may be written any more.
    done: bool,
    /// A write failed half-way: the hash may not match the file; reopen to resume.
    broken: bool,
}

fn read_num(path: &Path) -> Option<u64> {
    std::fs::read_to_string(path).ok().and_then(|s| s.trim().parse().ok())
}

fn write_small(path: &Path, text: &str) -> Result<()> {
    std::fs::write(path, text).map_err(|e| Error::io(path.display(), e))
}

/// The status of ingest `ref` as found on disk; `NotFound` if there is none.
pub fn status(store: &Store, r: &str) -> Result<IngestStatus> {
    check_ref(r)?;
    status_of_dir(store, &ingest_dir(store, r))
        .filter(|s| s.r#ref == r)
        .ok_or_else(|| Error::not_found(format!("ingest {r:?}: not found")))
}

fn status_of_dir(store: &Store, dir: &Path) -> Option<IngestStatus> {
    let r = std::fs::read_to_string(dir.join("ref")).ok()?;
    let meta = std::fs::metadata(dir.join("data")).ok()?;
    let started = read_num(&dir.join("startedat")).unwrap_or(0);
    let held = lock(&store.locks).get(&r).cloned();
    let expected = held.as_ref().and_then(|h| h.expected);
    let offset = held.map_or(meta.len(), |h| h.offset.load(Ordering::Relaxed));
    Some(IngestStatus {
        offset,
        total: read_num(&dir.join("total")),
        expected,
        started_at_ns: started,
        updated_at_ns: mtime_ns(&meta).max(read_num(&dir.join("updatedat")).unwrap_or(0)),
        r#ref: r,
    })
}

/// Every ingest on disk.
pub fn list(store: &Store) -> Result<Vec<IngestStatus>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(&store.ingest).map_err(|e| Error::io("ingest dir", e))? {
        let entry = entry.map_err(|e| Error::io("ingest dir", e))?;
        if let Some(s) = status_of_dir(store, &entry.path()) {
            out.push(s);
        }
    }
    out.sort_by(|a, b| a.r#ref.cmp(&b.r#ref));
    Ok(out)
}

/// A read-only file of blob `digest` if committed, else of the held ingest expected to
/// become it (its bytes so far, growing), with the expected total; `NotFound` for neither.
pub fn follow(store: &Store, digest: &Digest) -> Result<(File, FollowFdReply)> {
    // An ingest may commit (its data renamed into blobs/) between the look and the open:
    // look again then, and the blob is there.
    for _ in 0..3 {
        if let Ok((file, size)) = store.open_blob(digest) {
            return Ok((file, FollowFdReply { committed: true, total: Some(size) }));
        }
        let held = lock(&store.locks);
        let found = held
            .iter()
            .find(|(_, h)| h.expected == Some(*digest) && h.ready.load(Ordering::Acquire))
            .map(|(r, h)| (r.clone(), h.total));
        drop(held);
        let Some((r, total)) = found else {
            return Err(Error::not_found(format!("blob {digest}: not found, and no ingest expects it")));
        };
        match File::open(ingest_dir(store, &r).join("data")) {
            Ok(file) => return Ok((file, FollowFdReply { committed: false, total })),
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(Error::from(e).context(format!("ingest {r:?}"))),
        }
    }
    Err(Error::unavailable(format!("blob {digest}: its ingest keeps moving, retry")))
}

/// Drops ingest `ref` when no writer holds it.
pub fn abort(store: &Arc<Store>, r: &str) -> Result<()> {
    check_ref(r)?;
    let _lock = RefLock::take(store, r, None, None)?;
    let dir = ingest_dir(store, r);
    if status_of_dir(store, &dir).is_none_or(|s| s.r#ref != r) {
        return Err(Error::not_found(format!("ingest {r:?}: not found")));
    }
    std::fs::remove_dir_all(&dir).map_err(|e| Error::io(format!("ingest {r:?}"), e))
}

impl Ingest {
    /// Opens or resumes ingest `ref`. Blocking: re-hashes existing data.
    pub fn open(store: &Arc<Store>, r: &str, expected: Option<Digest>, total: Option<u64>) -> Result<Ingest> {
        Self::open_proving(store, r, expected, total, false)
    }

    /// [`Ingest::open`]; with `prove`, an expected blob that is already stored does not end
    /// the write with `AlreadyExists` at once: the writer must write the bytes, which commit
    /// verifies (then answering `AlreadyExists`). A namespace gets a record of a blob that
    /// only another namespace had this way only by proving it holds the bytes.
    pub fn open_proving(
        store: &Arc<Store>,
        r: &str,
        expected: Option<Digest>,
        total: Option<u64>,
        prove: bool,
    ) -> Result<Ingest> {
        check_ref(r)?;
        if let Some(d) = expected.filter(|d| !prove && store.blob_path(d).exists()) {
            return Err(Error::already_exists(format!("blob {d}: already exists")));
        }
        let lock = RefLock::take(store, r, expected, total)?;
        let dir = ingest_dir(store, r);
        let what = format!("ingest {r:?}");
        let existing =
            std::fs::read_to_string(dir.join("ref")).ok().filter(|x| x == r && dir.join("data").exists());
        let now = now_ns();
        if existing.is_none() {
            // New (or a dir left half-made by a crash before its ref file): start over.
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).map_err(|e| Error::io(&what, e))?;
            write_small(&dir.join("startedat"), &now.to_string())?;
            File::create(dir.join("data")).map_err(|e| Error::io(&what, e))?;
            write_small(&dir.join("ref"), r)?;
        }
        if let Some(t) = total {
            write_small(&dir.join("total"), &t.to_string())?;
        }
        write_small(&dir.join("updatedat"), &now.to_string())?;
        let file = OpenOptions::new().read(true).open(dir.join("data")).map_err(|e| Error::io(&what, e))?;
        let (hasher, offset) = rehash(&file).map_err(|e| Error::io(&what, e))?;
        let data = StagedFile::open(&dir.join("data"), offset).map_err(|e| Error::io(&what, e))?;
        let status = IngestStatus {
            r#ref: r.to_string(),
            offset,
            total: read_num(&dir.join("total")),
            expected,
            started_at_ns: read_num(&dir.join("startedat")).unwrap_or(now),
            updated_at_ns: now,
        };
        lock.offset.store(offset, Ordering::Relaxed);
        lock.ready.store(true, Ordering::Release);
        if offset > 0 {
            tracing::info!(r#ref = r, offset, "ingest resumed");
        }
        Ok(Ingest { lock, dir, data, hasher, status, done: false, broken: false })
    }

    /// The status, offset included.
    pub fn status(&self) -> &IngestStatus {
        &self.status
    }

    /// The ref.
    pub fn r#ref(&self) -> &str {
        &self.lock.r#ref
    }

    /// Writes `data` at `offset`: the current end, or 0 to restart. Returns the new end.
    pub fn write_at(&mut self, offset: u64, data: &[u8]) -> Result<u64> {
        let r = &self.lock.r#ref;
        self.usable()?;
        let end = self.status.offset;
        if offset == 0 && end > 0 {
            self.data.truncate().map_err(|e| Error::io(format!("ingest {r:?}"), e))?;
            self.hasher = sha2::Sha256::new();
            self.status.offset = 0;
            self.lock.offset.store(0, Ordering::Relaxed);
        } else if offset != end {
            return Err(Error::new(
                Code::OutOfRange,
                format!("ingest {r:?}: write at offset {offset}, but its data ends at {end}"),
            ));
        }
        let new_end = offset + data.len() as u64;
        if let Some(total) = self.status.total.filter(|t| new_end > *t) {
            return Err(Error::new(
                Code::OutOfRange,
                format!("ingest {r:?}: write up to {new_end} exceeds the expected size {total}"),
            ));
        }
        let (hasher, file) = (&mut self.hasher, &mut self.data);
        let appended = if data.len() >= PARALLEL_MIN {
            std::thread::scope(|s| {
                let hashing = s.spawn(|| hasher.update(data));
                let appended = file.append(data);
                hashing.join().map_err(|_| io::Error::other("hash thread panicked")).and(appended)
            })
        } else {
            hasher.update(data);
            file.append(data)
        };
        if let Err(e) = appended {
            self.broken = true;
            return Err(Error::from(e).context(format!("ingest {r:?}")));
        }
        self.status.offset = new_end;
        self.lock.offset.store(new_end, Ordering::Relaxed);
        self.status.updated_at_ns = now_ns();
        berth_ipc::failpoint!("content.write.after_append");
        Ok(new_end)
    }

    /// Verifies and commits. On a mismatch the ingest stays (abort or restart it); on
    /// `AlreadyExists` it is dropped.
    pub fn commit(&mut self, store: &Store, size: Option<u64>, digest: Option<Digest>) -> Result<BlobInfo> {
        let r = &self.lock.r#ref;
        self.usable()?;
        let have = self.status.offset;
        for (what, want) in [("size", size), ("expected size", self.status.total)] {
            if let Some(want) = want.filter(|w| *w != have) {
                return Err(Error::precondition(format!(
                    "ingest {r:?}: {what} is {want} bytes but {have} were written"
                )));
            }
        }
        let actual = Digest::from_sha256(self.hasher.clone().finalize().into());
        for want in [digest, self.status.expected].into_iter().flatten() {
            if want != actual {
                return Err(Error::precondition(format!(
                    "ingest {r:?}: expected digest {want}, got {actual}"
                )));
            }
        }
        let target = store.blob_path(&actual);
        if target.exists() {
            self.remove();
            return Err(Error::already_exists(format!("blob {actual}: already exists")));
        }
        let what = format!("commit blob {actual}");
        self.data.flush_tail().map_err(|e| Error::io(&what, e))?;
        berth_ipc::failpoint!("content.commit.after_data");
        let file = self.data.file();
        file.set_permissions(std::fs::Permissions::from_mode(0o444)).map_err(|e| Error::io(&what, e))?;
        file.sync_all().map_err(|e| Error::io(&what, e))?;
        berth_ipc::failpoint!("content.commit.after_fsync");
        std::fs::rename(self.dir.join("data"), &target).map_err(|e| Error::io(&what, e))?;
        berth_ipc::failpoint!("content.commit.after_rename");
        sync_dir(&store.blobs).map_err(|e| Error::io(&what, e))?;
        berth_ipc::failpoint!("content.commit.after_dirsync");
        self.remove();
        berth_ipc::failpoint!("content.commit.after_cleanup");
        store.info(&actual)
    }

    fn usable(&self) -> Result<()> {
        let r = &self.lock.r#ref;
        if self.done {
            return Err(Error::precondition(format!("ingest {r:?}: already committed or aborted")));
        }
        if self.broken {
            return Err(Error::unavailable(format!(
                "ingest {r:?}: a write failed; reopen the ref to resume"
            )));
        }
        Ok(())
    }

    /// Removes the ingest dir; the lock goes when `self` is dropped.
    pub fn remove(&mut self) {
        if !self.done {
            self.done = true;
            if let Err(e) = std::fs::remove_dir_all(&self.dir) {
                tracing::warn!(r#ref = %self.lock.r#ref, error = %e, "cannot remove ingest dir");
            }
        }
    }
}

impl Drop for Ingest {
    /// A writer that goes away keeps its data: the staged tail is written out.
    fn drop(&mut self) {
        if self.done || self.broken {
            return;
        }
        if let Err(e) = self.data.flush_tail() {
            tracing::warn!(r#ref = %self.lock.r#ref, error = %e, "cannot write an ingest's tail");
        }
    }
}

/// Hashes what a data file holds; returns the hash state and the length.
fn rehash(file: &File) -> io::Result<(sha2::Sha256, u64)> {
    let mut hasher = sha2::Sha256::new();
    let mut buf = vec![0u8; HASH_BUF];
    let mut total = 0u64;
    let mut reader = file;
    loop {
        let n = reader.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        total += n as u64;
    }
    Ok((hasher, total))
}
