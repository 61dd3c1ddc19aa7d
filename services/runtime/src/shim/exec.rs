//! Exec'd processes: started through the OCI runtime's `exec`, each with its own output
//! log and, if asked, stdin pipe and terminal; an exited exec's id may be used again.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use berth_ipc::events::payload::TaskExecStarted;
use berth_ipc::runtime::{ShimResponse, TaskStatus};
use berth_ipc::{Error, Result};

use super::create::{Shim, io, open_output, read_pid, runtime_stderr};
use super::process::{RuntimeIo, runtime_error};
use super::relay::Output;
use super::state::Exec;
use super::tty::{ConsoleSocket, Tty};
use crate::logfile::LogPaths;

impl Shim {
    /// The output log of the init (`None`) or of an exec'd process.
    pub(super) fn output(&self, exec_id: Option<&str>) -> Option<Arc<Output>> {
        match exec_id {
            None => Some(self.output.clone()),
            Some(e) => self.procs().exec(e).ok().map(|e| e.output.clone()),
        }
    }

    /// The terminal of the init (`None`) or of an exec'd process.
    pub(super) fn terminal(&self, exec_id: Option<&str>) -> Result<Arc<Tty>> {
        let tty = match exec_id {
            None => self.tty.clone(),
            Some(e) => self.procs().exec(e).ok().and_then(|e| e.tty.clone()),
        };
        tty.ok_or_else(|| match exec_id {
            None => Error::precondition(format!("task {}: has no terminal", self.args.id)),
            Some(e) => Error::precondition(format!("exec {e} of task {}: has no terminal", self.args.id)),
        })
    }

    pub(super) fn exec(
        &self,
        exec_id: &str,
        process: &str,
        stdin: bool,
        terminal: bool,
    ) -> Result<ShimResponse> {
        let id = self.args.id.as_str();
        if self.state().status != TaskStatus::Running {
            return Err(Error::precondition(format!("task {id}: not running")));
        }
        self.free_exec_id(exec_id)?;
        let started = self.start_exec(exec_id, process, stdin, terminal);
        if started.is_err() {
            self.procs().unreserve(exec_id);
        }
        started
    }

    /// `exec` once `exec_id` is reserved.
    fn start_exec(&self, exec_id: &str, process: &str, stdin: bool, terminal: bool) -> Result<ShimResponse> {
        let id = self.args.id.as_str();
        let spec = self.bundle.dir.join(format!("exec-{exec_id}.json"));
        let pid_file = self.bundle.dir.join(format!("exec-{exec_id}.pid"));
        std::fs::write(&spec, process).map_err(|e| io("exec spec", e))?;
        let output = open_output(&self.args, Some(exec_id))?;
        // With a terminal, the pipes carry only what the OCI runtime itself writes.
        let (out, err) = output.pipes()?;
        let (spec_s, pid_s) = (spec.display().to_string(), pid_file.display().to_string());
        // A terminal comes over a console socket of its own (a short name: socket paths are
        // limited to 108 bytes).
        let console = match terminal {
            true => Some(ConsoleSocket::bind(
                &self.bundle.shim_dir().join(format!("c{}", self.consoles.fetch_add(1, Ordering::SeqCst))),
            )?),
            false => None,
        };
        let console_s = console.as_ref().map(|c| c.path().display().to_string());
        let mut args = vec!["exec", "--process", &spec_s, "--pid-file", &pid_s, "--detach"];
        if let Some(path) = &console_s {
            args.extend(["--console-socket", path.as_str()]);
        }
        args.push(id);
        let input = if stdin { Some(self.inputs.open(Some(exec_id))?) } else { None };
        let since = self.reaper.mark();
        let status = self.runtime.call_with(&args, RuntimeIo { stdin: input, stdout: out, stderr: err })?;
        if status != 0 {
            if stdin {
                let _ = self.inputs.close(id, Some(exec_id));
            }
            return Err(runtime_error(&self.args.runtime, "exec", &runtime_stderr(&output)));
        }
        let tty = match console {
            Some(console) => Some(Tty::start(console.receive(Duration::from_secs(5))?, output.clone())?),
            None => None,
        };
        let pid = read_pid(&pid_file).ok_or_else(|| Error::internal(format!("exec {exec_id}: no pid")))?;
        let upid = u32::try_from(pid).unwrap_or(0);
        // Added, told started and its exit either told now or left to the exit hook, in
        // one critical section: the hook records an exit in the reaper before it looks for
        // the exec, so one of the two tells it, after its start.
        let mut p = self.procs();
        let exited = self.reaper.exited(pid, since);
        p.add(exec_id, Exec { pid, since, output, tty }, exited.is_some());
        let events = &self.exits.events;
        events.publish(TaskExecStarted {
            container_id: id.to_string(),
            exec_id: exec_id.to_string(),
            pid: upid,
        });
        if let Some(exit) = exited {
            events.publish(super::exit::exit_event(&self.exits, exec_id, pid, exit));
        }
        Ok(ShimResponse::Pid(upid))
    }

    /// Makes `exec_id` free for a new process and reserves it ([`super::state::Procs::reserve`]):
    /// refused while a process of that id runs or starts; one that has exited is forgotten (with its output log, stdin and terminal), as ctr
    /// lets an exec id be used again once its process is gone.
    fn free_exec_id(&self, exec_id: &str) -> Result<()> {
        let reaper = &self.reaper;
        let freed = self.procs().reserve(exec_id, |pid, since| reaper.exited(pid, since).is_some())?;
        if freed.is_none() {
            return Ok(());
        }
        let _ = self.inputs.close(&self.args.id, Some(exec_id));
        for file in LogPaths::new(&self.args.logs, Some(exec_id)).existing() {
            let _ = std::fs::remove_file(file);
        }
        Ok(())
    }
}
