//! Namespaces: created explicitly or by the first write into them, labelled, deleted only
//! when empty.

use berth_ipc::metadata::{Labels, Namespace};
use berth_ipc::names;
use berth_ipc::{Error, Result};

use super::{Read, Store, Tx, keys, update};

impl Store {
    /// Every namespace, by name.
    pub fn list_namespaces(&self) -> Result<Vec<Namespace>> {
        Ok(self.view().scan::<Namespace>(&keys::namespaces())?.into_iter().map(|(_, n)| n).collect())
    }

    /// Creates a namespace; `AlreadyExists` if it exists.
    pub fn create_namespace(&self, name: &str, labels: &Labels) -> Result<Namespace> {
        names::validate_namespace(name)?;
        names::validate_labels(labels)?;
        self.write(|tx| {
            let key = keys::namespace(name);
            if tx.raw(&key)?.is_some() {
                return Err(Error::already_exists(format!("namespace {name}: already exists")));
            }
            let ns = Namespace { name: name.to_string(), labels: labels.clone() };
            tx.put(&key, &ns)?;
            Ok(ns)
        })
    }

    /// Updates a namespace's labels by field paths.
    pub fn update_namespace(&self, name: &str, labels: &Labels, paths: &[String]) -> Result<Namespace> {
        names::validate_namespace(name)?;
        self.write(|tx| {
            let key = keys::namespace(name);
            let mut ns: Namespace =
                tx.get(&key)?.ok_or_else(|| Error::not_found(format!("namespace {name}: not found")))?;
            update::labels_only(&format!("namespace {name}"), paths, &mut ns.labels, labels)?;
            tx.put(&key, &ns)?;
            Ok(ns)
        })
    }

    /// Deletes an empty namespace: `NotFound` if absent, `FailedPrecondition` while it holds
    /// images, containers, records or leases.
    pub fn delete_namespace(&self, name: &str) -> Result<()> {
        names::validate_namespace(name)?;
        self.write(|tx| {
            let key = keys::namespace(name);
            if tx.raw(&key)?.is_none() {
                return Err(Error::not_found(format!("namespace {name}: not found")));
            }
            if tx.any_under(&keys::namespace_objects(name))? {
                return Err(Error::precondition(format!(
                    "namespace {name}: not empty (remove its images, containers, content, snapshots and leases first)"
                )));
            }
            tx.delete(&key);
            Ok(())
        })
    }
}

/// Validates `ns` and creates it if this is the first write into it.
pub fn ensure(tx: &mut Tx<'_>, ns: &str) -> Result<()> {
    names::validate_namespace(ns)?;
    let key = keys::namespace(ns);
    if tx.raw(&key)?.is_none() {
        tx.put(&key, &Namespace { name: ns.to_string(), labels: Labels::new() })?;
    }
    Ok(())
}
