//! Pod sandboxes: what a pod's containers share, held without any image.
//!
//! A sandbox is a metadata record (its [`SandboxSpec`] as JSON, labels, extensions kept
//! exactly) and a state dir `<state>/sandboxes/<ns>/<id>/`:
//!
//! ```text
//! ns/{net,ipc,uts,pid}   namespace files, bind-mounted by `berth-sandbox pin` ([`crate::pin`])
//! ns/user                the pod's user namespace (with `user_ns`): it owns the others
//! shm/                   the pod's /dev/shm (a tmpfs)
//! resolv.conf hosts hostname
//! cni-id                 its CNI container id (the start's reconcile reads it)
//! holder                 "<pid> <start time>" of the pid-namespace holder (shared pid only)
//! ready                  written last by a create; removed first by a stop
//! ```
//!
//! Ready means `ready` exists (and, with a shared pid namespace, the holder lives). The state
//! dir is on a tmpfs in production, so after a reboot every sandbox is NotReady, as the
//! kubelet expects. A create that fails part-way, or is cut off by a crash, leaves a dir
//! without a record: the next create of the id, and the service's start, clear it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use berth_ipc::metadata::{
    ByName, CreateSandbox as MdCreate, DeleteSandbox as MdDelete, GetSandbox as MdGet, ListIn,
    ListSandboxes as MdList, RuntimeInfo, Sandbox,
};
use berth_ipc::names::{validate_identifier, validate_namespace, validate_user_labels};
use berth_ipc::runtime::{
    CreateSandbox, KillTask, LABEL_SANDBOX_OWNER, PidMode, RemoveContainer, SandboxInfo, SandboxRef,
    SandboxSpec, SandboxState, TaskRef,
};
use berth_ipc::{Code, Error, Result};
use berth_service_kit::blocking_value;
use nix::mount::{MntFlags, MsFlags};

use crate::Runtime;
use crate::oci_runtime::runtime_binary;
use crate::pin::{PinAnswer, PinRequest};

pub use berth_ipc::runtime::LABEL_SANDBOX;

/// Default size of a pod's `/dev/shm`.
const SHM_SIZE: u64 = 64 << 20;

/// Files of one sandbox.
#[derive(Debug, Clone)]
pub struct SandboxDir {
    /// `<state>/sandboxes/<ns>/<id>`.
    pub dir: PathBuf,
}

impl SandboxDir {
    /// The namespace file of `kind` (`net`, `ipc`, `uts`, `pid`).
    pub fn ns(&self, kind: &str) -> PathBuf {
        self.dir.join("ns").join(kind)
    }
    /// The pod's `/dev/shm`.
    pub fn shm(&self) -> PathBuf {
        self.dir.join("shm")
    }
    /// A file of the pod (`resolv.conf`, `hosts`, `hostname`).
    pub fn file(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
    fn ready(&self) -> PathBuf {
        self.dir.join("ready")
    }
    fn holder(&self) -> PathBuf {
        self.dir.join("holder")
    }
    /// The holder's pid, if it still runs (its start time matches the one recorded).
    pub fn live_holder(&self) -> Option<u32> {
        let text = std::fs::read_to_string(self.holder()).ok()?;
        let (pid, start) = text.trim().split_once(' ')?;
        let pid: u32 = pid.parse().ok()?;
        (start_time(pid)?.as_str() == start).then_some(pid)
    }
}

/// Field 22 of `/proc/<pid>/stat` (start time in clock ticks), for a live, non-zombie pid.
fn start_time(pid: u32) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let mut fields = stat.rsplit_once(')')?.1.split_whitespace();
    let state = fields.next()?;
    if state == "Z" || state == "X" {
        return None;
    }
    fields.nth(18).map(str::to_string)
}

/// The `berth-sandbox` binary: next to this executable, else on `PATH`.
fn helper_binary() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|d| d.join("berth-sandbox")))
        .filter(|p| p.exists())
        .unwrap_or_else(|| PathBuf::from("berth-sandbox"))
}

/// Sysctls that belong to a namespace a sandbox holds, and which: `Some("net")` for the
/// network namespace, `Some("ipc")` for IPC, `Some("uts")`; `None` for a host-wide one,
/// which a pod must never change.
pub fn sysctl_namespace(name: &str) -> Option<&'static str> {
    let dotted = name.replace('/', ".");
    if dotted.starts_with("net.") {
        Some("net")
    } else if dotted.starts_with("kernel.shm")
        || dotted.starts_with("kernel.msg")
        || dotted == "kernel.sem"
        || dotted.starts_with("fs.mqueue.")
    {
        Some("ipc")
    } else if dotted == "kernel.hostname" || dotted == "kernel.domainname" {
        Some("uts")
    } else {
        None
    }
}

/// Checks a sandbox spec before anything is made.
fn check_spec(id: &str, spec: &SandboxSpec) -> Result<()> {
    let what = format!("sandbox {id}");
    if let Some(h) = &spec.hostname
        && (h.is_empty() || h.len() > 64 || h.contains(['\0', '/', ' ']))
    {
        return Err(Error::invalid(format!("{what}: hostname {h:?} is not a valid hostname")));
    }
    for (name, value) in &spec.sysctls {
        let bad_name = name.is_empty()
            || name.contains("..")
            || name.starts_with('/')
            || !name.chars().all(|c| c.is_ascii_alphanumeric() || "._-/".contains(c));
        if bad_name || value.contains(['\0', '\n']) {
            return Err(Error::invalid(format!("{what}: sysctl {name:?}={value:?} is malformed")));
        }
        match sysctl_namespace(name) {
            None => {
                return Err(Error::invalid(format!(
                    "{what}: sysctl {name} is not namespaced; a pod may set only net.*, kernel.shm*, kernel.msg*, kernel.sem and fs.mqueue.*"
                )));
            }
            Some("net") if spec.net_host => {
                return Err(Error::invalid(format!(
                    "{what}: sysctl {name} cannot be set with the host's network namespace"
                )));
            }
            Some("ipc") if spec.ipc_host => {
                return Err(Error::invalid(format!(
                    "{what}: sysctl {name} cannot be set with the host's IPC namespace"
                )));
            }
            Some("uts") if spec.net_host => {
                return Err(Error::invalid(format!(
                    "{what}: sysctl {name} cannot be set with the host's UTS namespace"
                )));
            }
            _ => {}
        }
    }
    if let Some(maps) = &spec.user_ns {
        maps.validate(&what)?;
        // The pod's user namespace must own every namespace its containers join.
        let host = [("network", spec.net_host), ("IPC", spec.ipc_host), ("pid", spec.pid == PidMode::Node)];
        if let Some((kind, _)) = host.iter().find(|(_, on)| *on) {
            return Err(Error::invalid(format!(
                "{what}: a pod with its own user namespace cannot use the host's {kind} namespace"
            )));
        }
    }
    if let Some(parent) = &spec.cgroup_parent
        && (!parent.starts_with('/') || parent.split('/').any(|c| c == ".."))
    {
        return Err(Error::invalid(format!(
            "{what}: cgroup parent {parent:?} must be an absolute cgroup path"
        )));
    }
    if let Some(dns) = &spec.dns {
        for line in dns.servers.iter().chain(&dns.searches).chain(&dns.options) {
            if line.contains(['\n', '\0']) || line.trim().is_empty() {
                return Err(Error::invalid(format!("{what}: DNS entry {line:?} is malformed")));
            }
        }
    }
    for (ip, names) in &spec.hosts {
        if ip.parse::<std::net::IpAddr>().is_err() {
            return Err(Error::invalid(format!("{what}: hosts entry {ip:?} is not an IP address")));
        }
        if names.is_empty() || names.iter().any(|n| n.is_empty() || n.contains(char::is_whitespace)) {
            return Err(Error::invalid(format!(
                "{what}: hosts entry for {ip} has a bad name list {names:?}"
            )));
        }
    }
    Ok(())
}

/// The hostname of a sandbox (its spec's, or its id cut to 63 bytes).
pub fn hostname(id: &str, spec: &SandboxSpec) -> String {
    spec.hostname.clone().unwrap_or_else(|| id.chars().take(63).collect())
}

/// `resolv.conf` for `spec`: its DNS config, or the host's file.
fn resolv_conf(spec: &SandboxSpec) -> String {
    match &spec.dns {
        Some(dns) => {
            let mut out = String::new();
            if !dns.searches.is_empty() {
                out.push_str(&format!("search {}\n", dns.searches.join(" ")));
            }
            for s in &dns.servers {
                out.push_str(&format!("nameserver {s}\n"));
            }
            if !dns.options.is_empty() {
                out.push_str(&format!("options {}\n", dns.options.join(" ")));
            }
            out
        }
        None => std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default(),
    }
}

/// `/etc/hosts` for a pod named `host`.
fn hosts_file(host: &str, spec: &SandboxSpec) -> String {
    let mut out = String::from(
        "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n",
    );
    if spec.net_host {
        // The node's own names resolve as on the node.
        out = std::fs::read_to_string("/etc/hosts").unwrap_or(out);
    } else {
        out.push_str(&format!("127.0.1.1\t{host}\n"));
    }
    for (ip, names) in &spec.hosts {
        out.push_str(&format!("{ip}\t{}\n", names.join(" ")));
    }
    out
}

fn io(what: &Path, e: impl std::fmt::Display) -> Error {
    Error::internal_cause(what.display(), e)
}

impl Runtime {
    /// The state dir of sandbox `id` in `ns`.
    pub fn sandbox_dir(&self, ns: &str, id: &str) -> SandboxDir {
        SandboxDir { dir: self.state.join("sandboxes").join(ns).join(id) }
    }

    /// `CreateSandbox`.
    pub async fn create_sandbox(&self, req: CreateSandbox) -> Result<SandboxInfo> {
        validate_user_labels(&req.labels)?;
        if req.labels.contains_key(LABEL_SANDBOX_OWNER) {
            return Err(Error::invalid(format!(
                "sandbox {}: label {LABEL_SANDBOX_OWNER} is set by the runtime service for a container's own sandbox",
                req.id
            )));
        }
        self.make_sandbox(req).await
    }

    /// `CreateSandbox` with labels already checked (or set by this service).
    pub(crate) async fn make_sandbox(&self, req: CreateSandbox) -> Result<SandboxInfo> {
        validate_namespace(&req.namespace)?;
        validate_identifier("sandbox id", &req.id)?;
        let runtime = runtime_binary(&req.runtime)?.to_string();
        check_spec(&req.id, &req.spec)?;
        crate::network::check(&req.spec).map_err(|e| e.context(format!("sandbox {}", req.id)))?;
        let (ns, id) = (req.namespace.as_str(), req.id.as_str());
        let _claim = self.claims.take("sandbox", ns, id)?;
        match self.metadata.call(MdGet(ByName { namespace: ns.into(), name: id.into() })).await {
            Ok(_) => return Err(Error::already_exists(format!("sandbox {id}: already exists"))),
            Err(e) if e.is(Code::NotFound) => {}
            Err(e) => return Err(e),
        }
        let dir = self.sandbox_dir(ns, id);
        // No record: a dir under the id is what a failed or cut-off create left.
        let d = dir.clone();
        blocking_value("runtime worker", move || release(&d, true)).await??;
        let d = dir.clone();
        let spec = req.spec.clone();
        let host = hostname(id, &req.spec);
        let cni_id = crate::network::spec_cni_id(ns, id, &req.spec);
        let holder = blocking_value("runtime worker", move || make(&d, &spec, &host, &cni_id)).await?;
        let holder = match holder {
            Ok(h) => h,
            Err(e) => {
                let d = dir.clone();
                let _ = blocking_value("runtime worker", move || release(&d, true)).await;
                return Err(e.context(format!("sandbox {id}")));
            }
        };
        let netns = dir.ns("net");
        if let Err(e) = self.attach_network(ns, id, &req.spec, &netns).await {
            let d = dir.clone();
            let _ = blocking_value("runtime worker", move || release(&d, true)).await;
            return Err(e.context(format!("sandbox {id}")));
        }
        berth_ipc::failpoint!("runtime.sandbox.after_attach");
        let record = Sandbox {
            id: id.into(),
            runtime: RuntimeInfo { name: runtime, options: Vec::new() },
            spec: serde_json::to_vec(&req.spec).map_err(|e| Error::internal_cause("sandbox spec", e))?,
            labels: req.labels.clone(),
            extensions: req.extensions.clone(),
            created: 0,
            updated: 0,
        };
        let created = self.metadata.call(MdCreate { namespace: ns.into(), sandbox: record }).await;
        let record = match created {
            Ok(r) => r,
            Err(e) => {
                if let Err(e) = self.detach_network(ns, id, &req.spec, &netns).await {
                    tracing::warn!(namespace = ns, id, error = %e, "network not detached; retried at the next start");
                }
                let d = dir.clone();
                let _ = blocking_value("runtime worker", move || release(&d, true)).await;
                return Err(e);
            }
        };
        let ready = dir.ready();
        blocking_value("runtime worker", move || std::fs::write(&ready, b"").map_err(|e| io(&ready, e)))
            .await??;
        tracing::debug!(namespace = ns, id, holder, "sandbox created");
        Ok(self.info(ns, record))
    }

    /// What a record and its dir say of a sandbox.
    fn info(&self, ns: &str, record: Sandbox) -> SandboxInfo {
        let spec: SandboxSpec = serde_json::from_slice(&record.spec).unwrap_or_default();
        let dir = self.sandbox_dir(ns, &record.id);
        let holder = if spec.pid == PidMode::Pod { dir.live_holder() } else { None };
        let ready = dir.ready().exists() && (spec.pid != PidMode::Pod || holder.is_some());
        let ips = self.sandbox_ips(ns, &record.id, &spec);
        SandboxInfo {
            id: record.id,
            namespace: ns.to_string(),
            state: if ready { SandboxState::Ready } else { SandboxState::NotReady },
            runtime: record.runtime.name,
            netns: (ready && !spec.net_host).then(|| dir.ns("net").display().to_string()),
            holder_pid: holder.unwrap_or(0),
            spec,
            labels: record.labels,
            extensions: record.extensions,
            created: record.created,
            ips,
            dir: dir.dir.display().to_string(),
        }
    }

    /// `GetSandbox`.
    pub async fn get_sandbox(&self, r: SandboxRef) -> Result<SandboxInfo> {
        validate_namespace(&r.namespace)?;
        validate_identifier("sandbox id", &r.id)?;
        let record = self.metadata.call(MdGet(ByName { namespace: r.namespace.clone(), name: r.id })).await?;
        let rt = self.clone();
        blocking_value("runtime worker", move || rt.info(&r.namespace, record)).await
    }

    /// `ListSandboxes`.
    pub async fn list_sandboxes(&self, ns: &str) -> Result<Vec<SandboxInfo>> {
        validate_namespace(ns)?;
        let mut pages =
            self.metadata.stream(MdList(ListIn { namespace: ns.into(), filters: Vec::new() })).await?;
        let mut records = Vec::new();
        while let Some(page) = pages.next().await {
            records.extend(page?);
        }
        let (rt, ns) = (self.clone(), ns.to_string());
        blocking_value("runtime worker", move || records.into_iter().map(|r| rt.info(&ns, r)).collect()).await
    }

    /// The containers of sandbox `id` (by their label).
    async fn sandbox_containers(&self, ns: &str, id: &str) -> Result<Vec<String>> {
        let filter = format!("labels.\"{LABEL_SANDBOX}\"=={id}");
        let list =
            berth_ipc::metadata::ListContainers(ListIn { namespace: ns.into(), filters: vec![filter] });
        let mut pages = self.metadata.stream(list).await?;
        let mut ids = Vec::new();
        while let Some(page) = pages.next().await {
            ids.extend(page?.into_iter().map(|c| c.id));
        }
        Ok(ids)
    }

    /// `StopSandbox`: its containers' tasks killed (kept, stopped), its namespaces released.
    pub async fn stop_sandbox(&self, r: SandboxRef) -> Result<()> {
        validate_namespace(&r.namespace)?;
        validate_identifier("sandbox id", &r.id)?;
        let (ns, id) = (r.namespace.as_str(), r.id.as_str());
        let record = match self.metadata.call(MdGet(ByName { namespace: ns.into(), name: id.into() })).await {
            Ok(r) => r,
            Err(e) if e.is(Code::NotFound) => return Ok(()),
            Err(e) => return Err(e),
        };
        let containers = self.sandbox_containers(ns, id).await?;
        let stops = containers.iter().map(|c| self.stop_container_task(ns, c));
        for result in futures_util::future::join_all(stops).await {
            result?;
        }
        let dir = self.sandbox_dir(ns, id);
        self.detach_recorded(ns, &record, &dir).await?;
        blocking_value("runtime worker", move || release(&dir, false)).await?
    }

    /// Kills the task of container `id`, if it has one, and waits for its exit. The task
    /// stays (a stopped one, its exit status in its shim) until the container is removed, so
    /// the kubelet still reads how it ended.
    async fn stop_container_task(&self, ns: &str, id: &str) -> Result<()> {
        let task = TaskRef::init(ns, id);
        if !self.bundle(ns, id).record().exists() {
            return Ok(());
        }
        let _ = self.kill(KillTask { task: task.clone(), signal: 9, all: true }).await;
        match tokio::time::timeout(std::time::Duration::from_secs(10), self.wait(task)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) if e.is(Code::NotFound) => Ok(()),
            Ok(Err(e)) => Err(e.context(format!("sandbox container {id}"))),
            Err(_) => {
                Err(Error::unavailable(format!("sandbox container {id}: still running 10 s after SIGKILL")))
            }
        }
    }

    /// `RemoveSandbox`.
    pub async fn remove_sandbox(&self, r: SandboxRef) -> Result<()> {
        validate_namespace(&r.namespace)?;
        validate_identifier("sandbox id", &r.id)?;
        let (ns, id) = (r.namespace.as_str(), r.id.as_str());
        let record = self.metadata.call(MdGet(ByName { namespace: ns.into(), name: id.into() })).await?;
        for c in self.sandbox_containers(ns, id).await? {
            match self
                .remove_container(RemoveContainer { namespace: ns.into(), id: c.clone(), force: true })
                .await
            {
                Ok(()) => {}
                Err(e) if e.is(Code::NotFound) => {}
                Err(e) => return Err(e.context(format!("sandbox {id}: container {c}"))),
            }
        }
        self.drop_sandbox(ns, &record).await
    }

    /// Detaches, releases and deletes a recorded sandbox (its containers already gone).
    pub(crate) async fn drop_sandbox(&self, ns: &str, record: &Sandbox) -> Result<()> {
        let id = record.id.as_str();
        let dir = self.sandbox_dir(ns, id);
        self.detach_recorded(ns, record, &dir).await?;
        blocking_value("runtime worker", move || release(&dir, true)).await??;
        match self.metadata.call(MdDelete(ByName { namespace: ns.into(), name: id.into() })).await {
            Err(e) if !e.is(Code::NotFound) => Err(e),
            _ => Ok(()),
        }
    }

    /// Detaches a recorded sandbox from its network, while its network namespace is held.
    /// A failure is answered, with the namespaces kept, so a retried stop tries again.
    async fn detach_recorded(&self, ns: &str, record: &Sandbox, dir: &SandboxDir) -> Result<()> {
        let spec: SandboxSpec = serde_json::from_slice(&record.spec).unwrap_or_default();
        self.detach_network(ns, &record.id, &spec, &dir.ns("net"))
            .await
            .map_err(|e| e.context(format!("sandbox {}", record.id)))
    }

    /// At start: sandbox dirs without a record (a create or remove cut off) are released
    /// and removed.
    pub async fn reconcile_sandboxes(&self) {
        let root = self.state.join("sandboxes");
        let Ok(namespaces) = std::fs::read_dir(&root) else { return };
        for ns in namespaces.flatten() {
            let Some(ns_name) = ns.file_name().to_str().map(str::to_string) else { continue };
            let Ok(ids) = std::fs::read_dir(ns.path()) else { continue };
            for entry in ids.flatten() {
                let Some(id) = entry.file_name().to_str().map(str::to_string) else { continue };
                let by = ByName { namespace: ns_name.clone(), name: id.clone() };
                if let Err(e) = self.metadata.call(MdGet(by)).await
                    && e.is(Code::NotFound)
                {
                    tracing::warn!(namespace = %ns_name, id, "removing a sandbox dir without a record");
                    let dir = SandboxDir { dir: entry.path() };
                    let _ = blocking_value("runtime worker", move || release(&dir, true)).await;
                }
            }
        }
    }
}

/// Makes sandbox `dir`: its files, its `/dev/shm`, its namespaces (through `berth-sandbox`).
/// Answers the holder's pid (0 without one). On error the caller releases the dir.
fn make(dir: &SandboxDir, spec: &SandboxSpec, host: &str, cni_id: &str) -> Result<u32> {
    let mut dirs = std::fs::DirBuilder::new();
    std::os::unix::fs::DirBuilderExt::mode(dirs.recursive(true), 0o711);
    dirs.create(dir.dir.join("ns")).map_err(|e| io(&dir.dir, e))?;
    for (name, text) in [
        ("resolv.conf", resolv_conf(spec)),
        ("hosts", hosts_file(host, spec)),
        ("hostname", format!("{host}\n")),
        (crate::network::CNI_ID_FILE, format!("{cni_id}\n")),
    ] {
        let path = dir.file(name);
        std::fs::write(&path, text).map_err(|e| io(&path, e))?;
    }
    if !spec.ipc_host {
        let shm = dir.shm();
        dirs.create(&shm).map_err(|e| io(&shm, e))?;
        let size = spec.shm_size.unwrap_or(SHM_SIZE);
        let data = format!("mode=1777,size={size}");
        nix::mount::mount(
            Some("shm"),
            &shm,
            Some("tmpfs"),
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
            Some(data.as_str()),
        )
        .map_err(|e| io(&shm, format!("mount tmpfs: {e}")))?;
    }
    let request = PinRequest {
        dir: dir.dir.join("ns"),
        net: !spec.net_host,
        ipc: !spec.ipc_host,
        uts: !spec.net_host,
        pid: spec.pid == PidMode::Pod,
        hostname: host.to_string(),
        sysctls: spec.sysctls.clone(),
        user: spec.user_ns.clone(),
    };
    let answer = run_helper(&request)?;
    if answer.holder_pid != 0 {
        let start = start_time(answer.holder_pid)
            .ok_or_else(|| Error::internal(format!("pod holder {} exited at once", answer.holder_pid)))?;
        let path = dir.holder();
        std::fs::write(&path, format!("{} {start}\n", answer.holder_pid)).map_err(|e| io(&path, e))?;
    }
    Ok(answer.holder_pid)
}

/// Runs `berth-sandbox pin` with `request`; its error message is the error.
fn run_helper(request: &PinRequest) -> Result<PinAnswer> {
    use std::io::Write;
    let mut child = std::process::Command::new(helper_binary())
        .arg("pin")
        // Not read: it names the sandbox in the holder's command line (`ps`, cleanups).
        .arg(&request.dir)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| Error::internal_cause("spawn berth-sandbox", e))?;
    let line = serde_json::to_vec(request).map_err(|e| Error::internal_cause("pin request", e))?;
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(&line);
    }
    let out = child.wait_with_output().map_err(|e| Error::internal_cause("berth-sandbox", e))?;
    if !out.status.success() {
        let msg = String::from_utf8_lossy(&out.stderr);
        let msg = msg.trim().trim_start_matches("berth-sandbox: ");
        // The helper's failures are the pod's settings failing (a sysctl the kernel
        // refuses, a hostname): the caller's to fix.
        return Err(Error::invalid(format!("holding namespaces: {msg}")));
    }
    serde_json::from_slice(&out.stdout).map_err(|e| {
        Error::internal_cause(
            format_args!("berth-sandbox: bad answer {:?}", String::from_utf8_lossy(&out.stdout)),
            e,
        )
    })
}

/// Releases sandbox `dir`: `ready` first, the holder killed, namespace files and `/dev/shm`
/// unmounted; with `remove`, the dir itself removed. Idempotent.
fn release(dir: &SandboxDir, remove: bool) -> Result<()> {
    if !dir.dir.exists() {
        return Ok(());
    }
    let _ = std::fs::remove_file(dir.ready());
    if let Some(pid) = dir.live_holder() {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid.cast_signed()),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    let _ = std::fs::remove_file(dir.holder());
    crate::pin::unpin(&dir.dir.join("ns"));
    let shm = dir.shm();
    let _ = nix::mount::umount2(&shm, MntFlags::MNT_DETACH);
    if remove {
        std::fs::remove_dir_all(&dir.dir).or_else(|e| match e.kind() {
            std::io::ErrorKind::NotFound => Ok(()),
            _ => Err(io(&dir.dir, e)),
        })?;
    }
    Ok(())
}

/// Labels of a sandbox's container: the user's plus the sandbox's name.
pub fn container_labels(user: &BTreeMap<String, String>, sandbox: &str) -> BTreeMap<String, String> {
    let mut labels = user.clone();
    labels.insert(LABEL_SANDBOX.to_string(), sandbox.to_string());
    labels
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_namespaced_sysctls_pass() {
        let mut spec = SandboxSpec::default();
        spec.sysctls.insert("net.ipv4.ip_unprivileged_port_start".into(), "0".into());
        spec.sysctls.insert("kernel.shm_rmid_forced".into(), "1".into());
        assert!(check_spec("p", &spec).is_ok());
        spec.sysctls.insert("kernel.panic".into(), "1".into());
        let e = check_spec("p", &spec).expect_err("kernel.panic");
        assert!(e.message.contains("kernel.panic is not namespaced"), "{e}");
        let mut host = SandboxSpec { net_host: true, ..SandboxSpec::default() };
        host.sysctls.insert("net.ipv4.ping_group_range".into(), "0 0".into());
        assert!(check_spec("p", &host).expect_err("host net").message.contains("host's network"));
        let mut bad = SandboxSpec::default();
        bad.sysctls.insert("net/../../kernel/panic".into(), "1".into());
        assert!(check_spec("p", &bad).is_err());
    }

    #[test]
    fn resolv_conf_from_dns_config() {
        let spec = SandboxSpec {
            dns: Some(berth_ipc::runtime::DnsConfig {
                servers: vec!["10.0.0.10".into()],
                searches: vec!["ns.svc.cluster.local".into(), "svc.cluster.local".into()],
                options: vec!["ndots:5".into()],
            }),
            ..SandboxSpec::default()
        };
        assert_eq!(
            resolv_conf(&spec),
            "search ns.svc.cluster.local svc.cluster.local\nnameserver 10.0.0.10\noptions ndots:5\n"
        );
    }

    #[test]
    fn a_user_namespace_pod_has_no_host_namespaces() {
        use berth_ipc::runtime::{IdMapping, IdMappings};
        let maps = IdMappings {
            uids: vec![IdMapping { container_id: 0, host_id: 100_000, length: 65536 }],
            gids: vec![IdMapping { container_id: 0, host_id: 100_000, length: 65536 }],
        };
        let spec = SandboxSpec { user_ns: Some(maps.clone()), ..SandboxSpec::default() };
        assert!(check_spec("p", &spec).is_ok());
        let host = SandboxSpec { net_host: true, ..spec.clone() };
        let e = check_spec("p", &host).expect_err("host network");
        assert!(
            e.message.contains("sandbox p: a pod with its own user namespace cannot use the host's network"),
            "{e}"
        );
        let pid = SandboxSpec { pid: PidMode::Node, ..spec.clone() };
        assert!(check_spec("p", &pid).expect_err("host pid").message.contains("host's pid namespace"));
        let mut bad = maps;
        bad.gids.clear();
        let e = check_spec("p", &SandboxSpec { user_ns: Some(bad), ..spec }).expect_err("no gids");
        assert!(e.message.contains("sandbox p: user namespace has no gid mappings"), "{e}");
    }
}
