//! Content and snapshot records: what makes a blob or a snapshot exist in a namespace.
//! Recording one also marks it "known" (see `gc`): it then goes as soon as no namespace
//! references it, instead of waiting out the grace period.

use berth_ipc::digest::Digest;
use berth_ipc::filter::Filters;
use berth_ipc::metadata::{ContentRecord, Labels, LeaseResource, SnapshotRecord};
use berth_ipc::names;
use berth_ipc::{Error, Result};

use super::keys::{self, Kind};
use super::{Read, Store, Tx, leases, namespaces, update};
use crate::filters::{ContentFields, SnapshotFields};

fn blob_not_found(d: &Digest) -> Error {
    Error::not_found(format!("content {d}: not found"))
}

fn snapshot_not_found(sn: &str, key: &str) -> Error {
    Error::not_found(format!("snapshot {sn}/{key}: not found"))
}

fn validate_snapshot_ref(sn: &str, key: &str) -> Result<()> {
    names::validate_identifier("snapshotter", sn)?;
    names::validate_name("snapshot key", key)
}

impl Store {
    /// Records a blob in `ns` (replacing labels if it was recorded), under `lease` if given.
    pub fn put_content(
        &self,
        ns: &str,
        digest: &Digest,
        size: u64,
        labels: &Labels,
        lease: Option<&str>,
    ) -> Result<ContentRecord> {
        names::validate_labels(labels)?;
        self.write(|tx| {
            namespaces::ensure(tx, ns)?;
            if let Some(l) = lease {
                leases::add_resource(tx, ns, l, &LeaseResource::Content(*digest))?;
            }
            let key = keys::content(ns, digest);
            let created = tx.get::<ContentRecord>(&key)?.map_or(tx.now(), |r| r.created);
            let rec =
                ContentRecord { digest: *digest, size, labels: labels.clone(), created, updated: tx.now() };
            tx.put(&key, &rec)?;
            tx.put(&keys::known_content(digest), &())?;
            Ok(rec)
        })
    }

    /// One content record.
    pub fn get_content(&self, ns: &str, digest: &Digest) -> Result<ContentRecord> {
        names::validate_namespace(ns)?;
        self.view().get(&keys::content(ns, digest))?.ok_or_else(|| blob_not_found(digest))
    }

    /// Content records matching `filters`, by digest.
    pub fn list_content(&self, ns: &str, filters: &Filters) -> Result<Vec<ContentRecord>> {
        names::validate_namespace(ns)?;
        let all = self.view().scan::<ContentRecord>(&keys::objects(ns, Kind::Content))?;
        Ok(all.into_iter().map(|(_, r)| r).filter(|r| filters.matches(&ContentFields(r))).collect())
    }

    /// Updates a content record's labels by field paths.
    pub fn update_content(
        &self,
        ns: &str,
        digest: &Digest,
        labels: &Labels,
        paths: &[String],
    ) -> Result<ContentRecord> {
        names::validate_namespace(ns)?;
        self.write(|tx| {
            let key = keys::content(ns, digest);
            let mut rec: ContentRecord = tx.get(&key)?.ok_or_else(|| blob_not_found(digest))?;
            update::labels_only(&format!("content {digest}"), paths, &mut rec.labels, labels)?;
            rec.updated = tx.now();
            tx.put(&key, &rec)?;
            Ok(rec)
        })
    }

    /// Removes a content record; the blob goes at the next GC if no one else needs it.
    pub fn remove_content(&self, ns: &str, digest: &Digest) -> Result<()> {
        names::validate_namespace(ns)?;
        self.write(|tx| remove_existing(tx, &keys::content(ns, digest), || blob_not_found(digest)))
    }

    /// Records a snapshot in `ns` (replacing parent and labels), under `lease` if given.
    pub fn put_snapshot(
        &self,
        ns: &str,
        rec: &SnapshotRecord,
        lease: Option<&str>,
    ) -> Result<SnapshotRecord> {
        validate_snapshot_ref(&rec.snapshotter, &rec.key)?;
        if let Some(p) = &rec.parent {
            names::validate_name("snapshot parent", p)?;
        }
        names::validate_labels(&rec.labels)?;
        self.write(|tx| {
            namespaces::ensure(tx, ns)?;
            if let Some(l) = lease {
                let res =
                    LeaseResource::Snapshot { snapshotter: rec.snapshotter.clone(), key: rec.key.clone() };
                leases::add_resource(tx, ns, l, &res)?;
            }
            let key = keys::snapshot(ns, &rec.snapshotter, &rec.key);
            let created = tx.get::<SnapshotRecord>(&key)?.map_or(tx.now(), |r| r.created);
            let out = SnapshotRecord { created, updated: tx.now(), ..rec.clone() };
            tx.put(&key, &out)?;
            tx.put(&keys::known_snapshot(&rec.snapshotter, &format!("{ns}/{}", rec.key)), &())?;
            Ok(out)
        })
    }

    /// One snapshot record.
    pub fn get_snapshot(&self, ns: &str, sn: &str, key: &str) -> Result<SnapshotRecord> {
        names::validate_namespace(ns)?;
        validate_snapshot_ref(sn, key)?;
        self.view().get(&keys::snapshot(ns, sn, key))?.ok_or_else(|| snapshot_not_found(sn, key))
    }

    /// One snapshotter's records in `ns` matching `filters`, by key.
    pub fn list_snapshots(&self, ns: &str, sn: &str, filters: &Filters) -> Result<Vec<SnapshotRecord>> {
        names::validate_namespace(ns)?;
        names::validate_identifier("snapshotter", sn)?;
        let all = self.view().scan::<SnapshotRecord>(&keys::snapshots(ns, sn))?;
        Ok(all.into_iter().map(|(_, r)| r).filter(|r| filters.matches(&SnapshotFields(r))).collect())
    }

    /// Updates a snapshot record's labels by field paths.
    pub fn update_snapshot(
        &self,
        ns: &str,
        sn: &str,
        key: &str,
        labels: &Labels,
        paths: &[String],
    ) -> Result<SnapshotRecord> {
        names::validate_namespace(ns)?;
        validate_snapshot_ref(sn, key)?;
        self.write(|tx| {
            let k = keys::snapshot(ns, sn, key);
            let mut rec: SnapshotRecord = tx.get(&k)?.ok_or_else(|| snapshot_not_found(sn, key))?;
            update::labels_only(&format!("snapshot {sn}/{key}"), paths, &mut rec.labels, labels)?;
            rec.updated = tx.now();
            tx.put(&k, &rec)?;
            Ok(rec)
        })
    }

    /// Removes a snapshot record.
    pub fn remove_snapshot(&self, ns: &str, sn: &str, key: &str) -> Result<()> {
        names::validate_namespace(ns)?;
        validate_snapshot_ref(sn, key)?;
        self.write(|tx| remove_existing(tx, &keys::snapshot(ns, sn, key), || snapshot_not_found(sn, key)))
    }
}

fn remove_existing(tx: &mut Tx<'_>, key: &[u8], missing: impl FnOnce() -> Error) -> Result<()> {
    if tx.raw(key)?.is_none() {
        return Err(missing());
    }
    tx.delete(key);
    Ok(())
}
