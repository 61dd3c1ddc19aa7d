//! One snapshotter backend: its directory, its index, and the operations with containerd's
//! semantics. `overlayfs` keeps one layer per directory and stacks them with overlay mounts;
//! `native` keeps full copies and hands out bind mounts.
//!
//! ```text
//! <root>/snapshots/<backend>/
//!   index.json           key → id, kind, parent, labels (see `index`)
//!   snapshots/<id>/fs    the layer (overlayfs: upper dir; native: the whole tree)
//!   snapshots/<id>/work  overlayfs work dir
//!   tmp/                 diffs being written
//! ```

use berth_ipc::sync::lock;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use berth_ipc::snapshot::{Info, Kind, Mount, Usage};
use berth_ipc::{Error, Result};

use crate::index::{Index, Record, now_ms};
use crate::layer::Whiteouts;

/// Which backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendKind {
    /// Layers stacked with overlayfs.
    Overlay,
    /// Full copies.
    Native,
}

impl BackendKind {
    /// Its name on the wire and on disk.
    pub fn name(self) -> &'static str {
        match self {
            BackendKind::Overlay => "overlayfs",
            BackendKind::Native => "native",
        }
    }

    /// Parses a snapshotter name.
    pub fn parse(name: &str) -> Result<BackendKind> {
        match name {
            "overlayfs" | "overlay" => Ok(BackendKind::Overlay),
            "native" => Ok(BackendKind::Native),
            other => Err(Error::invalid(format!("snapshotter {other}: not loaded (overlayfs or native)"))),
        }
    }
}

/// A backend's state.
pub struct Backend {
    kind: BackendKind,
    dir: PathBuf,
    index: Mutex<Index>,
    /// Keys with an apply running: commit and remove wait their turn (`Conflict`).
    busy: Mutex<std::collections::HashSet<String>>,
    /// Largest uncompressed layer accepted by apply.
    pub max_layer_bytes: u64,
    /// The other per-layer limits of an apply (`bytes` is `max_layer_bytes`).
    pub limits: crate::layer::Limits,
}

fn private_dir(p: &Path) -> Result<()> {
    berth_service_kit::boot::create_private_dir(p).map_err(|e| Error::io_at("create", p, e))
}

impl Backend {
    /// Opens (creating) the backend under `root/snapshots/<name>`.
    pub fn open(root: &Path, kind: BackendKind, max_layer_bytes: u64) -> Result<Backend> {
        let dir = root.join("snapshots").join(kind.name());
        for d in [root.join("snapshots"), dir.clone(), dir.join("snapshots"), dir.join("tmp")] {
            private_dir(&d)?;
        }
        let index = Index::load(&dir)?;
        Ok(Backend {
            kind,
            dir,
            index: Mutex::new(index),
            busy: Mutex::default(),
            max_layer_bytes,
            limits: crate::layer::Limits::default(),
        })
    }

    /// Which backend this is.
    pub fn kind(&self) -> BackendKind {
        self.kind
    }

    /// Where the backend lives.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, Index> {
        lock(&self.index)
    }

    pub(crate) fn snap_dir(&self, id: u64) -> PathBuf {
        self.dir.join("snapshots").join(id.to_string())
    }

    /// The layer directory of snapshot `id`.
    pub fn fs_dir(&self, id: u64) -> PathBuf {
        self.snap_dir(id).join("fs")
    }

    /// How whiteouts are written into this backend's layers.
    pub fn whiteouts(&self) -> Whiteouts {
        match self.kind {
            BackendKind::Overlay => Whiteouts::Overlay,
            BackendKind::Native => Whiteouts::Delete,
        }
    }

    /// `Prepare` (`kind` Active) or `View` (`kind` View).
    pub fn create(
        &self,
        key: &str,
        parent: Option<&str>,
        labels: BTreeMap<String, String>,
        kind: Kind,
    ) -> Result<Vec<Mount>> {
        berth_ipc::names::validate_name("snapshot key", key)?;
        berth_ipc::names::validate_labels(&labels)?;
        let check = |index: &Index| -> Result<Option<u64>> {
            if index.snapshots.contains_key(key) {
                return Err(Error::already_exists(format!("snapshot {key}: already exists")));
            }
            let Some(p) = parent else { return Ok(None) };
            let r = index
                .snapshots
                .get(p)
                .ok_or_else(|| Error::not_found(format!("snapshot parent {p}: not found")))?;
            if r.kind != Kind::Committed {
                return Err(Error::precondition(format!("snapshot parent {p}: not committed")));
            }
            Ok(Some(r.id))
        };
        let (id, parent_id) = {
            let mut index = self.lock();
            let parent_id = check(&index)?;
            index.next_id += 1;
            (index.next_id - 1, parent_id)
        };
        // The directories (a full copy on native) are made without holding the index, so
        // a long copy does not stall every other call; the checks are repeated after.
        let sd = self.snap_dir(id);
        if let Err(e) = self.make_dirs(&sd, parent_id) {
            let _ = std::fs::remove_dir_all(&sd);
            return Err(e);
        }
        berth_ipc::failpoint!("snapshot.create.after_dirs");
        let mut index = self.lock();
        if let Err(e) = check(&index) {
            let _ = std::fs::remove_dir_all(&sd);
            return Err(e);
        }
        let now = now_ms();
        let record =
            Record { id, kind, parent: parent.map(str::to_string), labels, created_ms: now, updated_ms: now };
        index.snapshots.insert(key.to_string(), record);
        if let Err(e) = index.save() {
            index.snapshots.remove(key);
            let _ = std::fs::remove_dir_all(&sd);
            return Err(e);
        }
        self.mounts_locked(&index, key)
    }

    fn make_dirs(&self, sd: &Path, parent_id: Option<u64>) -> Result<()> {
        // No record owns this number: whatever is there was left by a crash.
        let _ = std::fs::remove_dir_all(sd);
        private_dir(sd)?;
        let fs = sd.join("fs");
        std::fs::create_dir(&fs).map_err(|e| Error::io_at("create", &fs, e))?;
        match self.kind {
            BackendKind::Overlay => {
                let work = sd.join("work");
                std::fs::create_dir(&work).map_err(|e| Error::io_at("create", &work, e))
            }
            BackendKind::Native => match parent_id {
                Some(pid) => crate::copy::copy_tree(&self.fs_dir(pid), &fs),
                None => Ok(()),
            },
        }
    }

    /// `Commit`: the active `key` becomes the committed `name`.
    pub fn commit(&self, name: &str, key: &str, labels: BTreeMap<String, String>) -> Result<()> {
        self.commit_onto(name, key, labels, None)
    }

    /// Commits `key` as `name`; with `rebase`, the committed snapshot gets `rebase.0` as its
    /// parent instead of the one it was prepared on. Only overlayfs allows it: its layer
    /// directories do not depend on their parents, which is what lets a batch unpack
    /// extract an image's layers side by side and stack them afterwards.
    pub fn commit_onto(
        &self,
        name: &str,
        key: &str,
        labels: BTreeMap<String, String>,
        rebase: Option<Option<&str>>,
    ) -> Result<()> {
        berth_ipc::names::validate_name("snapshot name", name)?;
        berth_ipc::names::validate_labels(&labels)?;
        self.not_busy(key)?;
        let mut index = self.lock();
        let r = index.get(key)?;
        if r.kind != Kind::Active {
            return Err(Error::precondition(format!("snapshot {key}: not active")));
        }
        if index.snapshots.contains_key(name) {
            return Err(Error::already_exists(format!("snapshot {name}: already exists")));
        }
        let mut r = index
            .snapshots
            .remove(key)
            .ok_or_else(|| Error::not_found(format!("snapshot {key}: not found")))?;
        let old = r.clone();
        if let Some(parent) = rebase {
            if self.kind != BackendKind::Overlay {
                index.snapshots.insert(key.to_string(), old);
                return Err(Error::precondition(format!(
                    "snapshot {key}: cannot rebase on {}",
                    self.kind.name()
                )));
            }
            if let Some(p) = parent
                && index.snapshots.get(p).is_none_or(|pr| pr.kind != Kind::Committed)
            {
                index.snapshots.insert(key.to_string(), old);
                return Err(Error::precondition(format!("snapshot parent {p}: not committed")));
            }
            r.parent = parent.map(str::to_string);
        }
        r.kind = Kind::Committed;
        r.labels.extend(labels);
        r.updated_ms = now_ms();
        index.snapshots.insert(name.to_string(), r);
        berth_ipc::failpoint!("snapshot.commit.before_save");
        if let Err(e) = index.save() {
            index.snapshots.remove(name);
            index.snapshots.insert(key.to_string(), old);
            return Err(e);
        }
        berth_ipc::failpoint!("snapshot.commit.after_save");
        Ok(())
    }

    /// `Remove`: refused while the snapshot has children.
    pub fn remove(&self, key: &str) -> Result<()> {
        self.not_busy(key)?;
        let mut index = self.lock();
        let r = index.get(key)?.clone();
        if index.has_children(key) {
            return Err(Error::precondition(format!("snapshot {key}: has children")));
        }
        index.snapshots.remove(key);
        if let Err(e) = index.save() {
            index.snapshots.insert(key.to_string(), r);
            return Err(e);
        }
        drop(index);
        berth_ipc::failpoint!("snapshot.remove.after_save");
        let sd = self.snap_dir(r.id);
        if let Err(e) = std::fs::remove_dir_all(&sd) {
            tracing::warn!(dir = %sd.display(), "remove snapshot dir: {e}; cleanup will retry");
        }
        Ok(())
    }

    /// `Stat`.
    pub fn stat(&self, key: &str) -> Result<Info> {
        Ok(self.lock().get(key)?.info(key))
    }

    /// `Update` labels by field paths.
    pub fn update(&self, key: &str, labels: BTreeMap<String, String>, fieldpaths: &[String]) -> Result<Info> {
        berth_ipc::names::validate_labels(&labels)?;
        let mut index = self.lock();
        let mut r = index.get(key)?.clone();
        let old = r.clone();
        if fieldpaths.is_empty() {
            r.labels = labels.clone();
        }
        for fp in fieldpaths {
            if fp == "labels" {
                r.labels = labels.clone();
            } else if let Some(k) = fp.strip_prefix("labels.") {
                match labels.get(k) {
                    Some(v) => r.labels.insert(k.to_string(), v.clone()),
                    None => r.labels.remove(k),
                };
            } else {
                return Err(Error::invalid(format!("snapshot {key}: cannot update field {fp:?}")));
            }
        }
        r.updated_ms = now_ms();
        index.snapshots.insert(key.to_string(), r.clone());
        if let Err(e) = index.save() {
            index.snapshots.insert(key.to_string(), old);
            return Err(e);
        }
        Ok(r.info(key))
    }

    /// `Usage` of the snapshot's own directory.
    pub fn usage(&self, key: &str) -> Result<Usage> {
        let id = self.lock().get(key)?.id;
        crate::copy::usage(&self.fs_dir(id))
    }

    /// `List` with containerd filters: namespace `ns`'s snapshots as it names them, or
    /// (`None`) every snapshot under its index key `<namespace>/<key>`.
    pub fn list(&self, ns: Option<&str>, filters: &[String]) -> Result<Vec<Info>> {
        let f = berth_ipc::filter::Filters::parse(filters)?;
        let index = self.lock();
        Ok(index
            .snapshots
            .iter()
            .filter(|(k, _)| ns.is_none_or(|ns| crate::scope::strip(ns, k).is_some()))
            .map(|(k, r)| if ns.is_some() { crate::scope::local(r.info(k)) } else { r.info(k) })
            .filter(|i| f.matches(&crate::filters::InfoFields(i)))
            .collect())
    }

    /// `Cleanup`: removes snapshot directories no record owns, and leftovers in `tmp/`.
    pub fn cleanup(&self) -> Result<u64> {
        let index = self.lock();
        let owned: std::collections::HashSet<String> =
            index.snapshots.values().map(|r| r.id.to_string()).collect();
        let mut removed = 0;
        for base in [self.dir.join("snapshots"), self.dir.join("tmp")] {
            let rd = std::fs::read_dir(&base).map_err(|e| Error::io_at("read", &base, e))?;
            for e in rd.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if base.ends_with("snapshots") && owned.contains(&name) {
                    continue;
                }
                let p = e.path();
                if base.ends_with("tmp") && p.is_dir() {
                    // A diff's mount point: never walked into, only unmounted and removed
                    // once empty, so a view mounted there cannot be deleted through.
                    let _ = nix::mount::umount2(&p, nix::mount::MntFlags::MNT_DETACH);
                    if std::fs::remove_dir(&p).is_ok() {
                        removed += 1;
                    }
                    continue;
                }
                let r = if p.is_dir() { std::fs::remove_dir_all(&p) } else { std::fs::remove_file(&p) };
                r.map_err(|e| Error::io_at("remove", &p, e))?;
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// The directory to extract into for the active snapshot `key`.
    pub fn active_dir(&self, key: &str) -> Result<PathBuf> {
        let index = self.lock();
        let r = index.get(key)?;
        if r.kind != Kind::Active {
            return Err(Error::precondition(format!("snapshot {key}: not active")));
        }
        Ok(self.fs_dir(r.id))
    }

    /// Applies a layer into the active snapshot `key`; one apply per key at a time.
    pub fn apply<R: std::io::Read + Send>(&self, key: &str, blob: R) -> Result<berth_ipc::snapshot::Applied> {
        let dir = self.active_dir(key)?;
        let busy = || lock(&self.busy);
        if !busy().insert(key.to_string()) {
            return Err(Error::new(berth_ipc::Code::Conflict, format!("snapshot {key}: apply in progress")));
        }
        let r = crate::layer::apply_limited(
            &dir,
            blob,
            self.whiteouts(),
            crate::layer::Limits { bytes: self.max_layer_bytes, ..self.limits },
        );
        busy().remove(key);
        r
    }

    fn not_busy(&self, key: &str) -> Result<()> {
        if lock(&self.busy).contains(key) {
            return Err(Error::new(berth_ipc::Code::Conflict, format!("snapshot {key}: apply in progress")));
        }
        Ok(())
    }
}
