//! Containers: made from an image (snapshot prepared on its top chainID, spec generated
//! with the rootfs mounted for lookups, record in metadata) and removed again (the record at
//! once, the snapshot and logs just after, [`crate::removals`]). A failure part-way undoes
//! what was done, so nothing is left behind.

use std::collections::BTreeMap;

use berth_ipc::metadata::{
    ByName, Container, CreateContainer as MdCreate, CreateLease, DeleteContainer, DeleteLease, GetContainer,
    GetImage, PutSnapshot, RemoveSnapshot, RuntimeInfo, SnapshotRecord, SnapshotRef,
};
use berth_ipc::names::{validate_identifier, validate_namespace, validate_user_labels};
use berth_ipc::runtime::{
    CreateContainer, KillTask, NamespaceMode, RemoveContainer, SandboxRef, SandboxState, TaskRef,
};
use berth_ipc::snapshot::{KeyRef, Prepare, Remove, Stat};
use berth_ipc::{Code, Error, Result};
use berth_service_kit::blocking_value;

use crate::Runtime;
use crate::bundle::Bundle;
use crate::log_path::EXTENSION_LOG_PATH;
use crate::oci_runtime::runtime_binary;
use crate::{image, mount, spec};

/// The snapshotter containers use.
pub const SNAPSHOTTER: &str = "overlayfs";

/// The snapshot key of container `id`. Snapshot keys are per namespace (the snapshot
/// service scopes every key to the request's namespace), so the id alone is unambiguous;
/// the namespace used to be joined into the key with a `-`, which made `a` + `b-c` and
/// `a-b` + `c` the same snapshot.
pub fn snapshot_key(id: &str) -> String {
    format!("berth-container-{id}")
}

/// Label naming the namespace of the container a snapshot was prepared for.
pub const LABEL_NAMESPACE: &str = "berth.io/namespace";
/// Label naming the container a snapshot was prepared for.
pub const LABEL_CONTAINER: &str = "berth.io/container";

/// The labels a container's snapshot is prepared with: they prove whose it is.
fn owner_labels(ns: &str, id: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (LABEL_NAMESPACE.to_string(), ns.to_string()),
        (LABEL_CONTAINER.to_string(), id.to_string()),
    ])
}

/// Whether `info` is the active snapshot a create of `ns`/`id` prepared.
fn owned_by(info: &berth_ipc::snapshot::Info, ns: &str, id: &str) -> bool {
    info.kind == berth_ipc::snapshot::Kind::Active
        && info.labels.get(LABEL_NAMESPACE).is_some_and(|v| v == ns)
        && info.labels.get(LABEL_CONTAINER).is_some_and(|v| v == id)
}

impl Runtime {
    /// `CreateContainer`.
    pub async fn create_container(&self, req: CreateContainer) -> Result<Container> {
        if req.options.own_sandbox.is_some() {
            return self.create_owning(req).await;
        }
        self.create_plain(req).await
    }

    /// `CreateContainer` of a container in no sandbox or in one that exists.
    pub(crate) async fn create_plain(&self, req: CreateContainer) -> Result<Container> {
        validate_namespace(&req.namespace)?;
        validate_identifier("container id", &req.id)?;
        validate_user_labels(&req.labels)?;
        if let Some(claimed) = req.labels.get(crate::sandbox::LABEL_SANDBOX)
            && req.options.sandbox.as_ref() != Some(claimed)
        {
            return Err(Error::invalid(format!(
                "container {}: label {} is set by the runtime service from the container's sandbox",
                req.id,
                crate::sandbox::LABEL_SANDBOX
            )));
        }
        let runtime = runtime_binary(&req.runtime)?;
        let (ns, id) = (req.namespace.as_str(), req.id.as_str());
        if req.extensions.contains_key(EXTENSION_LOG_PATH) {
            return Err(Error::invalid(format!(
                "container {id}: extension {EXTENSION_LOG_PATH} is berth's own; set RunOptions.log_path"
            )));
        }
        let log_path = self.check_log_path(id, req.options.log_path.as_deref()).await?;
        let _claim = self.claims.take("container", ns, id)?;
        // An earlier container of this id may still be going (its snapshot under the key).
        self.removals.settled(ns, id).await;
        // Is the id free, and what does the image hold: asked at once.
        let existing = self.metadata.call(GetContainer(ByName { namespace: ns.into(), name: id.into() }));
        let resolved = async {
            let image = self
                .metadata
                .call(GetImage(ByName { namespace: ns.into(), name: req.image.clone() }))
                .await
                .map_err(|e| {
                    if e.is(Code::NotFound) {
                        Error::not_found(format!("image {}: not found", req.image))
                    } else {
                        e
                    }
                })?;
            image::resolve(&self.content, &image).await
        };
        let (existing, resolved) = tokio::join!(existing, resolved);
        match existing {
            Ok(_) => return Err(Error::already_exists(format!("container {id}: already exists"))),
            Err(e) if e.is(Code::NotFound) => {}
            Err(e) => return Err(e),
        }
        // No container of this id: output logs under its name are an earlier one's that a
        // crash kept from going with it; the new container must not show them.
        let logs = self.log_dir(ns, id);
        if logs.exists() {
            tracing::warn!(namespace = ns, id, "removing a removed container's stale logs");
            let _ = blocking_value("runtime worker", move || std::fs::remove_dir_all(logs)).await;
        }
        let (config, chain) = resolved?;
        let key = snapshot_key(id);
        let parent = chain.map(|c| c.to_string());
        // A lease protects the snapshot from garbage collection from its record on until the
        // container record, which references it, exists (before its record, a new snapshot
        // is protected by GC's grace period for never-recorded objects). The lease is taken
        // while the snapshot is prepared, and dropped in the background.
        let lease = self.metadata.call(CreateLease {
            namespace: ns.into(),
            id: String::new(),
            labels: BTreeMap::new(),
            ttl_ms: Some(120_000),
        });
        let prepare = Prepare {
            snapshotter: SNAPSHOTTER.into(),
            key: key.clone(),
            parent: parent.clone(),
            labels: owner_labels(ns, id),
            namespace: ns.into(),
        };
        let (lease, mounts) = tokio::join!(lease, self.prepare_fresh(prepare, ns, id));
        let mounts = mounts.map_err(|e| e.context(format!("container {id}: snapshot")));
        let (lease, mounts) = match (lease, mounts) {
            (Ok(lease), Ok(mounts)) => (lease, mounts),
            // One failed: undo the other; the lease's error wins when both failed.
            (Ok(lease), Err(e)) => {
                self.drop_lease(ns, lease.id);
                return Err(e);
            }
            (Err(e), Ok(_)) => {
                self.drop_snapshot(ns, &key).await;
                return Err(e);
            }
            (Err(e), Err(_)) => return Err(e),
        };
        let mut extensions = req.extensions.clone();
        if let Some(path) = log_path {
            extensions.insert(EXTENSION_LOG_PATH.into(), path.into_os_string().into_encoded_bytes());
        }
        let result =
            self.create_leased(&req, runtime, &config, &key, parent, &lease.id, mounts, extensions).await;
        self.drop_lease(ns, lease.id);
        result
    }

    /// Prepares the container's snapshot. One already under its key is what a create that
    /// crashed left (this process holds the id's [`crate::claim::Claim`] and no container record exists)
    /// if, and only if, its labels say it is the active snapshot of exactly this namespace
    /// and container: then it is removed, with its spec mount if any, and the snapshot
    /// prepared again. Any other snapshot under the key is left alone and the create fails.
    async fn prepare_fresh(
        &self,
        prepare: Prepare,
        ns: &str,
        id: &str,
    ) -> Result<Vec<berth_ipc::snapshot::Mount>> {
        match self.snapshot.call(prepare.clone()).await {
            Err(e) if e.is(Code::AlreadyExists) => {
                let at = KeyRef {
                    snapshotter: prepare.snapshotter.clone(),
                    key: prepare.key.clone(),
                    namespace: ns.into(),
                };
                let info = self.snapshot.call(Stat(at)).await?;
                if !owned_by(&info, ns, id) {
                    return Err(Error::already_exists(format!(
                        "snapshot {} in namespace {ns}: exists and is not container {id}'s (labels {:?}); not removed",
                        prepare.key, info.labels
                    )));
                }
                tracing::warn!(namespace = ns, id, key = %prepare.key, "removing a crashed create's snapshot");
                let tmp = self.spec_mount_dir(ns, id);
                let _ = blocking_value("runtime worker", move || mount::unmount_all(&tmp)).await;
                self.drop_snapshot(ns, &prepare.key).await;
                self.snapshot.call(prepare).await
            }
            other => other,
        }
    }

    /// Where a new container's rootfs is mounted while its spec is generated.
    pub(crate) fn spec_mount_dir(&self, ns: &str, id: &str) -> std::path::PathBuf {
        // Both are identifiers (no `/`): one directory level each, never ambiguous.
        self.state.join("tasks").join(".mnt").join(ns).join(id)
    }

    fn drop_lease(&self, ns: &str, id: String) {
        let (metadata, ns) = (self.metadata.clone(), ns.to_string());
        tokio::spawn(async move {
            let _ = metadata.call(DeleteLease { namespace: ns, id, sync: false }).await;
        });
    }

    #[allow(clippy::too_many_arguments)]
    async fn create_leased(
        &self,
        req: &CreateContainer,
        runtime: &str,
        config: &spec::ImageConfig,
        key: &str,
        parent: Option<String>,
        lease: &str,
        mounts: Vec<berth_ipc::snapshot::Mount>,
        extensions: BTreeMap<String, Vec<u8>>,
    ) -> Result<Container> {
        let (ns, id) = (req.namespace.as_str(), req.id.as_str());
        let key = key.to_string();
        let result = async {
            let record = self.metadata.call(PutSnapshot {
                namespace: ns.into(),
                snapshot: SnapshotRecord {
                    snapshotter: SNAPSHOTTER.into(),
                    key: key.clone(),
                    parent: parent.clone(),
                    labels: BTreeMap::new(),
                    created: 0,
                    updated: 0,
                },
                lease: Some(lease.to_string()),
            });
            // The spec needs the rootfs mounted for lookups; that overlaps the record.
            let (record, spec) = tokio::join!(record, self.spec_in_mounted(&mounts, config, req));
            record?;
            let spec = spec?;
            let container = Container {
                id: id.into(),
                image: req.image.clone(),
                runtime: RuntimeInfo { name: runtime.into(), options: Vec::new() },
                spec,
                snapshotter: SNAPSHOTTER.into(),
                snapshot_key: key.clone(),
                labels: match &req.options.sandbox {
                    Some(sb) => crate::sandbox::container_labels(&req.labels, sb),
                    None => req.labels.clone(),
                },
                extensions,
                created: 0,
                updated: 0,
            };
            self.metadata.call(MdCreate { namespace: ns.into(), container }).await
        }
        .await;
        if result.is_err() {
            self.drop_snapshot(ns, &key).await;
        }
        result
    }

    /// Mounts the new snapshot on a temp dir, generates the spec, unmounts.
    async fn spec_in_mounted(
        &self,
        mounts: &[berth_ipc::snapshot::Mount],
        config: &spec::ImageConfig,
        req: &CreateContainer,
    ) -> Result<Vec<u8>> {
        let tmp = self.spec_mount_dir(&req.namespace, &req.id);
        // 0700 like every dir of the state dir: the image's rootfs is mounted there for a moment.
        let mut dirs = std::fs::DirBuilder::new();
        std::os::unix::fs::DirBuilderExt::mode(dirs.recursive(true), 0o700);
        dirs.create(&tmp).map_err(|e| Error::internal_cause(tmp.display(), e))?;
        let (mounts, config, req2, tmp2) = (mounts.to_vec(), config.clone(), req.clone(), tmp.clone());
        let placement = self.placement(req).await?;
        let out = blocking_value("runtime worker", move || {
            mount::mount_for_lookup(&mounts, &tmp2)?;
            let spec = spec::generate(&config, &req2.options, &req2.id, &placement, &tmp2);
            let _ = mount::unmount_all(&tmp2);
            serde_json::to_vec(&spec?).map_err(|e| Error::internal_cause("spec", e))
        })
        .await?;
        let _ = std::fs::remove_dir(&tmp);
        out
    }

    /// Where a new container goes: its sandbox (which must be ready), its cgroup (under the
    /// sandbox's cgroup parent, if it names one), the pid namespace its pid mode targets.
    async fn placement(&self, req: &CreateContainer) -> Result<spec::Placement> {
        let (ns, id) = (req.namespace.as_str(), req.id.as_str());
        let sandbox = match &req.options.sandbox {
            None => None,
            Some(sb) => {
                let info = self
                    .get_sandbox(SandboxRef { namespace: ns.into(), id: sb.clone() })
                    .await
                    .map_err(|e| e.context(format!("container {id}")))?;
                if info.state != SandboxState::Ready {
                    return Err(Error::precondition(format!("container {id}: sandbox {sb} is not ready")));
                }
                Some(info)
            }
        };
        let cgroup = match sandbox.as_ref().and_then(|s| s.spec.cgroup_parent.as_deref()) {
            Some(parent) => format!("{}/{id}", parent.trim_end_matches('/')),
            None => self.cgroup_path(ns, id),
        };
        let target_pid_ns = match &req.options.linux.pid {
            NamespaceMode::Target(target) => {
                let task = self
                    .get(TaskRef::init(ns, target))
                    .await
                    .map_err(|e| e.context(format!("container {id}: pid namespace target {target}")))?;
                if task.pid == 0 || task.status != berth_ipc::runtime::TaskStatus::Running {
                    return Err(Error::precondition(format!(
                        "container {id}: pid namespace target {target} is not running"
                    )));
                }
                Some(std::path::PathBuf::from(format!("/proc/{}/ns/pid", task.pid)))
            }
            _ => None,
        };
        Ok(spec::Placement { cgroup, sandbox, target_pid_ns })
    }

    /// Removes a container's snapshot and its record, at once: whichever a crash leaves
    /// behind, GC settles (a snapshot without a record is an orphan it removes; a record
    /// without a snapshot is one it drops).
    async fn drop_snapshot(&self, ns: &str, key: &str) {
        let snapshot = self.snapshot.call(Remove(KeyRef {
            snapshotter: SNAPSHOTTER.into(),
            key: key.into(),
            namespace: ns.into(),
        }));
        let at = SnapshotRef { namespace: ns.into(), snapshotter: SNAPSHOTTER.into(), key: key.into() };
        let _ = tokio::join!(snapshot, self.metadata.call(RemoveSnapshot(at)));
    }

    /// Clears a bundle without its `task.json`: what a task create or delete that died
    /// part-way left (no task create of the id runs in this process). Nothing can adopt it,
    /// and it made the container impossible to remove ("has a task", found by the fault
    /// campaign). A shim it may have started is killed, the container with it.
    async fn remove_leftover_bundle(&self, bundle: &Bundle, runtime: &str, ns: &str, id: &str) -> Result<()> {
        tracing::warn!(namespace = ns, id, "removing a task bundle left without its record");
        if self.shim_alive(bundle).await
            && let Some(pid) = bundle.read_shim_pid()
        {
            crate::shim_client::kill_pid(pid);
        }
        self.cleanup_runtime(bundle, runtime, ns, id).await;
        let (root, dir, roots) = (bundle.rootfs(), bundle.dir.clone(), self.roots_dir(ns, id));
        blocking_value("runtime worker", move || {
            mount::unmount_all(&root)?;
            crate::idmapped::unmount(&roots)?;
            std::fs::remove_dir_all(&dir).map_err(|e| Error::internal_cause(dir.display(), e))
        })
        .await?
    }

    /// `RemoveContainer`.
    pub async fn remove_container(&self, req: RemoveContainer) -> Result<()> {
        validate_namespace(&req.namespace)?;
        validate_identifier("container id", &req.id)?;
        let (ns, id) = (req.namespace.as_str(), req.id.as_str());
        let container =
            self.metadata.call(GetContainer(ByName { namespace: ns.into(), name: id.into() })).await?;
        let bundle = self.bundle(ns, id);
        if bundle.dir.exists() && !bundle.record().exists() && !self.claims.held("task", ns, id) {
            self.remove_leftover_bundle(&bundle, &container.runtime.name, ns, id).await?;
        }
        if bundle.dir.exists() {
            if !req.force {
                return Err(Error::precondition(format!(
                    "container {id}: has a task; delete it first or force"
                )));
            }
            // An exited task (the usual case: the CRI stops before it removes) is deleted
            // at once; a running one is killed first.
            let task = TaskRef::init(ns, id);
            match self.delete(task.clone()).await {
                Err(e) if e.is(Code::FailedPrecondition) => {
                    let _ = self.kill(KillTask { task: task.clone(), signal: 9, all: true }).await;
                    let wait = std::time::Duration::from_secs(10);
                    let _ = tokio::time::timeout(wait, self.wait(task.clone())).await;
                    self.delete(task).await?;
                }
                other => {
                    other?;
                }
            }
        }
        // Its own sandbox (its network) goes before its record: a failure here leaves the
        // container, so the remove can be tried again.
        self.remove_owned_sandbox(ns, id).await?;
        // The commit point: from here on the container is gone. What it leaves (output logs,
        // snapshot) goes now, or, for a container made to be removed that way (the CRI's),
        // just after the answer ([`crate::removals`]).
        let removing = self.removals.begin(ns, id).await;
        self.metadata.call(DeleteContainer(ByName { namespace: ns.into(), name: id.into() })).await?;
        let background = container.extensions.contains_key(crate::removals::EXTENSION);
        let (rt, ns, id, key) = (self.clone(), ns.to_string(), id.to_string(), container.snapshot_key);
        let leftovers = async move {
            berth_ipc::failpoint!("runtime.container.remove.after_record");
            rt.remove_leftovers(&ns, &id, &key).await;
            drop(removing);
            // The OCI runtime removes the container's own cgroup at its delete (the shim's,
            // in the background): once that is done, the parents it leaves empty go too.
            tokio::spawn(async move { rt.prune_cgroups(&ns, &id).await });
        };
        match background {
            true => drop(tokio::spawn(leftovers)),
            false => leftovers.await,
        }
        Ok(())
    }

    /// A removed container's output logs and snapshot. Its output goes with it (a dir left
    /// by a crash here goes with a later container of that id being created or removed, or
    /// is overwritten by its output); its snapshot, left by a crash, is an orphan GC removes.
    async fn remove_leftovers(&self, ns: &str, id: &str, key: &str) {
        let logs = self.log_dir(ns, id);
        let dir = logs.clone();
        if let Ok(Err(e)) = blocking_value("runtime worker", move || std::fs::remove_dir_all(dir)).await
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(dir = %logs.display(), error = %e, "container logs not removed");
        }
        if !key.is_empty() {
            self.drop_snapshot(ns, key).await;
        }
    }
}
