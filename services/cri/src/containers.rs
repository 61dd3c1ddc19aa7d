//! Containers in pods: CreateContainer, StartContainer, StopContainer, RemoveContainer,
//! ContainerStatus, ListContainers, ExecSync, ContainerStats. A CRI container is a runtime
//! container in its pod's sandbox; its task is created and started by StartContainer and
//! kept after it exits (the exit status lives in its shim) until RemoveContainer.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use berth_ipc::metadata::{
    ByName, Container as BerthContainer, GetContainer, ListContainers, ListIn, UpdateContainer,
};
use berth_ipc::runtime::{
    Attach, CreateContainer as RtCreate, Exec, ExecSpec, GetMetrics, KillTask, ListTasks, OutputStream,
    RemoveContainer as RtRemove, ReopenLog, RunTask, TaskInfo, TaskRef, TaskStatus, UpdateResources,
    WaitTask,
};
use berth_ipc::{Code, Error, Result};
use k8s_cri::v1::{
    Container, ContainerAttributes, ContainerConfig, ContainerFilter, ContainerState, ContainerStats,
    ContainerStatus, CpuUsage, ExecSyncResponse, MemoryUsage, UInt64Value,
};

use crate::records::{self, CONTAINER_EXT, ContainerRecord, STARTED_EXT};
use crate::{Cri, NAMESPACE, convert};

/// ExecSync processes that may run in one container at once.
const SYNC_EXEC_SLOTS: usize = 16;

/// A CRI container: its record, what the CRI keeps of it, and its task (if any).
#[derive(Debug, Clone)]
pub struct Ctr {
    /// The runtime container record.
    pub record: BerthContainer,
    /// The CRI part.
    pub cri: ContainerRecord,
    /// Its task.
    pub task: Option<TaskInfo>,
}

impl Ctr {
    /// When its task started (Unix ns; 0 before).
    pub fn started(&self) -> u64 {
        self.record
            .extensions
            .get(STARTED_EXT)
            .and_then(|v| std::str::from_utf8(v).ok()?.parse().ok())
            .unwrap_or(0)
    }

    /// CRI's state.
    pub fn state(&self) -> ContainerState {
        match &self.task {
            None if self.started() > 0 => ContainerState::ContainerExited,
            None => ContainerState::ContainerCreated,
            Some(t) => match t.status {
                TaskStatus::Created => ContainerState::ContainerCreated,
                TaskStatus::Running | TaskStatus::Paused => ContainerState::ContainerRunning,
                TaskStatus::Stopped => ContainerState::ContainerExited,
                TaskStatus::Unknown => ContainerState::ContainerUnknown,
            },
        }
    }

    fn summary(&self) -> Container {
        Container {
            id: self.record.id.clone(),
            pod_sandbox_id: self.cri.sandbox_id.clone(),
            metadata: self.cri.config.metadata.clone(),
            image: self.cri.config.image.clone(),
            image_ref: self.cri.image_id.clone(),
            state: self.state() as i32,
            created_at: records::ns_i64(self.record.created),
            labels: self.cri.config.labels.clone(),
            annotations: self.cri.config.annotations.clone(),
            image_id: self.cri.image_id.clone(),
        }
    }

    fn status(&self) -> ContainerStatus {
        let exit = self.task.as_ref().and_then(|t| t.exit);
        let state = self.state();
        let (exit_code, finished, reason) = match (state, exit) {
            (ContainerState::ContainerExited, Some(e)) => {
                let reason = if e.oom_killed {
                    "OOMKilled"
                } else if e.status == 0 {
                    "Completed"
                } else {
                    "Error"
                };
                (i32::try_from(e.status).unwrap_or(255), e.exited_at, reason.to_string())
            }
            (ContainerState::ContainerExited, None) => (255, 0, "Unknown".to_string()),
            _ => (0, 0, String::new()),
        };
        ContainerStatus {
            id: self.record.id.clone(),
            metadata: self.cri.config.metadata.clone(),
            state: state as i32,
            created_at: records::ns_i64(self.record.created),
            started_at: records::ns_i64(self.started()),
            finished_at: records::ns_i64(finished),
            exit_code,
            image: self.cri.config.image.clone(),
            image_ref: self.cri.image_id.clone(),
            reason,
            message: String::new(),
            labels: self.cri.config.labels.clone(),
            annotations: self.cri.config.annotations.clone(),
            mounts: self.cri.config.mounts.clone(),
            log_path: self.cri.log_path.clone(),
            resources: self
                .cri
                .config
                .linux
                .as_ref()
                .and_then(|l| l.resources.clone())
                .map(|linux| k8s_cri::v1::ContainerResources { linux: Some(linux), windows: None }),
            image_id: self.cri.image_id.clone(),
            user: self.user(),
        }
    }

    /// The identity its process runs with, from its OCI spec.
    fn user(&self) -> Option<k8s_cri::v1::ContainerUser> {
        let spec: serde_json::Value = serde_json::from_slice(&self.record.spec).ok()?;
        let user = spec.pointer("/process/user")?;
        let uid = user.get("uid")?.as_i64()?;
        let gid = user.get("gid")?.as_i64()?;
        let mut groups: Vec<i64> = user
            .get("additionalGids")
            .and_then(|g| g.as_array())
            .map(|a| a.iter().filter_map(|v| v.as_i64()).collect())
            .unwrap_or_default();
        // As `id -G` shows them (and containerd reports): the primary group among them.
        groups.push(gid);
        groups.sort_unstable();
        groups.dedup();
        Some(k8s_cri::v1::ContainerUser {
            linux: Some(k8s_cri::v1::LinuxContainerUser { uid, gid, supplemental_groups: groups }),
        })
    }
}

/// Whether `c` passes `filter`.
fn matches(c: &Ctr, filter: &ContainerFilter) -> bool {
    if !filter.id.is_empty() && !c.record.id.starts_with(&filter.id) {
        return false;
    }
    if !filter.pod_sandbox_id.is_empty() && !c.cri.sandbox_id.starts_with(&filter.pod_sandbox_id) {
        return false;
    }
    if let Some(s) = &filter.state
        && s.state != c.state() as i32
    {
        return false;
    }
    filter.label_selector.iter().all(|(k, v)| c.cri.config.labels.get(k) == Some(v))
}

/// The same container metadata in the same pod: a name is reserved once.
fn same_container(a: &ContainerRecord, sandbox: &str, config: &ContainerConfig) -> bool {
    a.sandbox_id == sandbox
        && match (&a.config.metadata, &config.metadata) {
            (Some(x), Some(y)) => x.name == y.name && x.attempt == y.attempt,
            _ => false,
        }
}

/// The runtime's `berth_runtime::removals::EXTENSION`.
const REMOVE_IN_BACKGROUND: &str = "berth.io/remove-in-background";

impl Cri {
    /// The container records matching `filters` (all with none).
    async fn container_records(&self, filters: Vec<String>) -> Result<Vec<BerthContainer>> {
        let list = ListContainers(ListIn { namespace: NAMESPACE.into(), filters });
        let mut pages = self.services.metadata.stream(list).await?;
        let mut out = Vec::new();
        while let Some(page) = pages.next().await {
            out.extend(page?);
        }
        Ok(out)
    }

    /// The ids and CRI records of pod `pod`'s containers (no tasks asked: names only).
    async fn pod_records(&self, pod: &str) -> Result<Vec<(String, ContainerRecord)>> {
        let filter = format!("labels.\"{}\"=={pod}", berth_ipc::runtime::LABEL_SANDBOX);
        let records = self.container_records(vec![filter]).await?;
        Ok(records
            .iter()
            .filter_map(|r| Some((r.id.clone(), records::container_record(&r.extensions, &r.id).ok()?)))
            .collect())
    }

    /// Every CRI container with its task.
    pub async fn containers(&self) -> Result<Vec<Ctr>> {
        let records = self.container_records(Vec::new());
        let tasks = self.services.runtime.call(ListTasks { namespace: NAMESPACE.into() });
        let (records, tasks) = tokio::join!(records, tasks);
        let mut tasks: HashMap<String, TaskInfo> = tasks?.into_iter().map(|t| (t.id.clone(), t)).collect();
        Ok(records?
            .into_iter()
            .filter_map(|r| {
                let cri = records::container_record(&r.extensions, &r.id).ok()?;
                let task = tasks.remove(&r.id);
                Some(Ctr { record: r, cri, task })
            })
            .collect())
    }

    /// One container by id or unique prefix.
    pub async fn container(&self, id: &str) -> Result<Ctr> {
        if id.is_empty() {
            return Err(Error::invalid("container id must not be empty"));
        }
        let get = GetContainer(ByName { namespace: NAMESPACE.into(), name: id.into() });
        let record = match self.services.metadata.call(get).await {
            Ok(r) => r,
            Err(e) if e.is(Code::NotFound) || e.is(Code::InvalidArgument) => {
                let all = self.containers().await?;
                let full = records::resolve_id(id, all.iter().map(|c| c.record.id.as_str()), "container")?;
                return all
                    .into_iter()
                    .find(|c| c.record.id == full)
                    .ok_or_else(|| Error::not_found(format!("container {id}: not found")));
            }
            Err(e) => return Err(e),
        };
        let cri = records::container_record(&record.extensions, &record.id)?;
        let task = match self
            .services
            .runtime
            .call(berth_ipc::runtime::GetTask(TaskRef::init(NAMESPACE, &record.id)))
            .await
        {
            Ok(t) => Some(t),
            Err(e) if e.is(Code::NotFound) => None,
            Err(e) => return Err(e),
        };
        Ok(Ctr { record, cri, task })
    }

    /// `CreateContainer`: the container's id.
    pub async fn create_container(&self, pod_id: &str, config: ContainerConfig) -> Result<String> {
        let image = config.image.as_ref().map(|i| i.image.clone()).unwrap_or_default();
        // The pod and the image are looked up at once; the pod's errors come first.
        let (pod, found) = tokio::join!(self.pod(pod_id), async {
            match image.is_empty() {
                true => None,
                false => Some(self.image_for_container(&image).await),
            }
        });
        let pod = pod?;
        if pod.state() != k8s_cri::v1::PodSandboxState::SandboxReady {
            return Err(Error::precondition(format!("pod sandbox {}: not ready", pod.info.id)));
        }
        let meta = config
            .metadata
            .clone()
            .ok_or_else(|| Error::invalid("container config: metadata is required"))?;
        if meta.name.is_empty() {
            return Err(Error::invalid("container config: metadata.name is required"));
        }
        let Some(found) = found else {
            return Err(Error::invalid(format!("container {:?}: image is required", meta.name)));
        };
        let mut options = convert::run_options(&config, &pod.info.id)?;
        // A container runs in its pod's user namespace: one it names must be that one.
        let asked = config
            .linux
            .as_ref()
            .and_then(|l| l.security_context.as_ref())
            .and_then(|s| s.namespace_options.as_ref())
            .and_then(|n| n.userns_options.as_ref());
        if asked.is_some() && options.linux.user_ns != pod.info.spec.user_ns {
            return Err(Error::invalid(format!(
                "container {:?}: user namespace differs from pod sandbox {}'s; a container runs in its pod's user namespace with the pod's mappings",
                meta.name, pod.info.id
            )));
        }
        options.linux.user_ns = pod.info.spec.user_ns.clone();
        let (image_name, image_id, stop_signal) = found?;
        let log_path = match (pod.log_directory(), config.log_path.as_str()) {
            ("", _) | (_, "") => String::new(),
            (dir, file) => {
                if file.starts_with('/') || file.split('/').any(|c| c == "..") {
                    return Err(Error::invalid(format!(
                        "container {:?}: log path {file:?} must be relative to the pod's log directory",
                        meta.name
                    )));
                }
                std::path::Path::new(dir).join(file).display().to_string()
            }
        };
        // Written there by the container's shim, rotated by the kubelet (ReopenContainerLog).
        options.log_path = (!log_path.is_empty()).then(|| log_path.clone());
        let _names = self.names.lock().await;
        let pod_records = self.pod_records(&pod.info.id).await?;
        if let Some((taken, _)) = pod_records.iter().find(|(_, c)| same_container(c, &pod.info.id, &config)) {
            return Err(Error::already_exists(format!(
                "container name {}_{} in pod sandbox {} is reserved for {taken}",
                meta.name, meta.attempt, pod.info.id
            )));
        }
        let id = records::new_id()?;
        let cri = ContainerRecord {
            config,
            sandbox_id: pod.info.id.clone(),
            image_name: image_name.clone(),
            image_id,
            log_path,
            stop_signal,
        };
        let req = RtCreate {
            namespace: NAMESPACE.into(),
            id: id.clone(),
            image: image_name,
            runtime: pod.info.runtime.clone(),
            options,
            labels: BTreeMap::new(),
            // The kubelet waits for no snapshot: it goes after RemoveContainer answers (the
            // runtime's `removals::EXTENSION`).
            extensions: BTreeMap::from([
                (CONTAINER_EXT.to_string(), records::encode(&cri)?),
                (REMOVE_IN_BACKGROUND.to_string(), Vec::new()),
            ]),
        };
        self.services.runtime.call(req).await?;
        Ok(id)
    }

    /// `ReopenContainerLog`: the shim reopens the container's log at its path (the kubelet
    /// renamed it). Refused unless the container runs, as containerd does.
    pub async fn reopen_container_log(&self, id: &str) -> Result<()> {
        let c = self.container(id).await?;
        if c.state() != ContainerState::ContainerRunning {
            return Err(Error::precondition(format!("container {} is not running", c.record.id)));
        }
        self.services.runtime.call(ReopenLog(TaskRef::init(NAMESPACE, &c.record.id))).await
    }

    /// `UpdateContainerResources`: the runtime changes the spec's and the running task's
    /// cgroup limits; then the CRI record holds the new resources, which ContainerStatus
    /// reports. Refused for an exited container, as containerd does.
    pub async fn update_container_resources(
        &self,
        id: &str,
        linux: Option<k8s_cri::v1::LinuxContainerResources>,
    ) -> Result<()> {
        let c = self.container(id).await?;
        let id = c.record.id.clone();
        if c.state() == ContainerState::ContainerExited {
            return Err(Error::precondition(format!(
                "container {id}: has exited; its resources cannot change"
            )));
        }
        let Some(linux) = linux else { return Ok(()) };
        let resources = convert::resource_update(&linux).map_err(|e| e.context(format!("container {id}")))?;
        self.services
            .runtime
            .call(UpdateResources { namespace: NAMESPACE.into(), id: id.clone(), resources })
            .await?;
        let mut cri = c.cri;
        let config_linux = cri.config.linux.get_or_insert_with(Default::default);
        config_linux.resources = Some(linux);
        let mut record = c.record;
        record.extensions.insert(CONTAINER_EXT.into(), records::encode(&cri)?);
        let update = UpdateContainer {
            namespace: NAMESPACE.into(),
            container: record,
            paths: vec![format!("extensions.{CONTAINER_EXT}")],
        };
        self.services.metadata.call(update).await?;
        Ok(())
    }

    /// `StartContainer`.
    pub async fn start_container(&self, id: &str) -> Result<()> {
        let c = self.container(id).await?;
        if c.state() != ContainerState::ContainerCreated || c.task.is_some() {
            return Err(Error::precondition(format!(
                "container {}: is not in the created state",
                c.record.id
            )));
        }
        self.services.runtime.call(RunTask(TaskRef::init(NAMESPACE, &c.record.id))).await?;
        let mut record = c.record;
        record
            .extensions
            .insert(STARTED_EXT.into(), berth_service_kit::time::now_ns().to_string().into_bytes());
        let update = UpdateContainer {
            namespace: NAMESPACE.into(),
            container: record,
            paths: vec![format!("extensions.{STARTED_EXT}")],
        };
        self.services.metadata.call(update).await?;
        Ok(())
    }

    /// `StopContainer`: the image's stop signal (SIGTERM when it names none), then SIGKILL
    /// after `timeout` seconds. An unknown or stopped container is already stopped.
    pub async fn stop_container(&self, id: &str, timeout: i64) -> Result<()> {
        let c = match self.container(id).await {
            Ok(c) => c,
            Err(e) if e.is(Code::NotFound) => return Ok(()),
            Err(e) => return Err(e),
        };
        if c.state() != ContainerState::ContainerRunning {
            return Ok(());
        }
        let task = TaskRef::init(NAMESPACE, &c.record.id);
        let rt = &self.services.runtime;
        let wait = Duration::from_secs(u64::try_from(timeout).unwrap_or(0));
        if !wait.is_zero() {
            let signal = match c.cri.stop_signal.as_str() {
                "" => libc::SIGTERM,
                name => berth_oci::signal::parse(name).unwrap_or_else(|e| {
                    tracing::warn!(id = %c.record.id, "image stop signal: {e}; sending SIGTERM");
                    libc::SIGTERM
                }),
            };
            let _ = rt.call(KillTask { task: task.clone(), signal, all: false }).await;
            if tokio::time::timeout(wait, rt.call(WaitTask(task.clone()))).await.is_ok() {
                return Ok(());
            }
        }
        match rt.call(KillTask { task: task.clone(), signal: libc::SIGKILL, all: true }).await {
            Err(e) if !e.is(Code::NotFound) && !e.is(Code::FailedPrecondition) => return Err(e),
            _ => {}
        }
        match tokio::time::timeout(Duration::from_secs(30), rt.call(WaitTask(task))).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) if e.is(Code::NotFound) => Ok(()),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(Error::unavailable(format!(
                "container {}: still running 30 s after SIGKILL",
                c.record.id
            ))),
        }
    }

    /// `RemoveContainer`: killed first if it runs; an unknown container is already removed.
    pub async fn remove_container(&self, id: &str) -> Result<()> {
        let c = match self.container(id).await {
            Ok(c) => c,
            Err(e) if e.is(Code::NotFound) => return Ok(()),
            Err(e) => return Err(e),
        };
        let req = RtRemove { namespace: NAMESPACE.into(), id: c.record.id, force: true };
        match self.services.runtime.call(req).await {
            Err(e) if !e.is(Code::NotFound) => Err(e),
            _ => Ok(()),
        }
    }

    /// `ContainerStatus`.
    pub async fn container_status(
        &self,
        id: &str,
        verbose: bool,
    ) -> Result<(ContainerStatus, HashMap<String, String>)> {
        let c = self.container(id).await?;
        let mut info = HashMap::new();
        if verbose {
            let v = serde_json::json!({
                "pid": c.task.as_ref().map(|t| t.pid),
                "sandboxID": c.cri.sandbox_id,
                "image": c.cri.image_name,
                "runtime": c.record.runtime.name,
                "config": c.cri.config,
            });
            info.insert("info".to_string(), v.to_string());
        }
        Ok((c.status(), info))
    }

    /// `ListContainers`.
    pub async fn list_containers(&self, filter: Option<ContainerFilter>) -> Result<Vec<Container>> {
        let filter = filter.unwrap_or_default();
        Ok(self.containers().await?.iter().filter(|c| matches(c, &filter)).map(Ctr::summary).collect())
    }

    /// `ExecSync`: runs `cmd` in the container; its exact stdout, stderr and exit code. Past
    /// `timeout` seconds (0: none) the process is killed and the call fails.
    pub async fn exec_sync(&self, id: &str, cmd: Vec<String>, timeout: i64) -> Result<ExecSyncResponse> {
        let c = self.container(id).await?;
        if c.state() != ContainerState::ContainerRunning {
            return Err(Error::precondition(format!("container {}: is not running", c.record.id)));
        }
        if cmd.is_empty() {
            return Err(Error::invalid("exec: command must not be empty"));
        }
        let spec = ExecSpec { args: cmd, ..ExecSpec::default() };
        let rt = &self.services.runtime;
        // A small pool of exec ids per container, each reused once its process has exited
        // (the shim then forgets it and its log): a liveness probe every few seconds must not
        // pile up exec records and log files for the container's whole life.
        let mut task = None;
        for slot in 0..SYNC_EXEC_SLOTS {
            let t = TaskRef {
                namespace: NAMESPACE.into(),
                id: c.record.id.clone(),
                exec_id: Some(format!("sync-{slot}")),
            };
            match rt.call(Exec { task: t.clone(), spec: spec.clone() }).await {
                Ok(_) => {
                    task = Some(t);
                    break;
                }
                Err(e) if e.is(Code::AlreadyExists) => continue,
                Err(e) => return Err(e),
            }
        }
        let task = task.ok_or_else(|| {
            Error::unavailable(format!(
                "container {}: {SYNC_EXEC_SLOTS} ExecSync calls already run in it",
                c.record.id
            ))
        })?;
        let run = async {
            let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
            let mut output = rt.stream(Attach(task.clone())).await?;
            while let Some(chunk) = output.next().await {
                let chunk = chunk?;
                match chunk.stream {
                    OutputStream::Stdout => stdout.extend_from_slice(&chunk.data),
                    OutputStream::Stderr => stderr.extend_from_slice(&chunk.data),
                }
            }
            let exit = rt.call(WaitTask(task.clone())).await?;
            Ok::<_, Error>(ExecSyncResponse {
                stdout,
                stderr,
                exit_code: i32::try_from(exit.status).unwrap_or(255),
            })
        };
        if timeout <= 0 {
            return run.await;
        }
        match tokio::time::timeout(Duration::from_secs(timeout.unsigned_abs()), run).await {
            Ok(r) => r,
            Err(_) => {
                let _ = rt.call(KillTask { task, signal: libc::SIGKILL, all: false }).await;
                Err(Error::new(
                    Code::Unavailable,
                    format!("exec in container {}: timed out after {timeout} s", c.record.id),
                ))
            }
        }
    }

    /// Stats of one container.
    pub async fn stats_of(&self, c: &Ctr) -> ContainerStats {
        let now = records::ns_i64(berth_service_kit::time::now_ns());
        let metrics = match &c.task {
            Some(t) if t.status == TaskStatus::Running || t.status == TaskStatus::Paused => {
                self.services.runtime.call(GetMetrics(TaskRef::init(NAMESPACE, &c.record.id))).await.ok()
            }
            _ => None,
        };
        let m = metrics.unwrap_or_default();
        let v = |value| Some(UInt64Value { value });
        ContainerStats {
            attributes: Some(ContainerAttributes {
                id: c.record.id.clone(),
                metadata: c.cri.config.metadata.clone(),
                labels: c.cri.config.labels.clone(),
                annotations: c.cri.config.annotations.clone(),
            }),
            cpu: Some(CpuUsage {
                timestamp: now,
                usage_core_nano_seconds: v(m.cpu_ns),
                usage_nano_cores: None,
            }),
            memory: Some(MemoryUsage {
                timestamp: now,
                working_set_bytes: v(m.memory_bytes),
                available_bytes: (m.memory_limit > 0)
                    .then(|| UInt64Value { value: m.memory_limit.saturating_sub(m.memory_bytes) }),
                usage_bytes: v(m.memory_bytes),
                rss_bytes: None,
                page_faults: None,
                major_page_faults: None,
            }),
            writable_layer: None,
            swap: None,
        }
    }
}

impl Cri {
    /// Stats of pod `id`: its containers', and their sums.
    pub async fn pod_stats(&self, id: &str) -> Result<k8s_cri::v1::PodSandboxStats> {
        let pod = self.pod(id).await?;
        let mut containers = Vec::new();
        for c in self.containers().await?.iter().filter(|c| c.cri.sandbox_id == pod.info.id) {
            containers.push(self.stats_of(c).await);
        }
        let now = records::ns_i64(berth_service_kit::time::now_ns());
        let sum = |f: fn(&ContainerStats) -> Option<u64>| containers.iter().filter_map(f).sum::<u64>();
        let cpu = sum(|s| s.cpu.as_ref()?.usage_core_nano_seconds.as_ref().map(|v| v.value));
        let mem = sum(|s| s.memory.as_ref()?.working_set_bytes.as_ref().map(|v| v.value));
        Ok(k8s_cri::v1::PodSandboxStats {
            attributes: Some(k8s_cri::v1::PodSandboxAttributes {
                id: pod.info.id.clone(),
                metadata: pod.config.metadata.clone(),
                labels: pod.config.labels.clone(),
                annotations: pod.config.annotations.clone(),
            }),
            linux: Some(k8s_cri::v1::LinuxPodSandboxStats {
                cpu: Some(CpuUsage {
                    timestamp: now,
                    usage_core_nano_seconds: Some(UInt64Value { value: cpu }),
                    usage_nano_cores: None,
                }),
                memory: Some(MemoryUsage {
                    timestamp: now,
                    working_set_bytes: Some(UInt64Value { value: mem }),
                    usage_bytes: Some(UInt64Value { value: mem }),
                    ..MemoryUsage::default()
                }),
                network: None,
                process: None,
                containers,
            }),
            windows: None,
        })
    }
}
