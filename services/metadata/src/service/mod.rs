//! The service layer: owns the store and the collector, runs store calls on blocking
//! threads, holds the GC lock's shared side around writes, publishes events after commits,
//! and answers lists as streams of pages. One `handle_<request>` per message lives in
//! [`handlers`].

mod handlers;

use std::sync::Arc;

use berth_ipc::metadata::{LIST_PAGE, Metadata, MetadataRequest, MetadataResponse};
use berth_ipc::{Context, Handler, Reply, Result};

use crate::events::Events;
use crate::gc::Collector;
use crate::store::Store;

/// The metadata service's request handler.
#[derive(Clone)]
pub struct MetadataService {
    store: Arc<Store>,
    gc: Arc<Collector>,
    events: Events,
}

impl MetadataService {
    /// A service over `store`, collecting with `gc`, publishing to `events`.
    pub fn new(store: Arc<Store>, gc: Arc<Collector>, events: Events) -> Self {
        MetadataService { store, gc, events }
    }

    /// Runs a read on a blocking thread.
    async fn read<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Store) -> Result<T> + Send + 'static,
    {
        let store = self.store.clone();
        berth_service_kit::blocking("metadata: store task failed", move || f(&store)).await
    }

    /// Runs a write on a blocking thread, never during a GC pass.
    async fn write<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Store) -> Result<T> + Send + 'static,
    {
        let _shared = self.gc.writer().await;
        self.read(f).await
    }

    /// Answers a list as a stream of pages of at most [`LIST_PAGE`] items.
    async fn pages<T, F>(&self, f: F, wrap: fn(Vec<T>) -> MetadataResponse) -> Reply<MetadataResponse>
    where
        T: Send + 'static,
        F: FnOnce(&Store) -> Result<Vec<T>> + Send + 'static,
    {
        let items = self.read(f).await;
        let (tx, reply) = Reply::stream(4);
        tokio::spawn(async move {
            match items {
                Ok(items) => {
                    let mut items = items.into_iter().peekable();
                    while items.peek().is_some() {
                        let page: Vec<T> = items.by_ref().take(LIST_PAGE).collect();
                        if tx.send(Ok(wrap(page))).await.is_err() {
                            break;
                        }
                    }
                }
                Err(e) => {
                    let _ = tx.send(Err(e)).await;
                }
            }
        });
        reply
    }
}

impl Handler<Metadata> for MetadataService {
    async fn handle(&self, req: MetadataRequest, _ctx: Context) -> Reply<MetadataResponse> {
        use MetadataRequest as Q;
        use MetadataResponse as A;
        let r = match req {
            Q::ListNamespaces(_) => self.handle_list_namespaces().await.map(A::ListNamespaces),
            Q::CreateNamespace(r) => self.handle_create_namespace(r).await.map(A::CreateNamespace),
            Q::UpdateNamespace(r) => self.handle_update_namespace(r).await.map(A::UpdateNamespace),
            Q::DeleteNamespace(r) => self.handle_delete_namespace(r).await.map(A::DeleteNamespace),
            Q::GetImage(r) => self.handle_get_image(r).await.map(A::GetImage),
            Q::ListImages(r) => return self.handle_list_images(r).await,
            Q::CreateImage(r) => self.handle_create_image(r).await.map(A::CreateImage),
            Q::UpdateImage(r) => self.handle_update_image(r).await.map(A::UpdateImage),
            Q::DeleteImage(r) => self.handle_delete_image(r).await.map(A::DeleteImage),
            Q::GetContainer(r) => self.handle_get_container(r).await.map(A::GetContainer),
            Q::ListContainers(r) => return self.handle_list_containers(r).await,
            Q::CreateContainer(r) => self.handle_create_container(r).await.map(A::CreateContainer),
            Q::UpdateContainer(r) => self.handle_update_container(r).await.map(A::UpdateContainer),
            Q::DeleteContainer(r) => self.handle_delete_container(r).await.map(A::DeleteContainer),
            Q::PutContent(r) => self.handle_put_content(r).await.map(A::PutContent),
            Q::GetContent(r) => self.handle_get_content(r).await.map(A::GetContent),
            Q::ListContent(r) => return self.handle_list_content(r).await,
            Q::UpdateContent(r) => self.handle_update_content(r).await.map(A::UpdateContent),
            Q::RemoveContent(r) => self.handle_remove_content(r).await.map(A::RemoveContent),
            Q::PutSnapshot(r) => self.handle_put_snapshot(r).await.map(A::PutSnapshot),
            Q::GetSnapshot(r) => self.handle_get_snapshot(r).await.map(A::GetSnapshot),
            Q::ListSnapshots(r) => return self.handle_list_snapshots(r).await,
            Q::UpdateSnapshot(r) => self.handle_update_snapshot(r).await.map(A::UpdateSnapshot),
            Q::RemoveSnapshot(r) => self.handle_remove_snapshot(r).await.map(A::RemoveSnapshot),
            Q::CreateLease(r) => self.handle_create_lease(r).await.map(A::CreateLease),
            Q::RenewLease(r) => self.handle_renew_lease(r).await.map(A::RenewLease),
            Q::ListLeases(r) => self.handle_list_leases(r).await.map(A::ListLeases),
            Q::DeleteLease(r) => self.handle_delete_lease(r).await.map(A::DeleteLease),
            Q::AddLeaseResource(r) => self.handle_add_lease_resource(r).await.map(A::AddLeaseResource),
            Q::RemoveLeaseResource(r) => {
                self.handle_remove_lease_resource(r).await.map(A::RemoveLeaseResource)
            }
            Q::ListLeaseResources(r) => self.handle_list_lease_resources(r).await.map(A::ListLeaseResources),
            Q::Gc(_) => self.gc.collect().await.map(A::Gc),
            Q::GetSandbox(r) => self.handle_get_sandbox(r).await.map(A::GetSandbox),
            Q::ListSandboxes(r) => return self.handle_list_sandboxes(r).await,
            Q::CreateSandbox(r) => self.handle_create_sandbox(r).await.map(A::CreateSandbox),
            Q::UpdateSandbox(r) => self.handle_update_sandbox(r).await.map(A::UpdateSandbox),
            Q::DeleteSandbox(r) => self.handle_delete_sandbox(r).await.map(A::DeleteSandbox),
        };
        Reply::Unary(r)
    }

    fn gauges(&self) -> Vec<(String, f64)> {
        use std::sync::atomic::Ordering::Relaxed;
        let stats = self.gc.stats();
        #[allow(clippy::cast_precision_loss)]
        let g = |name: &str, v: u64| (name.to_string(), v as f64);
        vec![
            g("gc_pending_mutations", self.gc.mutations_since_pass()),
            g("gc_runs", stats.runs.load(Relaxed)),
            g("gc_failed_runs", stats.failed.load(Relaxed)),
            g("gc_last_duration_us", stats.last_us.load(Relaxed)),
            g("gc_deleted_objects", stats.deleted.load(Relaxed)),
        ]
    }
}
