//! Task lifecycle: create (bundle, rootfs mount, shim), start, kill, wait, state, delete.
//! The bundle directories are the only state: the service keeps nothing in memory that a
//! restart would lose, and a task whose shim is gone reports its recorded exit (or 255).

use std::os::unix::fs::DirBuilderExt;

use berth_ipc::events::payload::{EventMount, TaskCreate, TaskDelete, TaskExit};
use berth_ipc::metadata::{ByName, GetContainer};
use berth_ipc::names::{validate_identifier, validate_namespace};
use berth_ipc::runtime::{ExitInfo, KillTask, ShimRequest, ShimResponse, TaskInfo, TaskRef, TaskStatus};
use berth_ipc::snapshot::{KeyRef, Mounts};
use berth_ipc::{Code, Error, Result};
use berth_service_kit::blocking_value;

use crate::Runtime;
use crate::bundle::{Bundle, TaskRecord, now_ns, write_exit};
use crate::oci_runtime::runtime_binary;
use crate::shim::ShimArgs;
use crate::shim_client::{kill_shims_of, shim_alive};
use crate::{mount, shim_client};

/// How long a call waits for its event to be stored before events the shim publishes.
pub const EVENT_ORDER_WAIT: std::time::Duration = std::time::Duration::from_millis(500);

/// Exit status reported when a shim vanished without recording one.
pub const UNKNOWN_EXIT: u32 = 255;

pub(crate) fn check(task: &TaskRef) -> Result<()> {
    validate_namespace(&task.namespace)?;
    validate_identifier("container id", &task.id)?;
    if let Some(e) = &task.exec_id {
        validate_identifier("exec id", e)?;
    }
    Ok(())
}

impl Runtime {
    /// Where a task in a user namespace has its id-mapped rootfs ([`crate::idmapped`]).
    pub fn roots_dir(&self, ns: &str, id: &str) -> std::path::PathBuf {
        crate::idmapped::roots_dir(&self.state, ns, id)
    }

    /// The bundle of a task.
    pub fn bundle(&self, ns: &str, id: &str) -> Bundle {
        Bundle::new(&self.state, ns, id)
    }

    /// `RunTask`: the task created and started by one OCI runtime `run`. `/tasks/create`
    /// is stored before the shim is told to publish `/tasks/start` (two publishers, so
    /// order is only kept by waiting).
    pub async fn run(&self, task: TaskRef) -> Result<TaskInfo> {
        let mut info = self.create_with(task.clone(), true).await?;
        self.events.flush(EVENT_ORDER_WAIT).await;
        let bundle = self.existing(&task).await?;
        shim_client::call(&bundle.socket(), &ShimRequest::Start).await?;
        // Running, or already exited: a `GetTask` tells which.
        info.status = TaskStatus::Running;
        Ok(info)
    }

    /// `CreateTask`.
    pub async fn create(&self, task: TaskRef) -> Result<TaskInfo> {
        self.create_with(task, false).await
    }

    async fn create_with(&self, task: TaskRef, start: bool) -> Result<TaskInfo> {
        check(&task)?;
        let (ns, id) = (task.namespace.as_str(), task.id.as_str());
        let _claim = self.claims.take("task", ns, id)?;
        let container =
            self.metadata.call(GetContainer(ByName { namespace: ns.into(), name: id.into() })).await?;
        let runtime = runtime_binary(&container.runtime.name)?;
        let bundle = self.bundle(ns, id);
        if let Some(parent) = bundle.dir.parent() {
            // Bundles hold specs (env, secrets) and logs: no one else may list or read them.
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(parent)
                .map_err(|e| Error::io("tasks dir", e))?;
        }
        match std::fs::DirBuilder::new().mode(0o711).create(&bundle.dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Err(Error::already_exists(format!("task {id}: already exists")));
            }
            Err(e) => return Err(Error::io("bundle", e)),
        }
        let result = self.create_in(&bundle, &container, runtime, ns, id, start).await;
        if result.is_err() {
            let b = bundle.clone();
            let roots = self.roots_dir(ns, id);
            let _ = blocking_value("runtime worker", move || {
                let _ = mount::unmount_all(&b.rootfs());
                let _ = crate::idmapped::unmount(&roots);
                let _ = std::fs::remove_dir_all(&b.dir);
            })
            .await;
        }
        result
    }

    async fn create_in(
        &self,
        bundle: &Bundle,
        container: &berth_ipc::metadata::Container,
        runtime: &str,
        ns: &str,
        id: &str,
        start: bool,
    ) -> Result<TaskInfo> {
        let log_path = crate::log_path::of(container)?;
        let mounts = self
            .snapshot
            .call(Mounts(KeyRef {
                snapshotter: container.snapshotter.clone(),
                key: container.snapshot_key.clone(),
                namespace: ns.into(),
            }))
            .await?;
        std::fs::create_dir(bundle.rootfs()).map_err(|e| Error::io("rootfs", e))?;
        // In a user namespace the rootfs is id-mapped, elsewhere (see `idmapped`).
        let spec: Option<oci_spec::runtime::Spec> = serde_json::from_slice(&container.spec).ok();
        let userns = spec.as_ref().and_then(crate::idmapped::userns_of);
        let roots = self.roots_dir(ns, id);
        let config = match (spec, &userns) {
            (Some(mut spec), Some(_)) => {
                let mut root = spec.root().clone().unwrap_or_default();
                root.set_path(roots.join("rootfs"));
                spec.set_root(Some(root));
                serde_json::to_vec(&spec).map_err(|e| Error::internal_cause("config.json", e))?
            }
            _ => container.spec.clone(),
        };
        std::fs::write(bundle.config(), &config).map_err(|e| Error::io("config.json", e))?;
        let record = TaskRecord {
            namespace: ns.into(),
            id: id.into(),
            runtime: runtime.into(),
            snapshotter: container.snapshotter.clone(),
            snapshot_key: container.snapshot_key.clone(),
            log_path: log_path.clone(),
        };
        let json = serde_json::to_vec(&record).map_err(|e| Error::internal(e.to_string()))?;
        // The empty exit record, made durable with task.json (see `bundle::write_exit`).
        std::fs::File::create(bundle.exit()).map_err(|e| Error::io("exit.json", e))?;
        // task.json is made durable while the rootfs is mounted and the shim starts.
        let path = bundle.record();
        let recorded = tokio::task::spawn_blocking(move || crate::bundle::write_durably(&path, &json));
        let started = async {
            let (m, root) = (mounts.clone(), bundle.rootfs());
            match userns.clone() {
                Some(u) => {
                    let dir = roots.clone();
                    blocking_value("runtime worker", move || crate::idmapped::mount(&m, &dir, &u))
                        .await?
                        .map_err(|e| e.context(format!("task {id}: rootfs")))?;
                }
                None => blocking_value("runtime worker", move || mount::mount_all(&m, &root)).await??,
            }
            self.previous_runtime_state_gone(ns, id).await;
            let args = ShimArgs {
                namespace: ns.into(),
                id: id.into(),
                bundle: bundle.dir.clone(),
                runtime: runtime.into(),
                runtime_root: self.runtime_root(runtime, ns),
                state: self.state.clone(),
                logs: self.log_dir(ns, id),
                log_max_bytes: self.log_max_bytes,
                log_max_files: self.log_max_files,
                log_path,
                start,
            };
            shim_client::spawn(&args).await
        }
        .await;
        let recorded = match recorded.await {
            Ok(r) => r.map_err(|e| Error::io("task.json", e)),
            Err(e) => Err(Error::internal(e.to_string())),
        };
        let pid = match (started, recorded) {
            (Ok(pid), Ok(())) => pid,
            (Ok(_), Err(e)) => {
                let _ = shim_client::call(&bundle.socket(), &ShimRequest::Shutdown).await;
                return Err(e);
            }
            (Err(e), _) => return Err(e),
        };
        let rootfs = mounts
            .iter()
            .map(|m| EventMount {
                kind: m.kind.clone(),
                source: m.source.clone(),
                options: m.options.clone(),
            })
            .collect();
        let bundle_s = bundle.dir.display().to_string();
        self.events
            .publish(ns, TaskCreate { container_id: id.into(), bundle: bundle_s.clone(), rootfs, pid });
        Ok(TaskInfo {
            id: id.into(),
            namespace: ns.into(),
            pid,
            status: if start { TaskStatus::Running } else { TaskStatus::Created },
            exit: None,
            bundle: bundle_s,
            runtime: runtime.into(),
            shim_pid: bundle.read_shim_pid().unwrap_or(0),
        })
    }

    /// `StartTask`.
    pub async fn start(&self, task: TaskRef) -> Result<TaskInfo> {
        let bundle = self.existing(&task).await?;
        // The started pid is read back with the rest of the task's state just below.
        match shim_client::call(&bundle.socket(), &ShimRequest::Start).await? {
            ShimResponse::Pid(_) => {}
            other => return Err(Error::internal(format!("shim: unexpected answer {other:?}"))),
        }
        self.get(task).await
    }

    /// `GetTask`: asks the shim, or reads the bundle when it is gone.
    pub async fn get(&self, task: TaskRef) -> Result<TaskInfo> {
        let bundle = self.existing(&task).await?;
        let record = bundle.read_record();
        let runtime = record.map(|r| r.runtime).unwrap_or_default();
        let mut info = TaskInfo {
            id: task.id.clone(),
            namespace: task.namespace.clone(),
            pid: std::fs::read_to_string(bundle.init_pid())
                .ok()
                .and_then(|s| s.trim().parse().ok())
                .unwrap_or(0),
            status: TaskStatus::Stopped,
            exit: None,
            bundle: bundle.dir.display().to_string(),
            runtime,
            shim_pid: 0,
        };
        match shim_client::call(&bundle.socket(), &ShimRequest::State).await {
            Ok(ShimResponse::State(s)) => {
                info.pid = s.pid;
                info.status = s.status;
                info.exit = s.exit;
                info.shim_pid = s.shim_pid;
            }
            Ok(_) | Err(_) if !bundle.shim_pid().exists() => {
                // Being created (or a create that crashed before its shim started).
                info.status = TaskStatus::Unknown;
            }
            // A shim that lives but did not answer is not dead: no verdict yet.
            Ok(_) | Err(_) if self.shim_alive(&bundle).await => info.status = TaskStatus::Unknown,
            Ok(_) | Err(_) => info.exit = Some(self.dead_shim_exit(&bundle, &task.namespace, &task.id).await),
        }
        Ok(info)
    }

    /// The exit of a task whose shim is gone: the recorded one, or 255 (then recorded and
    /// published, so every later reader agrees). With no exit recorded the container may
    /// still run, unsupervised: it is killed first (the OCI runtime's `delete --force`), so
    /// a task reported stopped is stopped.
    pub(crate) async fn dead_shim_exit(&self, bundle: &Bundle, ns: &str, id: &str) -> ExitInfo {
        if let Some(exit) = bundle.read_exit() {
            return exit;
        }
        let runtime = bundle.read_record().map(|r| r.runtime).unwrap_or_default();
        self.cleanup_runtime(bundle, &runtime, ns, id).await;
        let exit = ExitInfo { status: UNKNOWN_EXIT, exited_at: now_ns(), oom_killed: false };
        if write_exit(bundle, exit).is_ok() {
            self.events.publish(
                ns,
                TaskExit {
                    container_id: id.into(),
                    id: id.into(),
                    pid: 0,
                    exit_status: exit.status,
                    exited_at: exit.exited_at,
                },
            );
        }
        exit
    }

    /// `KillTask`.
    pub async fn kill(&self, req: KillTask) -> Result<()> {
        let bundle = self.existing(&req.task).await?;
        let call = ShimRequest::Kill { exec_id: req.task.exec_id.clone(), signal: req.signal, all: req.all };
        match shim_client::call(&bundle.socket(), &call).await {
            Err(e) if e.is(Code::Unavailable) => {
                Err(Error::not_found(format!("container {}: task not running", req.task.id)))
            }
            other => other.map(|_| ()),
        }
    }

    /// `WaitTask`.
    pub async fn wait(&self, task: TaskRef) -> Result<ExitInfo> {
        let bundle = self.existing(&task).await?;
        match shim_client::call(&bundle.socket(), &ShimRequest::Wait { exec_id: task.exec_id.clone() }).await
        {
            Ok(ShimResponse::Exit(exit)) => Ok(exit),
            Ok(other) => Err(Error::internal(format!("shim: unexpected answer {other:?}"))),
            Err(e)
                if e.is(Code::Unavailable) && task.exec_id.is_none() && !self.shim_alive(&bundle).await =>
            {
                Ok(self.dead_shim_exit(&bundle, &task.namespace, &task.id).await)
            }
            Err(e) => Err(e),
        }
    }

    /// `DeleteTask`: refused while running; shim shut down, rootfs unmounted, bundle removed.
    pub async fn delete(&self, task: TaskRef) -> Result<ExitInfo> {
        let info = self.get(TaskRef { exec_id: None, ..task.clone() }).await?;
        if matches!(info.status, TaskStatus::Running | TaskStatus::Paused) {
            return Err(Error::precondition(format!("task {}: running; kill it first", task.id)));
        }
        let bundle = self.bundle(&task.namespace, &task.id);
        let exit = match shim_client::call(&bundle.socket(), &ShimRequest::Shutdown).await {
            Ok(_) => info.exit.or_else(|| bundle.read_exit()),
            Err(e) if e.is(Code::Unavailable) => {
                self.cleanup_runtime(&bundle, &info.runtime, &task.namespace, &task.id).await;
                info.exit
            }
            Err(e) => return Err(e),
        };
        let exit = exit.unwrap_or(ExitInfo { status: UNKNOWN_EXIT, exited_at: now_ns(), oom_killed: false });
        let (root, roots) = (bundle.rootfs(), self.roots_dir(&task.namespace, &task.id));
        blocking_value("runtime worker", move || {
            mount::unmount_all(&root)?;
            crate::idmapped::unmount(&roots)
        })
        .await??;
        self.discard(&bundle).await?;
        self.events.publish(
            &task.namespace,
            TaskDelete {
                container_id: task.id.clone(),
                id: task.id.clone(),
                pid: info.pid,
                exit_status: exit.status,
                exited_at: exit.exited_at,
            },
        );
        Ok(exit)
    }

    /// Waits until no OCI runtime keeps state of an earlier container with this id: a
    /// deleted task's shim finishes the runtime's `delete` after the delete was answered,
    /// and a new container must not be created (same runtime state dir, same cgroup) while
    /// that runs. After 3 s, or for a shim that died meanwhile, the state is deleted here.
    pub(crate) async fn previous_runtime_state_gone(&self, ns: &str, id: &str) {
        if crate::oci_runtime::stale(self.oci.as_ref(), ns, id).is_empty() {
            return;
        }
        let (oci, ns, id) = (self.oci.clone(), ns.to_string(), id.to_string());
        let patience = std::time::Duration::from_secs(3);
        let _ = blocking_value("runtime worker", move || {
            crate::oci_runtime::wait_state_gone(oci.as_ref(), &ns, &id, patience)
        })
        .await;
    }

    /// [`shim_alive`], off the async workers.
    pub(crate) async fn shim_alive(&self, bundle: &Bundle) -> bool {
        let b = bundle.clone();
        blocking_value("runtime worker", move || shim_alive(&b)).await.unwrap_or(false)
    }

    /// `<runtime> delete --force ID`, output discarded.
    async fn force_delete(&self, bin: &'static str, ns: &str, id: &str) {
        let (oci, ns, id) = (self.oci.clone(), ns.to_string(), id.to_string());
        let _ = blocking_value("runtime worker", move || oci.force_delete(bin, &ns, &id)).await;
    }

    /// Removes a deleted task's bundle: renamed into `tasks/.trash` at once (the id is free
    /// again when this returns), removed from there in the background. What a crash leaves
    /// in the trash is removed when the service starts.
    async fn discard(&self, bundle: &Bundle) -> Result<()> {
        if bundle.shim_dir_outside() {
            let dir = bundle.shim_dir();
            let _ = blocking_value("runtime worker", move || std::fs::remove_dir_all(dir)).await;
        }
        let trash = self.state.join("tasks/.trash");
        let name = bundle.dir.iter().rev().take(2).map(|p| p.to_string_lossy()).collect::<Vec<_>>().join(".");
        let target = trash.join(format!("{name}.{}", now_ns()));
        let moved = std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&trash)
            .and_then(|()| std::fs::rename(&bundle.dir, &target));
        match moved {
            Ok(()) => {
                tokio::task::spawn_blocking(move || std::fs::remove_dir_all(target));
                Ok(())
            }
            Err(_) => {
                let dir = bundle.dir.clone();
                blocking_value("runtime worker", move || std::fs::remove_dir_all(dir))
                    .await?
                    .map_err(|e| Error::io("bundle", e))
            }
        }
    }

    /// Removes what the OCI runtime keeps of a container whose shim is gone.
    /// A shim of this bundle that still runs is unreachable here (its socket is gone or it
    /// never answered): it is killed first, or it would be orphaned for good (found by the
    /// fault campaign: a shim still starting when its runtime died lost its socket at
    /// adoption and outlived its container).
    pub(crate) async fn cleanup_runtime(&self, bundle: &Bundle, runtime: &str, ns: &str, id: &str) {
        let b = bundle.clone();
        let _ = blocking_value("runtime worker", move || kill_shims_of(&b)).await;
        let Ok(bin) = runtime_binary(runtime) else { return };
        self.force_delete(bin, ns, id).await;
        let _ = std::fs::remove_file(bundle.socket());
    }

    /// `ListTasks`: every bundle of the namespace.
    pub async fn list(&self, ns: &str) -> Result<Vec<TaskInfo>> {
        validate_namespace(ns)?;
        let dir = self.state.join("tasks").join(ns);
        let mut ids: Vec<String> = match std::fs::read_dir(&dir) {
            Ok(rd) => rd.filter_map(|e| e.ok()?.file_name().into_string().ok()).collect(),
            Err(_) => Vec::new(),
        };
        ids.sort();
        // Concurrently: one slow shim costs its own deadline, not everyone's.
        let gets = ids.iter().map(|id| self.get(TaskRef::init(ns, id)));
        Ok(futures_util::future::join_all(gets).await.into_iter().filter_map(|r| r.ok()).collect())
    }
}
