//! Leases: named protection for the resources they list (blobs recorded or not, ingests,
//! snapshots) until they are deleted or expire.

use berth_ipc::filter::Filters;
use berth_ipc::metadata::{Labels, Lease, LeaseResource};
use berth_ipc::names;
use berth_ipc::{Error, Result};

use super::keys::{self, Kind};
use super::{Read, Store, Tx, namespaces};
use crate::filters::LeaseFields;

fn not_found(id: &str) -> Error {
    Error::not_found(format!("lease {id}: not found"))
}

fn validate_resource(res: &LeaseResource) -> Result<()> {
    match res {
        LeaseResource::Content(_) => Ok(()),
        LeaseResource::Ingest(r) => names::validate_name("ingest ref", r),
        LeaseResource::Snapshot { snapshotter, key } => {
            names::validate_identifier("snapshotter", snapshotter)?;
            names::validate_name("snapshot key", key)
        }
    }
}

impl Store {
    /// Creates a lease; an empty id is generated. `AlreadyExists` if the id is taken.
    pub fn create_lease(&self, ns: &str, id: &str, labels: &Labels, ttl_ms: Option<u64>) -> Result<Lease> {
        names::validate_labels(labels)?;
        if !id.is_empty() {
            names::validate_identifier("lease id", id)?;
        }
        self.write(|tx| {
            namespaces::ensure(tx, ns)?;
            let id = if id.is_empty() { format!("lease-{:x}", tx.now()) } else { id.to_string() };
            let key = keys::object(ns, Kind::Lease, &id);
            if tx.raw(&key)?.is_some() {
                return Err(Error::already_exists(format!("lease {id}: already exists")));
            }
            let expires = ttl_ms.map(|ms| tx.now().saturating_add(ms.saturating_mul(1_000_000)));
            let lease = Lease { id, labels: labels.clone(), created: tx.now(), expires };
            tx.put(&key, &lease)?;
            Ok(lease)
        })
    }

    /// Sets a lease to expire `ttl_ms` from now; `NotFound` if absent or already expired.
    pub fn renew_lease(&self, ns: &str, id: &str, ttl_ms: u64) -> Result<Lease> {
        names::validate_namespace(ns)?;
        self.write(|tx| {
            let key = keys::object(ns, Kind::Lease, id);
            let mut lease: Lease = tx.get(&key)?.ok_or_else(|| not_found(id))?;
            if lease.expires.is_some_and(|e| e <= tx.now()) {
                return Err(Error::not_found(format!("lease {id}: expired")));
            }
            lease.expires = Some(tx.now().saturating_add(ttl_ms.saturating_mul(1_000_000)));
            tx.put(&key, &lease)?;
            Ok(lease)
        })
    }

    /// Leases matching `filters`, by id.
    pub fn list_leases(&self, ns: &str, filters: &Filters) -> Result<Vec<Lease>> {
        names::validate_namespace(ns)?;
        let all = self.view().scan::<Lease>(&keys::objects(ns, Kind::Lease))?;
        Ok(all.into_iter().map(|(_, l)| l).filter(|l| filters.matches(&LeaseFields(l))).collect())
    }

    /// Deletes a lease and its resource list.
    pub fn delete_lease(&self, ns: &str, id: &str) -> Result<()> {
        names::validate_namespace(ns)?;
        self.write(|tx| {
            let key = keys::object(ns, Kind::Lease, id);
            if tx.raw(&key)?.is_none() {
                return Err(not_found(id));
            }
            delete(tx, ns, id)
        })
    }

    /// Adds a resource to a lease (idempotent).
    pub fn add_lease_resource(&self, ns: &str, lease: &str, res: &LeaseResource) -> Result<()> {
        names::validate_namespace(ns)?;
        self.write(|tx| add_resource(tx, ns, lease, res))
    }

    /// Removes a resource from a lease (idempotent); `NotFound` if the lease is absent.
    pub fn remove_lease_resource(&self, ns: &str, lease: &str, res: &LeaseResource) -> Result<()> {
        names::validate_namespace(ns)?;
        validate_resource(res)?;
        self.write(|tx| {
            if tx.raw(&keys::object(ns, Kind::Lease, lease))?.is_none() {
                return Err(not_found(lease));
            }
            tx.delete(&keys::lease_resource(ns, lease, res));
            Ok(())
        })
    }

    /// A lease's resources.
    pub fn list_lease_resources(&self, ns: &str, lease: &str) -> Result<Vec<LeaseResource>> {
        names::validate_namespace(ns)?;
        let view = self.view();
        if view.raw(&keys::object(ns, Kind::Lease, lease))?.is_none() {
            return Err(not_found(lease));
        }
        resources(&view, ns, lease)
    }
}

/// Adds `res` to lease `id` inside a transaction; `NotFound` if the lease is absent.
pub fn add_resource(tx: &mut Tx<'_>, ns: &str, id: &str, res: &LeaseResource) -> Result<()> {
    validate_resource(res)?;
    if tx.raw(&keys::object(ns, Kind::Lease, id))?.is_none() {
        return Err(not_found(id));
    }
    tx.put(&keys::lease_resource(ns, id, res), &())
}

/// Deletes lease `id` and its resources inside a transaction.
pub fn delete(tx: &mut Tx<'_>, ns: &str, id: &str) -> Result<()> {
    tx.delete(&keys::object(ns, Kind::Lease, id));
    tx.delete_under(&keys::lease_resources(ns, id))?;
    Ok(())
}

/// The resources of lease `id`.
pub fn resources(r: &impl Read, ns: &str, id: &str) -> Result<Vec<LeaseResource>> {
    let prefix = keys::lease_resources(ns, id);
    Ok(r.scan_raw(&prefix)?.iter().filter_map(|(k, _)| keys::parse_resource(&k[prefix.len()..])).collect())
}
