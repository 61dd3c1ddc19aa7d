//! The runtime service: containers made from images and tasks run through a real OCI
//! runtime (runc by default, crun selectable), one detached `berth-shim` per task.
//!
//! The service keeps no state of its own in memory: each task is its bundle directory
//! (`<state>/tasks/<ns>/<id>`) and its shim. A restarted service therefore re-adopts every
//! task by reading the bundles ([`adopt`]); a task whose shim is gone reports the exit the
//! shim recorded, or 255, and what the OCI runtime kept of it is cleaned up.
//!
//! # A task's life, and what is left to the background
//! `CreateTask` + `StartTask` run the OCI runtime's `create` then `start`; `RunTask` (what
//! `berth run` sends) runs its `run --detach`, one process instead of two, and the shim
//! publishes `/tasks/start` when told (after `/tasks/create` is stored). At the init's exit
//! the shim records it durably and begins the runtime's `delete` at once (nice 10);
//! `DeleteTask` is answered without waiting for that delete to end, and a create of the same
//! id waits until the runtime's state of the old one is gone. Deleted bundles are renamed into
//! `tasks/.trash` and removed in the background. Containers' cgroups live under
//! `[runtime] cgroup_parent` (per berth instance by default).
//!
//! # Layout
//! - [`spec`] — the OCI spec of a container from its image config and options.
//! - [`image`] — an image's config and top chainID, read from content.
//! - [`containers`] — create (snapshot + spec + record) and remove containers.
//! - [`removals`] — what a container removal finishes in the background (logs, snapshot).
//! - [`task_lookup`] — finding a task; "container X has no task" and its kin.
//! - [`tasks`] — task lifecycle: create, start, kill, wait, state, delete, list.
//! - [`procs`] — exec, ps, pause, resume, metrics, attach.
//! - [`update`] — `UpdateResources`: a container's cgroup limits changed in place.
//! - [`sandbox`] — pod sandboxes: namespaces held without an image, `/dev/shm`, DNS files.
//! - [`network`] — sandboxes' CNI networks: attach, detach, reconcile.
//! - [`networks`] — the conf dir's networks listed, created and removed (`berth network`).
//! - [`owned`] — a container's own sandbox (`berth run --network`), made and removed with it.
//! - [`pin`] — `berth-sandbox`: the helper that holds a sandbox's namespaces.
//! - [`rm_on_exit`] — containers removed when their task exits (`run --rm -d`).
//! - [`cgroups`] — empty cgroup parents removed when the last container under them goes.
//! - [`guard`] — `Guard`: a task owned by its client (`run --rm`), removed if the client vanishes.
//! - [`logfile`] — containers' output logs under `<root>/logs`: format, cap, rotation.
//! - [`log_path`] — an init's log at a caller-chosen path (CRI), and `ReopenLog`.
//! - [`logread`] — reading a log old to new across rotations.
//! - [`logs`] — `Logs`: kept output after the fact.
//! - [`bundle`] — a task's bundle directory and its durable exit record.
//! - [`idmapped`] — a user-namespaced container's rootfs through id-mapped mounts.
//! - [`mount`] — mounting a snapshot's mounts on the bundle's rootfs.
//! - [`oci_runtime`] — the OCI runtimes: binaries, state roots, the command, `delete --force`,
//!   behind the [`oci_runtime::OciRuntime`] trait.
//! - [`claim`] — ids being created by this service.
//! - [`adopt`] — re-adopting the tasks of a previous service process at start.
//! - [`shim`] — `berth-shim`: daemon, reaper, OCI runtime calls, private socket.
//! - [`shim_client`] — spawning, calling, finding and killing shims.
//! - `lib.rs` — [`Runtime`], the request handler, [`run`].

pub mod adopt;
pub mod bundle;
pub mod cgroups;
pub mod claim;
pub mod containers;
pub mod guard;
pub mod idmapped;
pub mod image;
pub mod log_path;
pub mod logfile;
pub mod logread;
pub mod logs;
pub mod mount;
pub mod network;
pub mod networks;
pub mod oci_runtime;
pub mod owned;
pub mod pin;
pub mod procs;
pub mod removals;
pub mod rm_on_exit;
pub mod sandbox;
pub mod shim;
pub mod shim_client;
pub mod spec;
pub mod task_lookup;
pub mod tasks;
pub mod update;

use std::path::PathBuf;
use std::sync::Arc;

pub use adopt::adopt;
use berth_ipc::content::proxy::ContentClient;
use berth_ipc::metadata::Metadata;
use berth_ipc::publisher::Publisher;
use berth_ipc::runtime::{Runtime as RuntimeProtocol, RuntimeRequest, RuntimeResponse, ShimRequest, TaskRef};
use berth_ipc::snapshot::Snapshot;
use berth_ipc::{Client, Context, Handler, Reply};
use berth_service_kit::ServiceEnv;
use tokio::net::UnixListener;
use tokio_util::sync::CancellationToken;

/// The runtime service: clients of the services it uses and the state dir.
#[derive(Clone)]
pub struct Runtime {
    /// berth's state dir (bundles under `tasks/`, OCI runtime roots under `oci/`).
    pub state: PathBuf,
    /// The metadata service.
    pub metadata: Client<Metadata>,
    /// The snapshot service.
    pub snapshot: Client<Snapshot>,
    /// The content service.
    pub content: ContentClient,
    /// Events.
    pub events: Publisher,
    /// Containers' cgroups go under `<cgroup_parent>/<namespace>/<id>`.
    pub cgroup_parent: String,
    /// Whether `cgroup_parent` is berth's own (the default, per instance) rather than one
    /// the configuration names: only then is it removed once empty.
    pub cgroup_parent_owned: bool,
    /// berth's root dir (containers' output logs under `logs/`).
    pub root: PathBuf,
    /// `[runtime] log_max_bytes`.
    pub log_max_bytes: u64,
    /// `[runtime] log_max_files`.
    pub log_max_files: u32,
    /// Cancelled when the service shuts down (a guard's call ending then is not its client
    /// going away).
    pub shutdown: CancellationToken,
    /// Ids being created by this service ([`claim`]).
    pub claims: Arc<claim::Claims>,
    /// Container removals finishing in the background ([`removals`]).
    pub removals: Arc<removals::Removals>,
    /// Containers with an rm-on-exit watcher running ([`rm_on_exit`]).
    pub rm_on_exit: Arc<rm_on_exit::Watched>,
    /// The OCI runtimes, as the service itself uses them ([`oci_runtime`]).
    pub oci: Arc<dyn oci_runtime::OciRuntime>,
    /// The CNI driver sandboxes' networks go through ([`network`]).
    pub cni: Arc<berth_cni::Cni>,
    /// `[network]`: the default network, written when first asked for.
    pub network: Arc<berth_service_kit::config::NetworkConfig>,
}

impl Runtime {
    /// A runtime service for `env` (must be called inside tokio). Errors: a bad
    /// `[runtime] cgroup_parent`.
    pub fn new(env: &ServiceEnv) -> anyhow::Result<Runtime> {
        let state = env.config.state.clone();
        let options = env.client_options();
        let cgroup_parent =
            env.config.runtime.cgroup_parent(&state).map_err(|e| anyhow::anyhow!("config: {e}"))?;
        env.config.runtime.check_logs().map_err(|e| anyhow::anyhow!("config: {e}"))?;
        Ok(Runtime {
            metadata: Client::in_state_dir(&state, options.clone()),
            snapshot: Client::in_state_dir(&state, options.clone()),
            content: ContentClient::new(Client::in_state_dir(&state, options)),
            events: Publisher::in_state_dir(&state, "runtime"),
            oci: Arc::new(oci_runtime::Binaries { state: state.clone() }),
            cni: Arc::new(env.config.network.driver(&env.config.root)),
            network: Arc::new(env.config.network.clone()),
            claims: Arc::default(),
            rm_on_exit: Arc::default(),
            removals: Arc::default(),
            state,
            cgroup_parent,
            cgroup_parent_owned: env.config.runtime.cgroup_parent.is_empty(),
            root: env.config.root.clone(),
            log_max_bytes: env.config.runtime.log_max_bytes,
            log_max_files: env.config.runtime.log_max_files,
            shutdown: CancellationToken::new(),
        })
    }

    /// The OCI runtime's state root for `runtime` in `ns`.
    pub fn runtime_root(&self, runtime: &str, ns: &str) -> PathBuf {
        oci_runtime::runtime_root(&self.state, runtime, ns)
    }

    /// The output log dir of container `id` in `namespace`.
    pub fn log_dir(&self, namespace: &str, id: &str) -> PathBuf {
        logfile::container_dir(&self.root, namespace, id)
    }

    /// The cgroup of container `id` in `namespace`.
    pub fn cgroup_path(&self, namespace: &str, id: &str) -> String {
        format!("{}/{namespace}/{id}", self.cgroup_parent)
    }
}

impl Handler<RuntimeProtocol> for Runtime {
    async fn handle(&self, req: RuntimeRequest, ctx: Context) -> Reply<RuntimeResponse> {
        use RuntimeRequest as Q;
        use RuntimeResponse as A;
        match req {
            Q::CreateContainer(r) => self.create_container(r).await.map(A::CreateContainer).into(),
            Q::RemoveContainer(r) => self.remove_container(r).await.map(A::RemoveContainer).into(),
            Q::CreateTask(r) => self.create(r.0).await.map(A::CreateTask).into(),
            Q::StartTask(r) => {
                let started = self.start(r.0.clone()).await;
                if started.is_ok() {
                    self.watch_rm_on_exit(&r.0);
                }
                started.map(A::StartTask).into()
            }
            Q::RunTask(r) => {
                let started = self.run(r.0.clone()).await;
                if started.is_ok() {
                    self.watch_rm_on_exit(&r.0);
                }
                started.map(A::RunTask).into()
            }
            Q::KillTask(r) => self.kill(r).await.map(A::KillTask).into(),
            Q::DeleteTask(r) => self.delete(r.0).await.map(A::DeleteTask).into(),
            Q::GetTask(r) => self.get(r.0).await.map(A::GetTask).into(),
            Q::ListTasks(r) => self.list(&r.namespace).await.map(A::ListTasks).into(),
            Q::WaitTask(r) => self.wait(r.0).await.map(A::WaitTask).into(),
            Q::Exec(r) => self.exec(r).await.map(A::Exec).into(),
            Q::Ps(r) => self.ps(r.0).await.map(A::Ps).into(),
            Q::Pause(r) => self.freeze(r.0, false).await.map(A::Pause).into(),
            Q::Resume(r) => self.freeze(r.0, true).await.map(A::Resume).into(),
            Q::GetMetrics(r) => self.metrics(r.0).await.map(A::GetMetrics).into(),
            Q::WriteStdin(r) => {
                let req = ShimRequest::Stdin { exec_id: r.task.exec_id.clone(), data: r.data };
                self.input(r.task, req).await.map(A::WriteStdin).into()
            }
            Q::CloseStdin(r) => {
                let req = ShimRequest::CloseStdin { exec_id: r.0.exec_id.clone() };
                self.input(r.0, req).await.map(A::CloseStdin).into()
            }
            Q::ResizePty(r) => {
                let req = ShimRequest::Resize { exec_id: r.task.exec_id.clone(), cols: r.cols, rows: r.rows };
                self.input(r.task, req).await.map(A::ResizePty).into()
            }
            Q::Logs(r) => {
                let (tx, reply) = Reply::stream(16);
                let rt = self.clone();
                tokio::spawn(async move { rt.logs(r, tx).await });
                reply
            }
            Q::Attach(r) => {
                let (tx, reply) = Reply::stream(16);
                let rt = self.clone();
                let task: TaskRef = r.0;
                tokio::spawn(async move { rt.attach(task, tx).await });
                reply
            }
            Q::Guard(r) => {
                let (tx, reply) = Reply::stream(1);
                let rt = self.clone();
                tokio::spawn(async move { rt.guard(r.0, ctx.cancel, tx).await });
                reply
            }
            Q::CreateSandbox(r) => self.create_sandbox(r).await.map(A::CreateSandbox).into(),
            Q::StopSandbox(r) => self.stop_sandbox(r.0).await.map(A::StopSandbox).into(),
            Q::RemoveSandbox(r) => self.remove_sandbox(r.0).await.map(A::RemoveSandbox).into(),
            Q::GetSandbox(r) => self.get_sandbox(r.0).await.map(A::GetSandbox).into(),
            Q::ListSandboxes(r) => self.list_sandboxes(&r.namespace).await.map(A::ListSandboxes).into(),
            Q::ReopenLog(r) => self.reopen_log(r.0).await.map(A::ReopenLog).into(),
            Q::UpdateResources(r) => self.update_resources(r).await.map(A::UpdateResources).into(),
            Q::ListNetworks(_) => self.list_networks().await.map(A::ListNetworks).into(),
            Q::GetNetwork(r) => self.get_network(r.0).await.map(A::GetNetwork).into(),
            Q::CreateNetwork(r) => self.create_network(r).await.map(A::CreateNetwork).into(),
            Q::RemoveNetwork(r) => self.remove_network(r.0).await.map(A::RemoveNetwork).into(),
        }
    }
}

/// Runs the runtime service on `listener` until `shutdown` is cancelled. Shims and
/// containers are left running.
pub async fn run(env: ServiceEnv, listener: UnixListener, shutdown: CancellationToken) -> anyhow::Result<()> {
    let started = std::time::SystemTime::now();
    let mut rt = Runtime::new(&env)?;
    rt.shutdown = shutdown.clone();
    let (live, dead) = adopt(&rt).await;
    tracing::info!(live, dead, "tasks adopted");
    // In the background: the metadata service may itself be (re)starting.
    let rt2 = rt.clone();
    tokio::spawn(async move {
        if let Err(e) = rt2.adopt_rm_on_exit().await {
            tracing::warn!(error = %e, "rm-on-exit containers not adopted");
        }
        // Networks first: a sandbox cut off between its attach and its record still has
        // its network namespace mounted, so its DEL sees the interfaces it removes.
        rt2.reconcile_networks(started).await;
        rt2.reconcile_sandboxes().await;
        rt2.reconcile_owned_sandboxes().await;
        rt2.reconcile_logs().await;
    });
    berth_service_kit::serve::<RuntimeProtocol, _>(&env, rt, listener, shutdown).await
}
