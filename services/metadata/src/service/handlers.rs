//! One `handle_<request>` per message: parse, run on the store, publish, answer.

use berth_ipc::filter::Filters;
use berth_ipc::metadata::*;
use berth_ipc::{Reply, Result};

use super::MetadataService;

impl MetadataService {
    pub(super) async fn handle_list_namespaces(&self) -> Result<Vec<Namespace>> {
        self.read(|s| s.list_namespaces()).await
    }

    pub(super) async fn handle_create_namespace(&self, r: CreateNamespace) -> Result<Namespace> {
        let n = self.write(move |s| s.create_namespace(&r.namespace.name, &r.namespace.labels)).await?;
        self.events.namespace_created(&n);
        Ok(n)
    }

    pub(super) async fn handle_update_namespace(&self, r: UpdateNamespace) -> Result<Namespace> {
        let n =
            self.write(move |s| s.update_namespace(&r.namespace.name, &r.namespace.labels, &r.paths)).await?;
        self.events.namespace_updated(&n);
        Ok(n)
    }

    pub(super) async fn handle_delete_namespace(&self, r: DeleteNamespace) -> Result<()> {
        let name = r.name.clone();
        self.write(move |s| s.delete_namespace(&r.name)).await?;
        self.events.namespace_deleted(&name);
        Ok(())
    }

    pub(super) async fn handle_get_image(&self, r: GetImage) -> Result<Image> {
        self.read(move |s| s.get_image(&r.0.namespace, &r.0.name)).await
    }

    pub(super) async fn handle_list_images(&self, r: ListImages) -> Reply<MetadataResponse> {
        let filters = match Filters::parse(&r.0.filters) {
            Ok(f) => f,
            Err(e) => return Reply::Unary(Err(e)),
        };
        self.pages(move |s| s.list_images(&r.0.namespace, &filters), MetadataResponse::ListImages).await
    }

    pub(super) async fn handle_create_image(&self, r: CreateImage) -> Result<Image> {
        let ns = r.namespace.clone();
        let img = self.write(move |s| s.create_image(&r.namespace, &r.image)).await?;
        berth_ipc::failpoint!("metadata.image_create.after_commit");
        self.events.image_created(&ns, &img);
        Ok(img)
    }

    pub(super) async fn handle_update_image(&self, r: UpdateImage) -> Result<Image> {
        let ns = r.namespace.clone();
        let img = self.write(move |s| s.update_image(&r.namespace, &r.image, &r.paths)).await?;
        self.events.image_updated(&ns, &img);
        Ok(img)
    }

    pub(super) async fn handle_delete_image(&self, r: DeleteImage) -> Result<Option<GcReport>> {
        let (ns, name, sync) = (r.namespace.clone(), r.name.clone(), r.sync);
        self.write(move |s| s.delete_image(&r.namespace, &r.name)).await?;
        berth_ipc::failpoint!("metadata.image_delete.after_commit");
        self.events.image_deleted(&ns, &name);
        if sync { self.gc.collect().await.map(Some) } else { Ok(None) }
    }

    pub(super) async fn handle_get_container(&self, r: GetContainer) -> Result<Container> {
        self.read(move |s| s.get_container(&r.0.namespace, &r.0.name)).await
    }

    pub(super) async fn handle_list_containers(&self, r: ListContainers) -> Reply<MetadataResponse> {
        let filters = match Filters::parse(&r.0.filters) {
            Ok(f) => f,
            Err(e) => return Reply::Unary(Err(e)),
        };
        self.pages(move |s| s.list_containers(&r.0.namespace, &filters), MetadataResponse::ListContainers)
            .await
    }

    pub(super) async fn handle_create_container(&self, r: CreateContainer) -> Result<Container> {
        let ns = r.namespace.clone();
        let c = self.write(move |s| s.create_container(&r.namespace, &r.container)).await?;
        self.events.container_created(&ns, &c);
        Ok(c)
    }

    pub(super) async fn handle_update_container(&self, r: UpdateContainer) -> Result<Container> {
        let ns = r.namespace.clone();
        let c = self.write(move |s| s.update_container(&r.namespace, &r.container, &r.paths)).await?;
        self.events.container_updated(&ns, &c);
        Ok(c)
    }

    pub(super) async fn handle_delete_container(&self, r: DeleteContainer) -> Result<()> {
        let (ns, id) = (r.0.namespace.clone(), r.0.name.clone());
        self.write(move |s| s.delete_container(&r.0.namespace, &r.0.name)).await?;
        self.events.container_deleted(&ns, &id);
        Ok(())
    }

    pub(super) async fn handle_get_sandbox(&self, r: GetSandbox) -> Result<Sandbox> {
        self.read(move |s| s.get_sandbox(&r.0.namespace, &r.0.name)).await
    }

    pub(super) async fn handle_list_sandboxes(&self, r: ListSandboxes) -> Reply<MetadataResponse> {
        let filters = match Filters::parse(&r.0.filters) {
            Ok(f) => f,
            Err(e) => return Reply::Unary(Err(e)),
        };
        self.pages(move |s| s.list_sandboxes(&r.0.namespace, &filters), MetadataResponse::ListSandboxes).await
    }

    pub(super) async fn handle_create_sandbox(&self, r: CreateSandbox) -> Result<Sandbox> {
        self.write(move |s| s.create_sandbox(&r.namespace, &r.sandbox)).await
    }

    pub(super) async fn handle_update_sandbox(&self, r: UpdateSandbox) -> Result<Sandbox> {
        self.write(move |s| s.update_sandbox(&r.namespace, &r.sandbox, &r.paths)).await
    }

    pub(super) async fn handle_delete_sandbox(&self, r: DeleteSandbox) -> Result<()> {
        self.write(move |s| s.delete_sandbox(&r.0.namespace, &r.0.name)).await
    }

    pub(super) async fn handle_put_content(&self, r: PutContent) -> Result<ContentRecord> {
        self.write(move |s| s.put_content(&r.namespace, &r.digest, r.size, &r.labels, r.lease.as_deref()))
            .await
    }

    pub(super) async fn handle_get_content(&self, r: GetContent) -> Result<ContentRecord> {
        self.read(move |s| s.get_content(&r.namespace, &r.digest)).await
    }

    pub(super) async fn handle_list_content(&self, r: ListContent) -> Reply<MetadataResponse> {
        let filters = match Filters::parse(&r.0.filters) {
            Ok(f) => f,
            Err(e) => return Reply::Unary(Err(e)),
        };
        self.pages(move |s| s.list_content(&r.0.namespace, &filters), MetadataResponse::ListContent).await
    }

    pub(super) async fn handle_update_content(&self, r: UpdateContent) -> Result<ContentRecord> {
        self.write(move |s| s.update_content(&r.namespace, &r.digest, &r.labels, &r.paths)).await
    }

    pub(super) async fn handle_remove_content(&self, r: RemoveContent) -> Result<()> {
        self.write(move |s| s.remove_content(&r.namespace, &r.digest)).await
    }

    pub(super) async fn handle_put_snapshot(&self, r: PutSnapshot) -> Result<SnapshotRecord> {
        self.write(move |s| s.put_snapshot(&r.namespace, &r.snapshot, r.lease.as_deref())).await
    }

    pub(super) async fn handle_get_snapshot(&self, r: GetSnapshot) -> Result<SnapshotRecord> {
        self.read(move |s| s.get_snapshot(&r.0.namespace, &r.0.snapshotter, &r.0.key)).await
    }

    pub(super) async fn handle_list_snapshots(&self, r: ListSnapshots) -> Reply<MetadataResponse> {
        let filters = match Filters::parse(&r.list.filters) {
            Ok(f) => f,
            Err(e) => return Reply::Unary(Err(e)),
        };
        self.pages(
            move |s| s.list_snapshots(&r.list.namespace, &r.snapshotter, &filters),
            MetadataResponse::ListSnapshots,
        )
        .await
    }

    pub(super) async fn handle_update_snapshot(&self, r: UpdateSnapshot) -> Result<SnapshotRecord> {
        self.write(move |s| {
            s.update_snapshot(&r.at.namespace, &r.at.snapshotter, &r.at.key, &r.labels, &r.paths)
        })
        .await
    }

    pub(super) async fn handle_remove_snapshot(&self, r: RemoveSnapshot) -> Result<()> {
        self.write(move |s| s.remove_snapshot(&r.0.namespace, &r.0.snapshotter, &r.0.key)).await
    }

    pub(super) async fn handle_create_lease(&self, r: CreateLease) -> Result<Lease> {
        self.write(move |s| s.create_lease(&r.namespace, &r.id, &r.labels, r.ttl_ms)).await
    }

    pub(super) async fn handle_renew_lease(&self, r: RenewLease) -> Result<Lease> {
        self.write(move |s| s.renew_lease(&r.namespace, &r.id, r.ttl_ms)).await
    }

    pub(super) async fn handle_list_leases(&self, r: ListLeases) -> Result<Vec<Lease>> {
        let filters = Filters::parse(&r.0.filters)?;
        self.read(move |s| s.list_leases(&r.0.namespace, &filters)).await
    }

    pub(super) async fn handle_delete_lease(&self, r: DeleteLease) -> Result<Option<GcReport>> {
        let sync = r.sync;
        self.write(move |s| s.delete_lease(&r.namespace, &r.id)).await?;
        if sync { self.gc.collect().await.map(Some) } else { Ok(None) }
    }

    pub(super) async fn handle_add_lease_resource(&self, r: AddLeaseResource) -> Result<()> {
        self.write(move |s| s.add_lease_resource(&r.0.namespace, &r.0.lease, &r.0.resource)).await
    }

    pub(super) async fn handle_remove_lease_resource(&self, r: RemoveLeaseResource) -> Result<()> {
        self.write(move |s| s.remove_lease_resource(&r.0.namespace, &r.0.lease, &r.0.resource)).await
    }

    pub(super) async fn handle_list_lease_resources(
        &self,
        r: ListLeaseResources,
    ) -> Result<Vec<LeaseResource>> {
        self.read(move |s| s.list_lease_resources(&r.0.namespace, &r.0.name)).await
    }
}
