//! The `runtime` service's wire vocabulary: containers made from images, tasks (a
//! container's running init process and its exec'd processes), and the private protocol
//! between the runtime service and each `berth-shim`.
//!
//! A container is created from an image with [`RunOptions`]: the service prepares its
//! snapshot, generates its OCI spec and records it in metadata. A task is created from a
//! container (bundle under `<state>/tasks/<ns>/<id>`, one shim), started, and deleted once it
//! has exited (or with a kill first). Exit statuses are 128 + signal for a signalled process,
//! and 255 when a shim vanished without recording one. Events: `/tasks/create`,
//! `/tasks/start`, `/tasks/exit`, `/tasks/delete`, `/tasks/paused`, `/tasks/resumed`,
//! `/tasks/exec-added`, `/tasks/exec-started`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use crate::idmap::{IdMapping, IdMappings};
use crate::metadata::Container;

/// A bind mount asked for with `--mount type=bind,src=…,dst=…[,ro]` (or by a CRI mount).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BindMount {
    /// Host path.
    pub source: String,
    /// Path inside the container.
    pub destination: String,
    /// Mounted read-only.
    pub read_only: bool,
    /// How mounts under it propagate between host and container.
    pub propagation: Propagation,
    /// With `read_only`, every mount under it read-only too (`rro`, Linux 5.12+).
    pub recursive_read_only: bool,
}

/// Mount propagation of a bind mount (Kubernetes' `MountPropagation`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Propagation {
    /// Nothing propagates (`rprivate`).
    #[default]
    Private,
    /// Host mounts appear in the container (`rslave`).
    HostToContainer,
    /// Both ways (`rshared`).
    Bidirectional,
}

/// How a container holds one kind of namespace (Kubernetes' `NamespaceMode`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum NamespaceMode {
    /// The sandbox's (or, outside a sandbox, the container's own).
    #[default]
    Pod,
    /// The container's own.
    Container,
    /// The host's.
    Node,
    /// Another container's (pid only): its id.
    Target(String),
}

/// A device node made in the container (`--device`, CRI `Device`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Device {
    /// Host path of the device node.
    pub host_path: String,
    /// Path inside the container.
    pub container_path: String,
    /// cgroup permissions: a subset of `rwm`.
    pub permissions: String,
}

/// Linux settings of a container beyond [`RunOptions`]' basics: what a Kubernetes
/// `LinuxContainerConfig` asks for. Defaults leave berth's (Docker's) defaults in place.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinuxOptions {
    /// Every capability, every device of the host, no masked or read-only paths, no seccomp.
    pub privileged: bool,
    /// Capabilities added to the default set (`CAP_` prefix optional; `ALL`).
    pub cap_add: Vec<String>,
    /// Capabilities dropped from it (`ALL` drops every one before `cap_add` applies).
    pub cap_drop: Vec<String>,
    /// Groups added to the user's.
    pub supplemental_groups: Vec<u32>,
    /// Only the user's primary group and `supplemental_groups`, not the image's
    /// `/etc/group` memberships (Kubernetes' `SupplementalGroupsPolicy: Strict`).
    pub strict_groups: bool,
    /// Replaces the default masked paths.
    pub masked_paths: Option<Vec<String>>,
    /// Replaces the default read-only paths.
    pub readonly_paths: Option<Vec<String>>,
    /// The pid namespace (`Pod` in a sandbox follows the sandbox's pid mode).
    pub pid: NamespaceMode,
    /// The ipc namespace.
    pub ipc: NamespaceMode,
    /// The network namespace.
    pub network: NamespaceMode,
    /// Devices.
    pub devices: Vec<Device>,
    /// OOM score adjustment (clamped to what the runtime may set).
    pub oom_score_adj: Option<i32>,
    /// CPU shares (cgroup v1 units; converted to weight on v2).
    pub cpu_shares: Option<u64>,
    /// CPU period, µs.
    pub cpu_period: Option<u64>,
    /// CPU quota, µs per period.
    pub cpu_quota: Option<i64>,
    /// CPUs allowed (`0-2,4`).
    pub cpuset_cpus: Option<String>,
    /// Memory nodes allowed.
    pub cpuset_mems: Option<String>,
    /// cgroup v2 unified settings, file name to value.
    pub unified: BTreeMap<String, String>,
    /// Spec annotations.
    pub annotations: BTreeMap<String, String>,
    /// The user namespace's maps when the container runs in its sandbox's user namespace
    /// (Kubernetes' `hostUsers: false`); they must be the sandbox's. `None`: the host's.
    #[serde(default)]
    pub user_ns: Option<IdMappings>,
}

/// DNS settings of a sandbox's `resolv.conf`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DnsConfig {
    /// `nameserver` lines.
    pub servers: Vec<String>,
    /// `search` domains.
    pub searches: Vec<String>,
    /// `options`.
    pub options: Vec<String>,
}

/// The pid namespace of a sandbox's containers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum PidMode {
    /// Each container its own.
    #[default]
    Container,
    /// One for the pod, held by a holder process that is its pid 1.
    Pod,
    /// The host's.
    Node,
}

/// What a pod sandbox holds for its containers. Namespaces are held without any image:
/// bind-mounted namespace files under the sandbox's state dir (a holder process only for a
/// shared pid namespace, which needs a live pid 1).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SandboxSpec {
    /// Hostname in the pod's UTS namespace (default: the sandbox id, cut to 63 bytes).
    pub hostname: Option<String>,
    /// `resolv.conf` for the pod; `None` copies the host's.
    pub dns: Option<DnsConfig>,
    /// Extra `/etc/hosts` lines: an address and its names.
    pub hosts: Vec<(String, Vec<String>)>,
    /// Sysctls set in the pod's namespaces (`net.*` in its network namespace, `kernel.shm*`,
    /// `kernel.msg*`, `kernel.sem`, `fs.mqueue.*` in its IPC namespace).
    pub sysctls: BTreeMap<String, String>,
    /// The cgroup the pod's containers go under (cgroupfs path like `/kubepods/pod<uid>`;
    /// default: berth's per-namespace cgroup).
    pub cgroup_parent: Option<String>,
    /// The host's network namespace.
    pub net_host: bool,
    /// The host's IPC namespace (and `/dev/shm`).
    pub ipc_host: bool,
    /// The pid namespace mode.
    pub pid: PidMode,
    /// Size of the pod's `/dev/shm` tmpfs, bytes (default 64 MiB).
    pub shm_size: Option<u64>,
    /// The CNI network its network namespace is attached to (a name in the conf dir);
    /// `None`: loopback only. Ignored with `net_host`.
    #[serde(default)]
    pub network: Option<String>,
    /// Host ports forwarded to it (the `portmap` plugin's `portMappings`).
    #[serde(default)]
    pub ports: Vec<PortMapping>,
    /// `CNI_ARGS` for the network's plugins (the kubelet's `K8S_POD_NAME`, …).
    #[serde(default)]
    pub cni_args: Vec<(String, String)>,
    /// A user namespace of the pod's own with these maps (Kubernetes' `hostUsers: false`):
    /// made first, and the network, IPC, UTS and pid namespaces made inside it. `None`: the
    /// host's user namespace.
    #[serde(default)]
    pub user_ns: Option<IdMappings>,
    /// Its `CNI_CONTAINERID` (`[A-Za-z0-9_.-]`, at most 128 bytes); `None`: `<ns>-<id>`. The
    /// runtime service gives a container's own sandbox `<ns>-<id>-<8 hex digits>`, new at each
    /// create, so that an id used again never meets what a lost attachment of an earlier one
    /// left (the bridge plugin cannot remove its NAT chain without the network namespace).
    #[serde(default)]
    pub cni_id: Option<String>,
}

/// A host port forwarded into a sandbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortMapping {
    /// Host address to listen on (empty: every address).
    pub host_ip: String,
    /// Host port.
    pub host_port: u16,
    /// Port in the sandbox.
    pub container_port: u16,
    /// `tcp`, `udp` or `sctp`.
    pub protocol: String,
}

/// What a user may change from the image's defaults.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RunOptions {
    /// Replaces the image's `Cmd` (and, with no entrypoint override, keeps its entrypoint).
    pub args: Option<Vec<String>>,
    /// Replaces the image's `Entrypoint`.
    pub entrypoint: Option<Vec<String>>,
    /// `K=V` added after the image's environment (a later key wins).
    pub env: Vec<String>,
    /// Working directory inside the container (absolute).
    pub cwd: Option<String>,
    /// `uid`, `uid:gid`, `name`, `name:group`: names are looked up in the image.
    pub user: Option<String>,
    /// Hostname (default: the container id).
    pub hostname: Option<String>,
    /// Memory limit in bytes.
    pub memory: Option<u64>,
    /// CPU limit in thousandths of a CPU.
    pub cpus_milli: Option<u64>,
    /// Maximum number of processes.
    pub pids_limit: Option<u64>,
    /// Read-only root filesystem.
    pub read_only: bool,
    /// Share the host's network namespace.
    pub net_host: bool,
    /// Extra bind mounts.
    pub mounts: Vec<BindMount>,
    /// Give the init process a terminal.
    pub terminal: bool,
    /// Keep the init process's stdin open: a pipe fed by `WriteStdin` and ended by
    /// `CloseStdin` (ignored with `terminal`, whose terminal is the stdin).
    pub stdin: bool,
    /// The seccomp filter: `None` for berth's default profile (Docker's semantics),
    /// `Some("unconfined")` for none, or an OCI/Docker-format JSON profile's text.
    pub seccomp: Option<String>,
    /// Set `no_new_privileges` (always set for a process that runs as a non-root user).
    pub no_new_privileges: bool,
    /// The pod sandbox the container belongs to: it joins the sandbox's namespaces, gets its
    /// `/dev/shm`, `resolv.conf`, `hosts` and `hostname`, and its cgroup goes under the
    /// sandbox's cgroup parent.
    pub sandbox: Option<String>,
    /// Linux settings beyond these.
    pub linux: LinuxOptions,
    /// Where the init process's output goes: an absolute host path (the CRI's
    /// `LogDirectory`/`LogPath` joined), written by the shim in the CRI log format, created
    /// with its parent dirs if missing (0755 dirs, a 0640 file). Not rotated by berth: the
    /// caller renames the file and sends [`ReopenLog`]. `None`: berth's own log under
    /// `<root>/logs/`, capped and rotated. Exec output stays under `<root>/logs/` either way.
    pub log_path: Option<String>,
    /// A sandbox made for this container alone (`berth run --network`, `-p`, `--dns`,
    /// `--add-host`): created with the container, under the container's id, labelled
    /// [`LABEL_SANDBOX_OWNER`]` = <id>`, joined as [`RunOptions::sandbox`] is, and removed with
    /// the container. Excludes `sandbox`.
    #[serde(default)]
    pub own_sandbox: Option<SandboxSpec>,
}

/// Container label (value `true`) asking the runtime service to remove the container, its
/// task, snapshot and logs when its task exits (`berth run --rm -d`). The one label under
/// `berth.io/` a client may set; it survives restarts of the runtime service.
pub const LABEL_RM_ON_EXIT: &str = "berth.io/rm-on-exit";

/// Container label naming the pod sandbox a container belongs to (set by the runtime service
/// from [`RunOptions::sandbox`]).
pub const LABEL_SANDBOX: &str = "berth.io/sandbox";

/// Sandbox label naming the container a sandbox was made for ([`RunOptions::own_sandbox`]):
/// the sandbox goes when that container is removed (and, at the runtime service's start, when
/// that container no longer exists).
pub const LABEL_SANDBOX_OWNER: &str = "berth.io/sandbox-owner";

/// `CreateContainer`: snapshot + spec + metadata record. `AlreadyExists` for a taken id,
/// `NotFound` for an unknown image, `InvalidArgument` for bad options (user, cwd, mounts).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CreateContainer {
    /// The namespace.
    pub namespace: String,
    /// The container id.
    pub id: String,
    /// The image name.
    pub image: String,
    /// `runc` (default when empty) or `crun`.
    pub runtime: String,
    /// Options.
    pub options: RunOptions,
    /// Labels of the container record.
    pub labels: BTreeMap<String, String>,
    /// Extensions of the container record (kept exactly; the CRI service's container config).
    pub extensions: BTreeMap<String, Vec<u8>>,
}

/// `CreateSandbox`: namespaces held, files written, record made. `AlreadyExists` for a taken
/// id; a failure part-way leaves nothing behind.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CreateSandbox {
    /// The namespace.
    pub namespace: String,
    /// The sandbox id.
    pub id: String,
    /// `runc` (default when empty) or `crun`: the runtime of its containers.
    pub runtime: String,
    /// What it holds.
    pub spec: SandboxSpec,
    /// Labels of the record.
    pub labels: BTreeMap<String, String>,
    /// Extensions of the record (kept exactly; the CRI service's pod config).
    pub extensions: BTreeMap<String, Vec<u8>>,
}

/// A sandbox by id.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SandboxRef {
    /// The namespace.
    pub namespace: String,
    /// The sandbox id.
    pub id: String,
}

/// `StopSandbox`: every container task in it killed (SIGKILL) and waited for (the stopped
/// tasks stay, with their exits, until their containers are removed), its namespaces and
/// `/dev/shm` released; the record stays (`NotReady`). Idempotent.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StopSandbox(pub SandboxRef);
/// `RemoveSandbox`: stopped first if need be, its containers removed, its files and record
/// deleted. `NotFound` when there is no such sandbox.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RemoveSandbox(pub SandboxRef);
/// `GetSandbox`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GetSandbox(pub SandboxRef);
/// `ListSandboxes` of a namespace.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ListSandboxes {
    /// The namespace.
    pub namespace: String,
}

/// Whether a sandbox holds its namespaces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SandboxState {
    /// Namespaces held: containers can be created in it.
    Ready,
    /// Stopped (or its namespaces were lost, as after a reboot).
    NotReady,
}

/// A sandbox as the runtime service sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SandboxInfo {
    /// The sandbox id.
    pub id: String,
    /// The namespace.
    pub namespace: String,
    /// Ready or not.
    pub state: SandboxState,
    /// The runtime of its containers.
    pub runtime: String,
    /// What it holds.
    pub spec: SandboxSpec,
    /// Record labels.
    pub labels: BTreeMap<String, String>,
    /// Record extensions.
    pub extensions: BTreeMap<String, Vec<u8>>,
    /// When it was created (Unix nanoseconds).
    pub created: u64,
    /// Path of its network namespace file (`None` with the host's network, or not ready).
    pub netns: Option<String>,
    /// Pid of its holder process (shared pid namespace only; 0 otherwise).
    pub holder_pid: u32,
    /// Its state directory (`resolv.conf`, `hosts`, `hostname`, `shm`).
    pub dir: String,
    /// Its addresses on its CNI network (the first is the pod IP); empty without one.
    pub ips: Vec<String>,
}

/// `RemoveContainer`: record and snapshot. `FailedPrecondition` while it has a task, unless
/// `force` (which kills and deletes the task first).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RemoveContainer {
    /// The namespace.
    pub namespace: String,
    /// The container id.
    pub id: String,
    /// Kill and delete a task first.
    pub force: bool,
}

/// A task (or one of its processes) by container id.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TaskRef {
    /// The namespace.
    pub namespace: String,
    /// The container id.
    pub id: String,
    /// An exec'd process; `None` is the init process.
    pub exec_id: Option<String>,
}

impl TaskRef {
    /// The init process of `id` in `namespace`.
    pub fn init(namespace: &str, id: &str) -> TaskRef {
        TaskRef { namespace: namespace.to_string(), id: id.to_string(), exec_id: None }
    }
}

/// A task's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TaskStatus {
    /// Created, not started.
    Created,
    /// Running.
    Running,
    /// Frozen.
    Paused,
    /// Exited.
    Stopped,
    /// Its shim does not answer.
    Unknown,
}

impl TaskStatus {
    /// Lowercase name, as the CLI prints it.
    pub fn as_str(self) -> &'static str {
        match self {
            TaskStatus::Created => "created",
            TaskStatus::Running => "running",
            TaskStatus::Paused => "paused",
            TaskStatus::Stopped => "stopped",
            TaskStatus::Unknown => "unknown",
        }
    }
}

/// How a process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExitInfo {
    /// Exit status (128 + signal when signalled; 255 when unknown).
    pub status: u32,
    /// Unix nanoseconds.
    pub exited_at: u64,
    /// The kernel's OOM killer killed a process of the container during its life (the
    /// init's exit only; `reason: OOMKilled` in CRI terms). Last field (protocol 1, this
    /// release); absent in a shim's older JSON (false).
    #[serde(default)]
    pub oom_killed: bool,
}

/// A task as the runtime service sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskInfo {
    /// Container id.
    pub id: String,
    /// Namespace.
    pub namespace: String,
    /// Init pid (0 before create finished).
    pub pid: u32,
    /// State.
    pub status: TaskStatus,
    /// Exit, once stopped.
    pub exit: Option<ExitInfo>,
    /// The bundle directory.
    pub bundle: String,
    /// The OCI runtime (`runc`, `crun`).
    pub runtime: String,
    /// The shim's pid (0 when it is gone).
    pub shim_pid: u32,
}

/// `CreateTask`: bundle, rootfs mount, shim, runtime `create`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CreateTask(pub TaskRef);
/// `StartTask`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StartTask(pub TaskRef);
/// `RunTask`: create and start; events `/tasks/create` then `/tasks/start`, as for the two.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunTask(pub TaskRef);
/// `DeleteTask`: only once stopped (or created); unmounts and removes the bundle.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeleteTask(pub TaskRef);
/// `GetTask`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GetTask(pub TaskRef);
/// `WaitTask`: answers when the process has exited.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WaitTask(pub TaskRef);
/// `Ps`: pids in the container.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Ps(pub TaskRef);
/// `Pause`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Pause(pub TaskRef);
/// `Resume`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Resume(pub TaskRef);
/// `GetMetrics`: cgroup figures.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GetMetrics(pub TaskRef);
/// `Attach`: the process's output so far, then live, until it has exited.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Attach(pub TaskRef);
/// `Guard`: held open by the client that owns a task's life (a foreground `berth run --rm`).
/// Answers the init's exit once it is known, then ends. If the caller goes away first (its
/// connection drops or it cancels the call) while the task still runs, the runtime service
/// kills the task (SIGKILL to every process), deletes it and removes the container, as the
/// client would have. A service shutting down ends the stream (`Unavailable`) and does
/// nothing to the task; the client opens a new guard.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Guard(pub TaskRef);
/// `ReopenLog`: the init's log file closed and opened again at its path (created if it was
/// renamed away), so that output written after the answer goes to the file now there and
/// none is lost or written twice (the CRI's `ReopenContainerLog`). `FailedPrecondition`
/// "container X is not running" when the task is not running (or paused); `InvalidArgument`
/// for an exec (its log is berth's own).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReopenLog(pub TaskRef);

/// New cgroup limits of a container (`UpdateResources`, the CRI's
/// `UpdateContainerResources`): each field set replaces that limit in the container's spec
/// and, while its task runs, in the task's cgroup; fields left unset keep their value.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceUpdate {
    /// Memory limit, bytes (swap limited to the same).
    pub memory: Option<u64>,
    /// CPU limit in thousandths of a CPU (a 100 ms period).
    pub cpus_milli: Option<u64>,
    /// Process count limit.
    pub pids_limit: Option<u64>,
    /// CPU shares (cgroup v1 units).
    pub cpu_shares: Option<u64>,
    /// CPU period, µs.
    pub cpu_period: Option<u64>,
    /// CPU quota, µs per period (-1: none).
    pub cpu_quota: Option<i64>,
    /// CPUs allowed (`0-2,4`).
    pub cpuset_cpus: Option<String>,
    /// Memory nodes allowed.
    pub cpuset_mems: Option<String>,
    /// cgroup v2 files, name to value, merged over the spec's.
    pub unified: BTreeMap<String, String>,
}

/// `UpdateResources` of container `id`: its spec's limits changed, and those of its running
/// (or paused, or created) task through the OCI runtime's `update`. Answers once both hold
/// the new limits; a refused limit changes neither.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UpdateResources {
    /// The namespace.
    pub namespace: String,
    /// The container.
    pub id: String,
    /// What changes.
    pub resources: ResourceUpdate,
}

/// `ListTasks` of a namespace.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ListTasks {
    /// The namespace.
    pub namespace: String,
}

/// `KillTask`: a signal to the init process (or an exec, or with `all` every process).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KillTask {
    /// Which process.
    pub task: TaskRef,
    /// Signal number.
    pub signal: i32,
    /// Every process of the container.
    pub all: bool,
}

/// A process to add to a running task.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecSpec {
    /// Arguments (non-empty).
    pub args: Vec<String>,
    /// Extra `K=V` after the container's environment.
    pub env: Vec<String>,
    /// Working directory (default: the container's).
    pub cwd: Option<String>,
    /// Keep the process's stdin open: a pipe fed by `WriteStdin`, ended by `CloseStdin`
    /// (ignored with `terminal`).
    pub stdin: bool,
    /// Give the process a terminal (fed by `WriteStdin`, sized by `ResizePty`).
    pub terminal: bool,
}

/// `Exec`: add and start a process; answers its pid.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Exec {
    /// Task and the new exec id (required).
    pub task: TaskRef,
    /// The process.
    pub spec: ExecSpec,
}

/// Cgroup figures of a task.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskMetrics {
    /// CPU time used, nanoseconds.
    pub cpu_ns: u64,
    /// Memory in use, bytes.
    pub memory_bytes: u64,
    /// Memory limit, bytes (0: none).
    pub memory_limit: u64,
    /// Processes.
    pub pids: u64,
}

/// Which output stream a chunk came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum OutputStream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

/// A piece of a process's output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutputChunk {
    /// Its stream.
    pub stream: OutputStream,
    /// The bytes.
    pub data: Vec<u8>,
}

/// `Logs`: a process's kept output, from `<root>/logs/<ns>/<id>/` (the init's, or an exec's
/// with `task.exec_id`). Readable while the container exists, with or without a task.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Logs {
    /// Which process.
    pub task: TaskRef,
    /// After what is kept, go on with new output until the process exits.
    pub follow: bool,
    /// Only the last this many lines of what is kept.
    pub tail: Option<u64>,
    /// Only output written at or after this time (Unix nanoseconds).
    pub since: Option<u64>,
}

/// A piece of kept output: one line, or part of one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogEntry {
    /// Its stream.
    pub stream: OutputStream,
    /// When the shim read it (Unix nanoseconds).
    pub time: u64,
    /// The bytes, with the line's newline if it ends one.
    pub data: Vec<u8>,
}

/// `WriteStdin`: input for a process. For a task with a terminal, bytes typed into it (the
/// pty master, so the terminal's line discipline applies: `^C`, `^D`, echo); for a process
/// created with `stdin`, bytes written to its stdin pipe (blocking while the pipe is full).
/// `FailedPrecondition` for a process with neither, or whose stdin was closed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WriteStdin {
    /// Which process.
    pub task: TaskRef,
    /// The bytes.
    pub data: Vec<u8>,
}

/// `CloseStdin`: end of input for a process created with `stdin` (its stdin pipe is closed,
/// so it reads end of file). `FailedPrecondition` for a process without a stdin pipe.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CloseStdin(pub TaskRef);

/// `ResizePty`: the window size of a process's terminal (a task's, or an exec's).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ResizePty {
    /// Which process.
    pub task: TaskRef,
    /// Columns.
    pub cols: u16,
    /// Rows.
    pub rows: u16,
}

/// `ListNetworks`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ListNetworks {}

/// `GetNetwork`: a network by name.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GetNetwork(pub String);

/// `CreateNetwork`: a bridge network like the default one (bridge, host-local addresses,
/// outbound NAT, portmap, firewall, tuning), written as `berth-<name>.conflist`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct CreateNetwork {
    /// Its name (`[A-Za-z0-9][A-Za-z0-9_.-]*`).
    pub name: String,
    /// Its subnet, a CIDR (`10.214.40.0/24`).
    pub subnet: String,
    /// The bridge's address (default: the subnet's first).
    pub gateway: Option<String>,
    /// The bridge device (default: `berth-` and 8 hex digits of the name's hash).
    pub bridge: Option<String>,
    /// Labels kept in the conflist.
    pub labels: BTreeMap<String, String>,
}

/// `RemoveNetwork`: a network by name.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RemoveNetwork(pub String);

/// A CNI network of the conf dir.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkInfo {
    /// Its name.
    pub name: String,
    /// The file it is read from.
    pub file: String,
    /// Its plugins' types, in order.
    pub plugins: Vec<String>,
    /// The first plugin's type (`bridge`, `macvlan`, …).
    pub kind: String,
    /// Its IPAM subnets.
    pub subnets: Vec<String>,
    /// Its IPAM gateways, where given.
    pub gateways: Vec<String>,
    /// The bridge device, for a bridge network.
    pub bridge: Option<String>,
    /// Labels (of a network berth created).
    pub labels: BTreeMap<String, String>,
    /// Whether berth created it with `CreateNetwork` (only those can be removed).
    pub created_by_berth: bool,
    /// Whether it is the default network (`bridge` to `berth run`).
    pub default: bool,
    /// The sandboxes attached to it, `<namespace>/<sandbox id>`.
    pub users: Vec<String>,
}

crate::protocol! {
    /// The runtime service (`runtime.sock`).
    pub protocol Runtime = "runtime";
    request RuntimeRequest; response RuntimeResponse;
    /// Create a container from an image. Allowed when the id is free and the image exists.
    CreateContainer(CreateContainer) -> Container [];
    /// Remove a container and its snapshot. Allowed without a task, or with `force`.
    RemoveContainer(RemoveContainer) -> () [];
    /// Create a task. Allowed for a container without a task.
    CreateTask(CreateTask) -> TaskInfo [];
    /// Start a created task.
    StartTask(StartTask) -> TaskInfo [];
    /// Create a task and start it at once (one OCI runtime `run` instead of `create` and
    /// `start`). Allowed for a container without a task.
    RunTask(RunTask) -> TaskInfo [];
    /// Signal a process. Allowed while it runs.
    KillTask(KillTask) -> () [];
    /// Delete a stopped or created task; answers its exit.
    DeleteTask(DeleteTask) -> ExitInfo [];
    /// A task's state. Always allowed.
    GetTask(GetTask) -> TaskInfo [idempotent];
    /// Every task of a namespace. Always allowed.
    ListTasks(ListTasks) -> Vec<TaskInfo> [idempotent];
    /// Wait for a process to exit.
    WaitTask(WaitTask) -> ExitInfo [idempotent];
    /// Add and start a process in a running task.
    Exec(Exec) -> u32 [];
    /// Pids of a task's processes.
    Ps(Ps) -> Vec<u32> [idempotent];
    /// Freeze a running task.
    Pause(Pause) -> () [idempotent];
    /// Thaw a paused task.
    Resume(Resume) -> () [idempotent];
    /// Cgroup figures.
    GetMetrics(GetMetrics) -> TaskMetrics [idempotent];
    /// A process's output, streamed until it exits.
    Attach(Attach) -> OutputChunk [idempotent, stream];
    /// Input for a process. Allowed while it has a terminal or an open stdin pipe.
    WriteStdin(WriteStdin) -> () [];
    /// End of input for a process. Allowed while it has an open stdin pipe.
    CloseStdin(CloseStdin) -> () [];
    /// Window size of a process's terminal. Allowed while it has one.
    ResizePty(ResizePty) -> () [idempotent];
    /// A container's kept output (running or exited, until the container is removed), in
    /// batches; with `follow`, then live until the process exits.
    Logs(Logs) -> Vec<LogEntry> [idempotent, stream];
    /// Own a task's life: answers the init's exit; a caller gone before it has the task
    /// killed, deleted and its container removed (see [`Guard`]).
    Guard(Guard) -> ExitInfo [idempotent, stream];
    /// Make a pod sandbox: hold its namespaces, write its files, record it.
    CreateSandbox(CreateSandbox) -> SandboxInfo [];
    /// Stop a sandbox's containers and release its namespaces. Idempotent.
    StopSandbox(StopSandbox) -> () [idempotent];
    /// Remove a sandbox, its containers and files. `NotFound` for an unknown one.
    RemoveSandbox(RemoveSandbox) -> () [];
    /// A sandbox's state. Always allowed.
    GetSandbox(GetSandbox) -> SandboxInfo [idempotent];
    /// Every sandbox of a namespace. Always allowed.
    ListSandboxes(ListSandboxes) -> Vec<SandboxInfo> [idempotent];
    /// Close and reopen a task's init log at its path (after the caller renamed it).
    /// Allowed while the task runs (or is paused).
    ReopenLog(ReopenLog) -> () [idempotent];
    /// Change a container's cgroup limits (its spec's, and its task's while it has one).
    UpdateResources(UpdateResources) -> () [idempotent];
    /// Every CNI network of the conf dir (the default one too, once written).
    ListNetworks(ListNetworks) -> Vec<NetworkInfo> [idempotent];
    /// One CNI network by name. `NotFound` for an unknown one.
    GetNetwork(GetNetwork) -> NetworkInfo [idempotent];
    /// Write a bridge network's conflist into the conf dir. `AlreadyExists` for a taken name,
    /// `InvalidArgument` for a bad name or CIDR, `FailedPrecondition` for a subnet that
    /// overlaps another network's (named).
    CreateNetwork(CreateNetwork) -> NetworkInfo [];
    /// Remove a network berth created. `FailedPrecondition` while a sandbox is attached to
    /// it (named), for the default network, and for a conflist berth did not write.
    RemoveNetwork(RemoveNetwork) -> () [];
}

/// One request to a shim, sent as a JSON line on its private socket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ShimRequest {
    /// Start the created container.
    Start,
    /// Signal a process (`exec_id` `None` = init).
    Kill {
        /// Exec id.
        exec_id: Option<String>,
        /// Signal number.
        signal: i32,
        /// Every process.
        all: bool,
    },
    /// Run an extra process (`process` is an OCI `Process` as JSON).
    Exec {
        /// Exec id.
        exec_id: String,
        /// OCI process JSON.
        process: String,
        /// Give it a stdin pipe.
        #[serde(default)]
        stdin: bool,
        /// Give it a terminal (`process.terminal` is set in `process` too).
        #[serde(default)]
        terminal: bool,
    },
    /// Freeze.
    Pause,
    /// Thaw.
    Resume,
    /// Current state.
    State,
    /// Block until the process exits.
    Wait {
        /// Exec id.
        exec_id: Option<String>,
    },
    /// Pids in the container.
    Ps,
    /// Delete the container from the OCI runtime and exit.
    Shutdown,
    /// Input: to the terminal (init of a tty task) or the process's stdin pipe.
    Stdin {
        /// Exec id (`None`: init).
        #[serde(default)]
        exec_id: Option<String>,
        /// The bytes.
        data: Vec<u8>,
    },
    /// Close a process's stdin pipe.
    CloseStdin {
        /// Exec id (`None`: init).
        exec_id: Option<String>,
    },
    /// Window size of a terminal (the init's, or an exec's).
    Resize {
        /// Exec id (`None`: init).
        #[serde(default)]
        exec_id: Option<String>,
        /// Columns.
        cols: u16,
        /// Rows.
        rows: u16,
    },
    /// Close the init's log file and open it again at its path (created if it was renamed
    /// away): output after the answer goes to the new file, none is lost or duplicated.
    /// `FailedPrecondition` unless the init runs (or is paused). Since protocol 2.
    ReopenLog,
    /// `request`, sent by a client speaking shim protocol `protocol` ([`SHIM_PROTOCOL`]):
    /// the form of a connection's first line since protocol 1. A shim refuses a protocol
    /// newer than its own (`FailedPrecondition`); a shim from before protocol 1 answers
    /// `InvalidArgument` "unknown variant `Versioned`", and the client then sends `request`
    /// bare on the same connection, so shims outliving an upgrade stay adoptable.
    Versioned {
        /// The client's protocol.
        protocol: u32,
        /// The request itself (never `Versioned` again).
        request: Box<ShimRequest>,
    },
}

/// The shim JSON-lines protocol's version (see [`ShimRequest::Versioned`]). 0 is the
/// unversioned protocol of shims from before it; 2 added [`ShimRequest::ReopenLog`].
pub const SHIM_PROTOCOL: u32 = 2;

impl ShimRequest {
    /// The protocol that introduced this request, which a client sends it with: a shim that
    /// outlived an upgrade keeps answering what it knows, and refuses a newer request by
    /// number ("restart the task to upgrade it") rather than as an unknown variant.
    pub fn protocol(&self) -> u32 {
        match self {
            ShimRequest::ReopenLog => 2,
            ShimRequest::Versioned { protocol, .. } => *protocol,
            _ => 1,
        }
    }
}

/// A shim's view of its container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShimState {
    /// Init pid.
    pub pid: u32,
    /// State.
    pub status: TaskStatus,
    /// Exit, once stopped.
    pub exit: Option<ExitInfo>,
    /// The shim's pid.
    pub shim_pid: u32,
}

/// One answer from a shim, a JSON line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ShimResponse {
    /// Done.
    Ok,
    /// A pid (exec, start).
    Pid(u32),
    /// State.
    State(ShimState),
    /// An exit.
    Exit(ExitInfo),
    /// Pids.
    Pids(Vec<u32>),
    /// Failed, with a code and message.
    Error(crate::Error),
}
