//! Pod sandboxes: the records the runtime service keeps of what a pod's containers share.
//! `id` and `runtime` never change.

use berth_ipc::filter::Filters;
use berth_ipc::metadata::Sandbox;
use berth_ipc::names;
use berth_ipc::{Error, Result};

use super::keys::{self, Kind};
use super::{Read, Store, namespaces, update};
use crate::filters::SandboxFields;

fn not_found(id: &str) -> Error {
    Error::not_found(format!("sandbox {id}: not found"))
}

fn validate(s: &Sandbox) -> Result<()> {
    names::validate_identifier("sandbox id", &s.id)?;
    if s.runtime.name.is_empty() {
        return Err(Error::invalid(format!("sandbox {}: runtime name must be set", s.id)));
    }
    names::validate_name("runtime name", &s.runtime.name)?;
    for name in s.extensions.keys() {
        names::validate_name("extension name", name)?;
    }
    names::validate_user_labels(&s.labels)
}

impl Store {
    /// One sandbox.
    pub fn get_sandbox(&self, ns: &str, id: &str) -> Result<Sandbox> {
        names::validate_namespace(ns)?;
        self.view().get(&keys::object(ns, Kind::Sandbox, id))?.ok_or_else(|| not_found(id))
    }

    /// Sandboxes matching `filters`, by id.
    pub fn list_sandboxes(&self, ns: &str, filters: &Filters) -> Result<Vec<Sandbox>> {
        names::validate_namespace(ns)?;
        let all = self.view().scan::<Sandbox>(&keys::objects(ns, Kind::Sandbox))?;
        Ok(all.into_iter().map(|(_, s)| s).filter(|s| filters.matches(&SandboxFields(s))).collect())
    }

    /// Creates a sandbox; `AlreadyExists` if the id is taken.
    pub fn create_sandbox(&self, ns: &str, sandbox: &Sandbox) -> Result<Sandbox> {
        validate(sandbox)?;
        self.write(|tx| {
            namespaces::ensure(tx, ns)?;
            let key = keys::object(ns, Kind::Sandbox, &sandbox.id);
            if tx.raw(&key)?.is_some() {
                return Err(Error::already_exists(format!("sandbox {}: already exists", sandbox.id)));
            }
            let s = Sandbox { created: tx.now(), updated: tx.now(), ..sandbox.clone() };
            tx.put(&key, &s)?;
            Ok(s)
        })
    }

    /// Updates a sandbox by field paths (none = every mutable field).
    pub fn update_sandbox(&self, ns: &str, sandbox: &Sandbox, paths: &[String]) -> Result<Sandbox> {
        validate(sandbox)?;
        names::validate_namespace(ns)?;
        let what = format!("sandbox {}", sandbox.id);
        self.write(|tx| {
            let key = keys::object(ns, Kind::Sandbox, &sandbox.id);
            let mut cur: Sandbox = tx.get(&key)?.ok_or_else(|| not_found(&sandbox.id))?;
            if sandbox.runtime != cur.runtime && (paths.is_empty() || paths.iter().any(|p| p == "runtime")) {
                return Err(Error::invalid(format!("{what}: runtime cannot be changed")));
            }
            let all = ["labels", "spec", "extensions"];
            let paths: Vec<String> =
                if paths.is_empty() { all.iter().map(|p| p.to_string()).collect() } else { paths.to_vec() };
            for path in &paths {
                if update::labels(path, &mut cur.labels, &sandbox.labels)?
                    || update::extensions(path, &mut cur.extensions, &sandbox.extensions)
                {
                    continue;
                }
                match update::split(path) {
                    ("spec", None) => cur.spec = sandbox.spec.clone(),
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

    /// Deletes a sandbox.
    pub fn delete_sandbox(&self, ns: &str, id: &str) -> Result<()> {
        names::validate_namespace(ns)?;
        self.write(|tx| {
            let key = keys::object(ns, Kind::Sandbox, id);
            if tx.raw(&key)?.is_none() {
                return Err(not_found(id));
            }
            tx.delete(&key);
            Ok(())
        })
    }
}
