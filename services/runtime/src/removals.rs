//! What a container removal may finish after it has answered: once its record is gone (the
//! commit point), the output logs and the snapshot (backend and record) of a container
//! whose record carries [`EXTENSION`] (the CRI's) are removed in the background, as
//! containerd's CRI leaves its snapshot to GC. Other containers (the CLI's, like `ctr`'s)
//! are removed with their snapshot before the answer: `containers rm` then `snapshots rm`
//! of the parent works. A crash meanwhile loses nothing that matters: the snapshot, now
//! referenced by no container, is an orphan that metadata's GC removes; the log dir of a
//! container whose record is gone goes at the service's next start
//! ([`crate::Runtime::reconcile_logs`]).
//!
//! A create of the same id waits for its predecessor's removal ([`Removals::settled`]), so
//! that the background `Remove` of the old snapshot cannot meet the new one under the same
//! key.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use berth_ipc::sync::lock;
use tokio::sync::watch;

/// Container extension: remove this container's logs and snapshot after answering its
/// `RemoveContainer`. The CRI service sets it on every container it makes (value unused).
pub const EXTENSION: &str = "berth.io/remove-in-background";

/// The background removals of one runtime service, by namespace and id.
#[derive(Default)]
pub struct Removals(Mutex<BTreeMap<(String, String), watch::Receiver<()>>>);

/// One removal in flight; dropping it marks it done.
pub struct Removing {
    removals: Arc<Removals>,
    key: (String, String),
    _done: watch::Sender<()>,
}

impl Removals {
    /// Marks the removal of `ns`/`id` as running until the answer is dropped; one already
    /// running for it is waited for first.
    pub async fn begin(self: &Arc<Self>, ns: &str, id: &str) -> Removing {
        let key = (ns.to_string(), id.to_string());
        loop {
            let mut rx = {
                let mut map = lock(&self.0);
                match map.get(&key) {
                    Some(rx) => rx.clone(),
                    None => {
                        let (tx, rx) = watch::channel(());
                        map.insert(key.clone(), rx);
                        return Removing { removals: self.clone(), key, _done: tx };
                    }
                }
            };
            let _ = rx.changed().await;
        }
    }

    /// Waits until no removal of `ns`/`id` runs.
    pub async fn settled(&self, ns: &str, id: &str) {
        loop {
            let rx = lock(&self.0).get(&(ns.to_string(), id.to_string())).cloned();
            let Some(mut rx) = rx else { return };
            // Nothing is ever sent: `changed` answers once the sender is dropped.
            let _ = rx.changed().await;
        }
    }

    /// Whether a removal of `ns`/`id` runs.
    pub fn running(&self, ns: &str, id: &str) -> bool {
        lock(&self.0).contains_key(&(ns.to_string(), id.to_string()))
    }
}

impl Drop for Removing {
    fn drop(&mut self) {
        lock(&self.removals.0).remove(&self.key);
    }
}

impl crate::Runtime {
    /// At start: the output log dirs of containers without a record (a removal cut off
    /// between the record and the logs) are removed. Ids being created or removed by this
    /// process meanwhile are left alone.
    pub async fn reconcile_logs(&self) {
        use berth_ipc::metadata::{ByName, GetContainer};
        let dir = self.root.join("logs");
        let found = berth_service_kit::blocking_value("runtime worker", move || {
            let mut found = Vec::new();
            for ns in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
                let Ok(name) = ns.file_name().into_string() else { continue };
                for id in std::fs::read_dir(ns.path()).into_iter().flatten().flatten() {
                    if let Ok(id) = id.file_name().into_string() {
                        found.push((name.clone(), id));
                    }
                }
            }
            found
        })
        .await
        .unwrap_or_default();
        for (ns, id) in found {
            if berth_ipc::names::validate_namespace(&ns).is_err()
                || berth_ipc::names::validate_identifier("container id", &id).is_err()
            {
                continue;
            }
            let get = self.metadata.call(GetContainer(ByName { namespace: ns.clone(), name: id.clone() }));
            match get.await {
                Err(e) if e.is(berth_ipc::Code::NotFound) => {}
                _ => continue,
            }
            if self.claims.held("container", &ns, &id) || self.removals.running(&ns, &id) {
                continue;
            }
            tracing::warn!(namespace = %ns, id = %id, "removing a removed container's output logs");
            let logs = self.log_dir(&ns, &id);
            let _ =
                berth_service_kit::blocking_value("runtime worker", move || std::fs::remove_dir_all(logs))
                    .await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn a_create_waits_for_the_removal_of_its_id_and_no_other() {
        let removals = Arc::new(Removals::default());
        let removing = removals.begin("default", "web").await;
        assert!(removals.running("default", "web"));
        assert!(!removals.running("default", "db"));
        // Another id, or the same id in another namespace, does not wait.
        tokio::time::timeout(Duration::from_secs(1), removals.settled("default", "db"))
            .await
            .expect("other id");
        tokio::time::timeout(Duration::from_secs(1), removals.settled("other", "web"))
            .await
            .expect("other ns");
        let waiting =
            tokio::time::timeout(Duration::from_millis(100), removals.settled("default", "web")).await;
        assert!(waiting.is_err(), "settled returned while the removal runs");
        let r2 = removals.clone();
        let waiter = tokio::spawn(async move { r2.settled("default", "web").await });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiter.is_finished());
        drop(removing);
        tokio::time::timeout(Duration::from_secs(1), waiter).await.expect("settled once done").expect("join");
        assert!(!removals.running("default", "web"));
    }

    #[tokio::test]
    async fn a_second_removal_of_an_id_starts_after_the_first() {
        let removals = Arc::new(Removals::default());
        let first = removals.begin("default", "web").await;
        let r2 = removals.clone();
        let second = tokio::spawn(async move { r2.begin("default", "web").await });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!second.is_finished(), "the second began while the first ran");
        drop(first);
        let second =
            tokio::time::timeout(Duration::from_secs(1), second).await.expect("begun").expect("join");
        assert!(removals.running("default", "web"));
        drop(second);
        assert!(!removals.running("default", "web"));
    }
}
