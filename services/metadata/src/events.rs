//! The events the metadata service publishes (`/namespaces/*`, `/images/*`,
//! `/containers/*`), each after its write has committed. Publishing never blocks and never
//! fails the operation: the publisher keeps a bounded outbox and retries.

use berth_ipc::events::payload::{
    ContainerCreate, ContainerDelete, ContainerUpdate, ImageCreate, ImageDelete, ImageUpdate,
    NamespaceCreate, NamespaceDelete, NamespaceUpdate, Payload,
};
use berth_ipc::metadata::{Container, Image, Namespace};
use berth_ipc::publisher::Publisher;

/// Where events go; `None` publishes nothing (tests of the store alone).
#[derive(Clone, Default)]
pub struct Events(Option<Publisher>);

impl Events {
    /// Events sent through `publisher`.
    pub fn new(publisher: Publisher) -> Self {
        Events(Some(publisher))
    }

    fn send(&self, ns: &str, payload: impl Into<Payload>) {
        if let Some(p) = &self.0 {
            p.publish(ns, payload);
        }
    }

    /// `/namespaces/create`.
    pub fn namespace_created(&self, n: &Namespace) {
        self.send(&n.name, NamespaceCreate { name: n.name.clone(), labels: n.labels.clone() });
    }
    /// `/namespaces/update`.
    pub fn namespace_updated(&self, n: &Namespace) {
        self.send(&n.name, NamespaceUpdate { name: n.name.clone(), labels: n.labels.clone() });
    }
    /// `/namespaces/delete`.
    pub fn namespace_deleted(&self, name: &str) {
        self.send(name, NamespaceDelete { name: name.to_string() });
    }
    /// `/images/create`.
    pub fn image_created(&self, ns: &str, i: &Image) {
        self.send(ns, ImageCreate { name: i.name.clone(), labels: i.labels.clone() });
    }
    /// `/images/update`.
    pub fn image_updated(&self, ns: &str, i: &Image) {
        self.send(ns, ImageUpdate { name: i.name.clone(), labels: i.labels.clone() });
    }
    /// `/images/delete`.
    pub fn image_deleted(&self, ns: &str, name: &str) {
        self.send(ns, ImageDelete { name: name.to_string() });
    }
    /// `/containers/create`.
    pub fn container_created(&self, ns: &str, c: &Container) {
        self.send(
            ns,
            ContainerCreate { id: c.id.clone(), image: c.image.clone(), runtime: c.runtime.name.clone() },
        );
    }
    /// `/containers/update`.
    pub fn container_updated(&self, ns: &str, c: &Container) {
        self.send(
            ns,
            ContainerUpdate {
                id: c.id.clone(),
                image: c.image.clone(),
                labels: c.labels.clone(),
                snapshot_key: c.snapshot_key.clone(),
            },
        );
    }
    /// `/containers/delete`.
    pub fn container_deleted(&self, ns: &str, id: &str) {
        self.send(ns, ContainerDelete { id: id.to_string() });
    }
}
