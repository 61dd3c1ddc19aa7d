//! Containers: the records tasks are started from. `id` and `runtime` never change;
//! `snapshotter` and `snapshot_key` may be set once.

use berth_ipc::filter::Filters;
use berth_ipc::metadata::Container;
use berth_ipc::names;
use berth_ipc::{Error, Result};

use super::keys::{self, Kind};
use super::{Read, Store, namespaces, update};
use crate::filters::ContainerFields;

fn not_found(id: &str) -> Error {
    Error::not_found(format!("container {id}: not found"))
}

fn validate(c: &Container) -> Result<()> {
    names::validate_identifier("container id", &c.id)?;
    if c.runtime.name.is_empty() {
        return Err(Error::invalid(format!("container {}: runtime name must be set", c.id)));
    }
    names::validate_name("runtime name", &c.runtime.name)?;
    if !c.snapshotter.is_empty() {
        names::validate_identifier("snapshotter", &c.snapshotter)?;
    }
    if !c.snapshot_key.is_empty() {
        names::validate_name("snapshot key", &c.snapshot_key)?;
    }
    for name in c.extensions.keys() {
        names::validate_name("extension name", name)?;
    }
    names::validate_user_labels(&c.labels)
}

impl Store {
    /// One container.
    pub fn get_container(&self, ns: &str, id: &str) -> Result<Container> {
        names::validate_namespace(ns)?;
        self.view().get(&keys::object(ns, Kind::Container, id))?.ok_or_else(|| not_found(id))
    }

    /// Containers matching `filters`, by id.
    pub fn list_containers(&self, ns: &str, filters: &Filters) -> Result<Vec<Container>> {
        names::validate_namespace(ns)?;
        let all = self.view().scan::<Container>(&keys::objects(ns, Kind::Container))?;
        Ok(all.into_iter().map(|(_, c)| c).filter(|c| filters.matches(&ContainerFields(c))).collect())
    }

    /// Creates a container; `AlreadyExists` if the id is taken.
    pub fn create_container(&self, ns: &str, container: &Container) -> Result<Container> {
        validate(container)?;
        self.write(|tx| {
            namespaces::ensure(tx, ns)?;
            let key = keys::object(ns, Kind::Container, &container.id);
            if tx.raw(&key)?.is_some() {
                return Err(Error::already_exists(format!("container {}: already exists", container.id)));
            }
            let c = Container { created: tx.now(), updated: tx.now(), ..container.clone() };
            tx.put(&key, &c)?;
            Ok(c)
        })
    }

    /// Updates a container by field paths (none = every mutable field).
    pub fn update_container(&self, ns: &str, container: &Container, paths: &[String]) -> Result<Container> {
        validate(container)?;
        names::validate_namespace(ns)?;
        let what = format!("container {}", container.id);
        self.write(|tx| {
            let key = keys::object(ns, Kind::Container, &container.id);
            let mut cur: Container = tx.get(&key)?.ok_or_else(|| not_found(&container.id))?;
            if container.runtime != cur.runtime && (paths.is_empty() || paths.iter().any(|p| p == "runtime"))
            {
                return Err(Error::invalid(format!("{what}: runtime cannot be changed")));
            }
            let all = ["labels", "image", "spec", "snapshotter", "snapshot_key", "extensions"];
            let paths: Vec<String> =
                if paths.is_empty() { all.iter().map(|p| p.to_string()).collect() } else { paths.to_vec() };
            for path in &paths {
                if update::labels(path, &mut cur.labels, &container.labels)?
                    || update::extensions(path, &mut cur.extensions, &container.extensions)
                {
                    continue;
                }
                match update::split(path) {
                    ("image", None) => cur.image = container.image.clone(),
                    ("spec", None) => cur.spec = container.spec.clone(),
                    ("snapshotter", None) => {
                        set_once(&what, "snapshotter", &mut cur.snapshotter, &container.snapshotter)?
                    }
                    ("snapshot_key" | "snapshotkey", None) => {
                        set_once(&what, "snapshot key", &mut cur.snapshot_key, &container.snapshot_key)?
                    }
                    ("id" | "runtime" | "created" | "updated", _) => {
                        return Err(Error::invalid(format!("{what}: field {path:?} is immutable")));
                    }
                    _ => return Err(update::unknown(&what, path)),
                }
            }
            cur.updated = tx.now();
            tx.put(&key, &cur)?;
            Ok(cur)
        })
    }

    /// Deletes a container.
    pub fn delete_container(&self, ns: &str, id: &str) -> Result<()> {
        names::validate_namespace(ns)?;
        self.write(|tx| {
            let key = keys::object(ns, Kind::Container, id);
            if tx.raw(&key)?.is_none() {
                return Err(not_found(id));
            }
            tx.delete(&key);
            Ok(())
        })
    }
}

/// A field that may go from empty to a value but never change once set.
fn set_once(what: &str, field: &str, cur: &mut String, new: &str) -> Result<()> {
    if cur.is_empty() || cur == new {
        *cur = new.to_string();
        Ok(())
    } else {
        Err(Error::invalid(format!("{what}: {field} is set and cannot be changed")))
    }
}
