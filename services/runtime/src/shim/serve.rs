//! The shim's private socket: one JSON line per request, one per answer (versioned: see
//! [`SHIM_PROTOCOL`]), and what each request does to the container.

use std::io::{BufRead, BufReader, Write};
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::Duration;

use berth_ipc::runtime::{ExitInfo, SHIM_PROTOCOL, ShimRequest, ShimResponse, ShimState, TaskStatus};
use berth_ipc::{Error, Result};

use super::create::{DRAIN_WAIT, Shim};
use super::oom::OomWatch;
use super::state::Procs;

/// How long a container started by `run` waits for the runtime service's `Start` before
/// its `/tasks/start` is published without it.
const START_GRACE: Duration = Duration::from_secs(10);

/// How long the shim waits after its last activity before making itself small again.
const IDLE_RELEASE: Duration = Duration::from_millis(300);

impl Shim {
    /// The shared state, locked ([`super::state::Shared::lock`]).
    pub(super) fn procs(&self) -> std::sync::MutexGuard<'_, Procs> {
        self.shared.lock()
    }

    /// The container's init pid.
    pub fn init_pid(&self) -> u32 {
        u32::try_from(self.init).unwrap_or(0)
    }

    /// Serves connections until `Shutdown`.
    pub fn serve(self) {
        let shim = Arc::new(self);
        if shim.args.start {
            // A runtime service that died between this `run` and its `Start` never asks: the
            // start (and any exit behind it) is published anyway, a little late.
            let shim = shim.clone();
            let _ = std::thread::Builder::new().name("start".into()).stack_size(64 << 10).spawn(move || {
                std::thread::sleep(START_GRACE);
                shim.publish_start();
            });
        }
        let active = Arc::new(AtomicI32::new(0));
        let mut dirty = true;
        loop {
            // Once nothing has run for a moment (no connection, no event in flight), the
            // heap is trimmed and the code pages unmapped, from this thread, which then only
            // runs this loop.
            let timeout = dirty.then_some(IDLE_RELEASE);
            // An error (EINTR) counts as readable: the accept then simply fails and retries.
            if !berth_service_kit::fd::wait_readable(shim.listener.as_fd(), timeout).unwrap_or(true) {
                if active.load(Ordering::SeqCst) == 0 && !shim.exits.events.busy() {
                    super::sys::trim_heap();
                    super::sys::release_file_pages();
                    dirty = false;
                }
                continue;
            }
            let Ok((conn, _)) = shim.listener.accept() else { continue };
            dirty = true;
            let (shim, count) = (shim.clone(), active.clone());
            active.fetch_add(1, Ordering::SeqCst);
            let spawned = std::thread::Builder::new().stack_size(256 << 10).spawn(move || {
                shim.connection(conn);
                count.fetch_sub(1, Ordering::SeqCst);
            });
            if spawned.is_err() {
                active.fetch_sub(1, Ordering::SeqCst);
            }
        }
    }

    fn connection(&self, conn: UnixStream) {
        // The socket's dir is 0700, and the peer is checked too: only our own uid (root)
        // may drive the container (exec, kill) through its shim.
        let me = nix::unistd::geteuid().as_raw();
        match nix::sys::socket::getsockopt(&conn, nix::sys::socket::sockopt::PeerCredentials) {
            Ok(peer) if peer.uid() == me || peer.uid() == 0 => {}
            _ => return,
        }
        let Ok(write) = conn.try_clone() else { return };
        let mut write = std::io::BufWriter::new(write);
        let mut lines = BufReader::new(conn).lines();
        while let Some(Ok(line)) = lines.next() {
            let resp = match serde_json::from_str::<ShimRequest>(&line).map(unversioned) {
                Ok(Err(e)) => ShimResponse::Error(e),
                Ok(Ok(req)) => match req {
                    ShimRequest::Shutdown => match self.shutdown() {
                        Ok(()) => {
                            let _ = writeln!(write, "{}", json(&ShimResponse::Ok));
                            let _ = write.flush();
                            self.delete_exited();
                            std::process::exit(0);
                        }
                        Err(e) => ShimResponse::Error(e),
                    },
                    req => self.handle(req).unwrap_or_else(ShimResponse::Error),
                },
                Err(e) => ShimResponse::Error(Error::invalid(format!("shim request: {e}"))),
            };
            if writeln!(write, "{}", json(&resp)).is_err() || write.flush().is_err() {
                return;
            }
        }
    }

    pub(super) fn state(&self) -> ShimState {
        let exit = self.reaper.exited(self.init, self.init_since).map(|e| self.init_exit(e));
        let status = if exit.is_some() { TaskStatus::Stopped } else { self.procs().status };
        ShimState { pid: self.init_pid(), status, exit, shim_pid: std::process::id() }
    }

    /// The init's exit as told: marked when the OOM killer struck in the container.
    fn init_exit(&self, exit: ExitInfo) -> ExitInfo {
        ExitInfo { oom_killed: self.exits.oom.get().is_some_and(OomWatch::killed), ..exit }
    }

    fn set(&self, status: TaskStatus) {
        self.procs().status = status;
    }

    /// A process's pid and the reaper's mark taken before its spawn: the init's, or an
    /// exec's.
    fn process(&self, exec_id: Option<&str>) -> Result<(i32, u64)> {
        let Some(exec_id) = exec_id else { return Ok((self.init, self.init_since)) };
        self.procs().exec(exec_id).map(|e| (e.pid, e.since))
    }

    fn handle(&self, req: ShimRequest) -> Result<ShimResponse> {
        let id = self.args.id.as_str();
        match req {
            ShimRequest::Start => {
                // Started by `run` already: the first `Start` only has `/tasks/start` (and an
                // exit held back behind it) published.
                let ran = self.args.start && !self.procs().answer_start();
                if !ran {
                    if self.state().status != TaskStatus::Created {
                        return Err(Error::precondition(format!("task {id}: already started")));
                    }
                    self.runtime.call(&["start", id])?;
                    self.set(TaskStatus::Running);
                }
                self.publish_start();
                Ok(ShimResponse::Pid(self.init_pid()))
            }
            ShimRequest::Kill { exec_id, signal, all } => {
                let sig = nix::sys::signal::Signal::try_from(signal)
                    .map_err(|_| Error::invalid(format!("signal {signal}: unknown")))?;
                if all {
                    self.runtime.call(&["kill", "--all", id, &signal.to_string()])?;
                    return Ok(ShimResponse::Ok);
                }
                let (pid, since) = self.process(exec_id.as_deref())?;
                if self.reaper.exited(pid, since).is_some() {
                    return Err(Error::not_found(format!("task {id}: process already finished")));
                }
                nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), sig)
                    .map_err(|e| Error::internal_cause(format_args!("kill {pid}"), e))?;
                Ok(ShimResponse::Ok)
            }
            ShimRequest::Exec { exec_id, process, stdin, terminal } => {
                self.exec(&exec_id, &process, stdin, terminal)
            }
            ShimRequest::Pause => {
                self.runtime.call(&["pause", id])?;
                self.set(TaskStatus::Paused);
                Ok(ShimResponse::Ok)
            }
            ShimRequest::Resume => {
                self.runtime.call(&["resume", id])?;
                self.set(TaskStatus::Running);
                Ok(ShimResponse::Ok)
            }
            ShimRequest::State => Ok(ShimResponse::State(self.state())),
            ShimRequest::Wait { exec_id } => {
                let (pid, since) = self.process(exec_id.as_deref())?;
                let mut exit = self.reaper.wait(pid, since, true);
                if exec_id.is_none() {
                    exit = self.init_exit(exit);
                }
                // Everything the process wrote to its terminal reaches the log before its
                // exit is told.
                if let Ok(tty) = self.terminal(exec_id.as_deref()) {
                    tty.wait_drained(DRAIN_WAIT);
                } else if let Some(output) = self.output(exec_id.as_deref()) {
                    output.wait_drained(DRAIN_WAIT);
                }
                Ok(ShimResponse::Exit(exit))
            }
            ShimRequest::Ps => {
                let out = self.runtime.call(&["ps", "--format", "json", id])?;
                let pids: Vec<u32> = serde_json::from_slice(&out).unwrap_or_default();
                Ok(ShimResponse::Pids(pids))
            }
            ShimRequest::Shutdown => Ok(ShimResponse::Ok),
            ShimRequest::Versioned { .. } => Err(Error::invalid("shim request: Versioned inside Versioned")),
            ShimRequest::Stdin { exec_id, data } => {
                let exec_id = exec_id.as_deref();
                if let Ok(tty) = self.terminal(exec_id) {
                    return tty.write(&data).map(|()| ShimResponse::Ok);
                }
                if exec_id.is_none() && !self.inputs.has(None) {
                    return Err(Error::precondition(format!("task {id}: has no terminal and no open stdin")));
                }
                self.inputs.write(id, exec_id, &data).map(|()| ShimResponse::Ok)
            }
            ShimRequest::CloseStdin { exec_id } => {
                self.inputs.close(id, exec_id.as_deref()).map(|()| ShimResponse::Ok)
            }
            ShimRequest::Resize { exec_id, cols, rows } => {
                self.terminal(exec_id.as_deref())?.resize(cols, rows).map(|()| ShimResponse::Ok)
            }
            ShimRequest::ReopenLog => self.reopen_log(),
        }
    }

    /// `ReopenLog`: the init's log closed and opened again at its path, while it runs (as
    /// containerd's CRI refuses a container that is not running).
    fn reopen_log(&self) -> Result<ShimResponse> {
        let id = self.args.id.as_str();
        if !matches!(self.state().status, TaskStatus::Running | TaskStatus::Paused) {
            return Err(Error::precondition(format!("container {id} is not running")));
        }
        self.output.reopen().map_err(|e| {
            Error::io_at(format_args!("container {id}: reopen log"), &self.output.log_path(), e)
        })?;
        Ok(ShimResponse::Ok)
    }

    /// Publishes `/tasks/start` (once), then an exit held back until it was.
    fn publish_start(&self) {
        super::exit::publish_start(&self.exits, self.init_pid());
    }

    /// Waits for the early delete of an exited container, or deletes it now (forcibly if
    /// need be), so that the OCI runtime keeps nothing of it once this shim is gone.
    fn delete_exited(&self) {
        super::sys::background_priority();
        let id = self.args.id.as_str();
        if self.state().status == TaskStatus::Stopped && !self.shared.early_deleted(Duration::from_secs(10)) {
            super::process::delete_or_force(&*self.runtime, id);
        }
    }

    fn shutdown(&self) -> Result<()> {
        let id = self.args.id.as_str();
        let state = self.state();
        match state.status {
            // The runtime's delete of an exited container (begun at its exit) is finished
            // after the answer, by `delete_exited`: it needs neither the bundle nor the
            // rootfs, and a create of the same id waits for the runtime's state to go.
            TaskStatus::Stopped => {}
            TaskStatus::Created => {
                self.runtime.call(&["delete", "--force", id])?;
                let _ = self.reaper.wait(self.init, self.init_since, true);
            }
            _ => return Err(Error::precondition(format!("task {id}: still running; kill it first"))),
        }
        let events = &self.exits.events;
        {
            // What a start that never came held back.
            let mut p = self.procs();
            if let Some(oom) = p.pending_oom.take() {
                events.publish(oom);
            }
            if let Some(exit) = p.pending.take() {
                events.publish(exit);
            }
        }
        // Give the events a moment to reach the events service.
        events.finish(Duration::from_secs(2));
        let _ = std::fs::remove_file(self.bundle.socket());
        Ok(())
    }
}

/// The last resort of [`json`]: an internal error, written out by hand.
const UNSERIALIZABLE: &str = r#"{"Error":{"code":"Internal","message":"shim answer: not serializable"}}"#;

/// An answer as its JSON line. One that cannot be serialized is answered as an error
/// saying so, never as a success.
pub(super) fn json(resp: &ShimResponse) -> String {
    serde_json::to_string(resp).unwrap_or_else(|e| {
        let error = ShimResponse::Error(Error::internal_cause("shim answer: not serializable", e));
        serde_json::to_string(&error).unwrap_or_else(|_| UNSERIALIZABLE.into())
    })
}

/// The request inside a versioned one (a bare one is protocol 0's); a protocol newer than
/// this shim's is refused.
fn unversioned(req: ShimRequest) -> Result<ShimRequest> {
    match req {
        ShimRequest::Versioned { protocol, .. } if protocol > SHIM_PROTOCOL => {
            Err(Error::precondition(format!(
                "shim: request speaks shim protocol {protocol}, this shim {SHIM_PROTOCOL}; restart the task to upgrade it"
            )))
        }
        ShimRequest::Versioned { request, .. } => Ok(*request),
        bare => Ok(bare),
    }
}

#[cfg(test)]
#[path = "serve_tests.rs"]
mod double_tests;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versioned_requests_are_unwrapped_and_a_newer_protocol_is_refused_by_number() {
        let inner = |protocol| ShimRequest::Versioned { protocol, request: Box::new(ShimRequest::Ps) };
        assert_eq!(unversioned(inner(SHIM_PROTOCOL)).ok(), Some(ShimRequest::Ps));
        assert_eq!(unversioned(inner(0)).ok(), Some(ShimRequest::Ps));
        assert_eq!(unversioned(ShimRequest::State).ok(), Some(ShimRequest::State), "protocol 0: bare");
        let e = unversioned(inner(SHIM_PROTOCOL + 1)).expect_err("newer refused");
        assert!(e.is(berth_ipc::Code::FailedPrecondition), "{e}");
        assert!(e.to_string().contains(&format!("protocol {}", SHIM_PROTOCOL + 1)), "{e}");
    }

    #[test]
    fn an_answer_line_is_the_answer_as_json() {
        assert_eq!(json(&ShimResponse::Ok), r#""Ok""#);
        let e = ShimResponse::Error(Error::internal("x"));
        let back: ShimResponse = serde_json::from_str(&json(&e)).expect("parses");
        assert_eq!(back, e);
        let last: ShimResponse = serde_json::from_str(UNSERIALIZABLE).expect("the fallback parses");
        assert!(matches!(last, ShimResponse::Error(e) if e.is(berth_ipc::Code::Internal)));
    }
}
