//! Ids being created by this process: a create holds its id's [`Claim`], so what it finds
//! of an earlier create of that id is a crashed process's leftover, never a concurrent
//! create's work. The set is state of one [`crate::Runtime`] (two services in one process
//! share nothing).

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use berth_ipc::sync::lock;
use berth_ipc::{Error, Result};

/// The claims of one runtime service.
#[derive(Default)]
pub struct Claims(Mutex<BTreeSet<String>>);

fn key(kind: &str, ns: &str, id: &str) -> String {
    format!("{kind}\0{ns}\0{id}")
}

impl Claims {
    fn set(&self) -> std::sync::MutexGuard<'_, BTreeSet<String>> {
        lock(&self.0)
    }

    /// Claims `kind` (`container`, `task`) `id` in `ns`, or fails with AlreadyExists while
    /// another holds it.
    pub fn take(self: &Arc<Self>, kind: &str, ns: &str, id: &str) -> Result<Claim> {
        let key = key(kind, ns, id);
        if !self.set().insert(key.clone()) {
            return Err(Error::already_exists(format!("{kind} {id}: being created")));
        }
        Ok(Claim { claims: self.clone(), key })
    }

    /// Whether a create of `kind` `id` in `ns` runs in this process.
    pub fn held(&self, kind: &str, ns: &str, id: &str) -> bool {
        self.set().contains(&key(kind, ns, id))
    }
}

/// One id's claim; released on drop.
pub struct Claim {
    claims: Arc<Claims>,
    key: String,
}

impl Drop for Claim {
    fn drop(&mut self) {
        self.claims.set().remove(&self.key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_ipc::Code;

    #[test]
    fn a_second_claim_of_the_same_id_fails_until_the_first_is_dropped() {
        let claims = Arc::new(Claims::default());
        let first = claims.take("task", "default", "web").expect("first claim");
        let second = claims.take("task", "default", "web").err().expect("second claim refused");
        assert!(second.is(Code::AlreadyExists), "{second}");
        assert!(second.to_string().contains("task web: being created"), "{second}");
        assert!(claims.held("task", "default", "web"));
        drop(first);
        assert!(!claims.held("task", "default", "web"));
        let _again = claims.take("task", "default", "web").expect("free again after drop");
    }

    #[test]
    fn claims_are_per_kind_namespace_and_service() {
        let claims = Arc::new(Claims::default());
        let _task = claims.take("task", "default", "web").expect("task");
        let _container = claims.take("container", "default", "web").expect("container of the same id");
        let _other_ns = claims.take("task", "other", "web").expect("another namespace");
        let other_service = Arc::new(Claims::default());
        let _elsewhere = other_service.take("task", "default", "web").expect("another service's claims");
        assert!(!other_service.held("container", "default", "web"));
    }

    #[test]
    fn contending_threads_get_exactly_one_claim() {
        let claims = Arc::new(Claims::default());
        let barrier = Arc::new(std::sync::Barrier::new(8));
        let handles: Vec<_> = (0..8)
            .map(|_| {
                let (claims, barrier) = (claims.clone(), barrier.clone());
                std::thread::spawn(move || {
                    barrier.wait();
                    let claim = claims.take("container", "default", "race");
                    // Hold it until everyone has tried.
                    std::thread::sleep(std::time::Duration::from_millis(50));
                    claim.is_ok()
                })
            })
            .collect();
        let won = handles.into_iter().map(|h| h.join().expect("thread")).filter(|won| *won).count();
        assert_eq!(won, 1, "one create of an id at a time");
    }
}
