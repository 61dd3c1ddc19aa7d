//! The key index of one backend: key → id, kind, parent, labels, times.
//!
//! Stored as one small JSON file, `index.json`, rewritten whole on every change (write to
//! `index.json.tmp`, fsync, rename over, fsync the directory), so a crash leaves either the
//! old or the new index, never a torn one. An index holds thousands of records, not
//! millions, and changes far less often than layers are extracted, so a key-value engine
//! (fjall) would buy nothing here but another set of background threads and files; the
//! format is also readable by hand when repairing a host. Directories are created before
//! their record and removed after it, so a crash leaves at worst an orphan directory, which
//! `Cleanup` removes.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use berth_ipc::snapshot::{Info, Kind};
use berth_ipc::{Error, Result};
use serde::{Deserialize, Serialize};

/// One snapshot's record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// Its directory number.
    pub id: u64,
    /// Its kind.
    pub kind: Kind,
    /// Its parent's key.
    pub parent: Option<String>,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Creation time, ms.
    pub created_ms: u64,
    /// Last change, ms.
    pub updated_ms: u64,
}

impl Record {
    /// The wire view of this record under `key`.
    pub fn info(&self, key: &str) -> Info {
        Info {
            name: key.to_string(),
            parent: self.parent.clone(),
            kind: self.kind,
            labels: self.labels.clone(),
            created_ms: self.created_ms,
            updated_ms: self.updated_ms,
        }
    }
}

/// The index format: 1 keys every record `<namespace>/<key>` (see `scope`); 0 (no field)
/// is the format from before namespaces, whose keys all become `default`'s on load.
pub const VERSION: u32 = 1;

/// The whole index, kept in memory and saved on every change.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Index {
    /// The format (absent in indexes written before namespaces: 0).
    #[serde(default)]
    pub version: u32,
    /// The next directory number.
    pub next_id: u64,
    /// Records by key.
    pub snapshots: BTreeMap<String, Record>,
    #[serde(skip)]
    path: PathBuf,
}

fn internal(what: &str, path: &Path, e: impl std::fmt::Display) -> Error {
    Error::internal_cause(format_args!("snapshot index {}: {what}", path.display()), e)
}

impl Index {
    /// Loads `dir/index.json`, or an empty index if there is none.
    pub fn load(dir: &Path) -> Result<Index> {
        let path = dir.join("index.json");
        let mut index = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice::<Index>(&bytes).map_err(|e| {
                Error::new(berth_ipc::Code::DataLoss, format!("snapshot index {}: {e}", path.display()))
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Index { version: VERSION, next_id: 1, ..Index::default() }
            }
            Err(e) => return Err(internal("read", &path, e)),
        };
        if index.version > VERSION {
            return Err(Error::precondition(format!(
                "snapshot index {}: format {} is newer than this service's {VERSION}",
                path.display(),
                index.version
            )));
        }
        index.next_id = index.next_id.max(index.snapshots.values().map(|r| r.id + 1).max().unwrap_or(1));
        index.path = path;
        if index.version < VERSION {
            index.migrate_to_namespaces();
            index.save()?;
        }
        Ok(index)
    }

    /// Format 0 to 1: every snapshot from before namespaces is `default`'s.
    fn migrate_to_namespaces(&mut self) {
        let old = std::mem::take(&mut self.snapshots);
        let scope = |k: &str| format!("{}/{k}", crate::scope::LEGACY_NAMESPACE);
        self.snapshots = old
            .into_iter()
            .map(|(k, mut r)| {
                r.parent = r.parent.as_deref().map(scope);
                (scope(&k), r)
            })
            .collect();
        self.version = VERSION;
    }

    /// Writes the index durably.
    pub fn save(&self) -> Result<()> {
        let tmp = self.path.with_extension("json.tmp");
        let bytes = serde_json::to_vec_pretty(self).map_err(|e| internal("encode", &self.path, e))?;
        let mut f = std::fs::File::create(&tmp).map_err(|e| internal("create", &tmp, e))?;
        f.write_all(&bytes).map_err(|e| internal("write", &tmp, e))?;
        f.sync_all().map_err(|e| internal("fsync", &tmp, e))?;
        berth_ipc::failpoint!("snapshot.index.after_tmp");
        std::fs::rename(&tmp, &self.path).map_err(|e| internal("rename", &self.path, e))?;
        berth_ipc::failpoint!("snapshot.index.after_rename");
        if let Some(dir) = self.path.parent() {
            std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(|e| internal("fsync dir", dir, e))?;
        }
        Ok(())
    }

    /// The record of `key`, or `NotFound`.
    pub fn get(&self, key: &str) -> Result<&Record> {
        self.snapshots.get(key).ok_or_else(|| Error::not_found(format!("snapshot {key}: not found")))
    }

    /// The ids of `parent` and its ancestors, nearest first.
    pub fn chain(&self, parent: Option<&str>) -> Result<Vec<u64>> {
        let mut out = Vec::new();
        let mut cur = parent.map(str::to_string);
        while let Some(k) = cur {
            let r = self.snapshots.get(&k).ok_or_else(|| {
                Error::new(berth_ipc::Code::DataLoss, format!("snapshot {k}: parent record missing"))
            })?;
            out.push(r.id);
            if out.len() > self.snapshots.len() {
                return Err(Error::new(berth_ipc::Code::DataLoss, format!("snapshot {k}: parent loop")));
            }
            cur = r.parent.clone();
        }
        Ok(out)
    }

    /// Whether any snapshot has `key` as its parent.
    pub fn has_children(&self, key: &str) -> bool {
        self.snapshots.values().any(|r| r.parent.as_deref() == Some(key))
    }
}

/// Milliseconds since the epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
