//! What happens inside a running task: exec, ps, pause, resume, metrics, attach.

use std::time::Duration;

use berth_ipc::events::payload::{TaskExecAdded, TaskPaused, TaskResumed};
use berth_ipc::runtime::{
    Exec, OutputChunk, RuntimeResponse, ShimRequest, ShimResponse, TaskMetrics, TaskRef, TaskStatus,
};
use berth_ipc::{Error, Result};
use tokio::sync::mpsc;

use crate::Runtime;
use crate::logfile::Record;
use crate::logread::Follower;
use crate::task_lookup::{no_task, not_running};
use crate::tasks::check;
use crate::{shim_client, spec};

/// How often attach looks for new output.
const ATTACH_POLL: Duration = Duration::from_millis(3);

impl Runtime {
    /// `Exec`.
    pub async fn exec(&self, req: Exec) -> Result<u32> {
        check(&req.task)?;
        let exec_id =
            req.task.exec_id.clone().ok_or_else(|| Error::invalid("exec: an exec id is required"))?;
        let bundle = self.existing(&req.task).await?;
        let config = std::fs::read(bundle.config()).map_err(|_| no_task(&req.task.id))?;
        let oci: oci_spec::runtime::Spec =
            serde_json::from_slice(&config).map_err(|e| Error::internal_cause("config.json", e))?;
        let process = spec::exec_process(&oci, &req.spec)?;
        let process = serde_json::to_string(&process).map_err(|e| Error::internal(e.to_string()))?;
        let ns = req.task.namespace.clone();
        self.events
            .publish(&ns, TaskExecAdded { container_id: req.task.id.clone(), exec_id: exec_id.clone() });
        let call = ShimRequest::Exec {
            exec_id: exec_id.clone(),
            process,
            stdin: req.spec.stdin && !req.spec.terminal,
            terminal: req.spec.terminal,
        };
        match shim_client::call(&bundle.socket(), &call).await.map_err(|e| gone(e, &req.task))? {
            ShimResponse::Pid(pid) => Ok(pid),
            other => Err(Error::internal(format!("shim: unexpected answer {other:?}"))),
        }
    }

    /// `Ps`.
    pub async fn ps(&self, task: TaskRef) -> Result<Vec<u32>> {
        let bundle = self.existing(&task).await?;
        match shim_client::call(&bundle.socket(), &ShimRequest::Ps).await.map_err(|e| gone(e, &task))? {
            ShimResponse::Pids(p) => Ok(p),
            other => Err(Error::internal(format!("shim: unexpected answer {other:?}"))),
        }
    }

    /// `Pause` (`resume = false`) and `Resume`.
    pub async fn freeze(&self, task: TaskRef, resume: bool) -> Result<()> {
        let bundle = self.existing(&task).await?;
        let req = if resume { ShimRequest::Resume } else { ShimRequest::Pause };
        shim_client::call(&bundle.socket(), &req).await.map_err(|e| gone(e, &task))?;
        let id = task.id.clone();
        if resume {
            self.events.publish(&task.namespace, TaskResumed { container_id: id });
        } else {
            self.events.publish(&task.namespace, TaskPaused { container_id: id });
        }
        Ok(())
    }

    /// `WriteStdin`, `CloseStdin` and `ResizePty`: to the shim, which owns the task's pty
    /// master and its processes' stdin pipes.
    pub async fn input(&self, task: TaskRef, req: ShimRequest) -> Result<()> {
        let bundle = self.existing(&task).await?;
        shim_client::call(&bundle.socket(), &req).await.map(|_| ()).map_err(|e| gone(e, &task))
    }

    /// `GetMetrics`: cgroup v1 files (or v2 where there is no v1 controller).
    pub async fn metrics(&self, task: TaskRef) -> Result<TaskMetrics> {
        let info = self.get(task.clone()).await?;
        if !matches!(info.status, TaskStatus::Running | TaskStatus::Paused | TaskStatus::Created) {
            return Err(not_running(&task.id));
        }
        // The task's own spec says where it is (the configured parent may have changed since).
        let bundle = self.bundle(&task.namespace, &task.id);
        let cg = std::fs::read(bundle.config())
            .ok()
            .and_then(|c| serde_json::from_slice::<serde_json::Value>(&c).ok())
            .and_then(|c| c.pointer("/linux/cgroupsPath").and_then(|p| p.as_str()).map(str::to_string))
            .filter(|p| p.starts_with('/') && !p.split('/').any(|c| c == ".."))
            .unwrap_or_else(|| self.cgroup_path(&task.namespace, &task.id));
        let read = |p: String| std::fs::read_to_string(p).ok().and_then(|s| s.trim().parse::<u64>().ok());
        let v1 = |ctl: &str, file: &str| read(format!("/sys/fs/cgroup/{ctl}{cg}/{file}"));
        let v2 = |file: &str| read(format!("/sys/fs/cgroup{cg}/{file}"));
        let m = TaskMetrics {
            cpu_ns: v1("cpuacct", "cpuacct.usage").unwrap_or(0),
            memory_bytes: v1("memory", "memory.usage_in_bytes").or_else(|| v2("memory.current")).unwrap_or(0),
            memory_limit: v1("memory", "memory.limit_in_bytes").filter(|l| *l < (1 << 62)).unwrap_or(0),
            pids: v1("pids", "pids.current").or_else(|| v2("pids.current")).unwrap_or(0),
        };
        Ok(m)
    }

    /// `Attach`: streams the process's output from the oldest kept, then live, until it
    /// exits; byte-exact (the log's records put back together).
    pub async fn attach(&self, task: TaskRef, tx: mpsc::Sender<Result<RuntimeResponse>>) {
        if let Err(e) = check(&task) {
            let _ = tx.send(Err(e)).await;
            return;
        }
        let bundle = self.bundle(&task.namespace, &task.id);
        if !bundle.record().exists() {
            let _ = tx.send(Err(no_task(&task.id))).await;
            return;
        }
        let log_path = bundle.read_record().and_then(|r| r.log_path);
        let mut log = Follower::new(self.process_log(&task, log_path.as_deref()));
        let (done_tx, mut done) = tokio::sync::oneshot::channel();
        let waiter = {
            let (rt, task) = (self.clone(), task.clone());
            tokio::spawn(async move {
                let _ = rt.wait(task).await;
                let _ = done_tx.send(());
            })
        };
        // Set once the process has exited: the log is read once more, then the stream ends.
        let mut exited = false;
        loop {
            let finished = exited || waiter.is_finished();
            let records = log.read();
            let any = !records.is_empty();
            for chunk in chunks(records) {
                if tx.send(Ok(RuntimeResponse::Attach(chunk))).await.is_err() {
                    waiter.abort();
                    return;
                }
            }
            if finished && !any {
                return;
            }
            if !any {
                tokio::select! {
                    _ = tokio::time::sleep(ATTACH_POLL) => {}
                    _ = &mut done, if !exited => exited = true,
                    _ = tx.closed() => { waiter.abort(); return; }
                }
            }
        }
    }
}

/// A shim that cannot be reached (its task exited and the shim is gone) as "task not
/// running"; other errors as they are.
fn gone(e: Error, task: &TaskRef) -> Error {
    if e.is(berth_ipc::Code::Unavailable) { not_running(&task.id) } else { e }
}

/// Records as output chunks, consecutive ones of a stream together.
fn chunks(records: Vec<Record>) -> Vec<OutputChunk> {
    let mut out: Vec<OutputChunk> = Vec::new();
    for r in records {
        let bytes = r.bytes();
        match out.last_mut() {
            Some(last) if last.stream == r.stream => last.data.extend_from_slice(&bytes),
            _ => out.push(OutputChunk { stream: r.stream, data: bytes }),
        }
    }
    out
}
