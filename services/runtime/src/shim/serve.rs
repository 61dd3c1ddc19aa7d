//! The shim's container and its private socket: one JSON line per request, one per answer.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::os::fd::AsFd;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::process::Stdio;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use berth_ipc::events::payload::{TaskExecStarted, TaskExit, TaskStart};
use berth_ipc::runtime::{ExitInfo, ShimRequest, ShimResponse, ShimState, TaskStatus};
use berth_ipc::{Error, Result};

use super::ShimArgs;
use super::events::ShimEvents;
use super::exit::{self, EarlyDelete, ExitCtx, Order};
use super::input::Inputs;
use super::oom::OomWatch;
use super::process::{Runner, runtime_error};
use super::reaper::Reaper;
use super::relay::Output;
use super::tty::{ConsoleSocket, Tty};
use crate::bundle::Bundle;
use crate::logfile::LogPaths;

/// How long a container started by `run` waits for the runtime service's `Start` before
/// its `/tasks/start` is published without it.
const START_GRACE: Duration = Duration::from_secs(10);

/// How long the shim waits after its last activity before making itself small again.
const IDLE_RELEASE: Duration = Duration::from_millis(300);

/// A shim with a created container.
pub struct Shim {
    args: ShimArgs,
    bundle: Bundle,
    runner: Runner,
    init: i32,
    /// The reaper's mark taken before the init was spawned.
    init_since: u64,
    status: Mutex<TaskStatus>,
    /// Each exec's pid and the reaper's mark taken before it was spawned.
    execs: Mutex<HashMap<String, (i32, u64)>>,
    order: Arc<Mutex<Order>>,
    events: Arc<ShimEvents>,
    listener: UnixListener,
    tty: Option<Arc<Tty>>,
    /// The init's output log.
    output: Arc<Output>,
    /// Output logs of exec'd processes, by exec id.
    exec_outputs: Mutex<HashMap<String, Arc<Output>>>,
    /// Terminals of exec'd processes, by exec id.
    exec_ttys: Mutex<HashMap<String, Arc<Tty>>>,
    /// Console sockets made so far (names them apart).
    consoles: std::sync::atomic::AtomicUsize,
    inputs: Inputs,
    /// A `Start` was answered (for a container started by `run`).
    start_answered: std::sync::atomic::AtomicBool,
    early: Arc<EarlyDelete>,
    oom: Arc<OnceLock<OomWatch>>,
}

fn io(what: &str, e: std::io::Error) -> Error {
    Error::internal(format!("{what}: {e}"))
}

/// How long `Wait` waits for the output a process wrote before its exit to reach the log
/// (a process it left behind may hold its stdout open for longer).
const DRAIN_WAIT: Duration = Duration::from_millis(500);

/// The log of the init (`None`) or an exec.
fn open_output(args: &ShimArgs, exec: Option<&str>) -> Result<Arc<Output>> {
    Output::open(LogPaths::new(&args.logs, exec), args.log_max_bytes, args.log_max_files)
}

/// What the OCI runtime wrote on stderr before failing, once it is in.
fn runtime_stderr(output: &Output) -> Vec<u8> {
    output.wait_drained(DRAIN_WAIT);
    output.stderr_tail()
}

impl Shim {
    /// Starts the reaper, runs the runtime's `create`, binds the socket.
    pub fn create(args: ShimArgs) -> Result<Shim> {
        let bundle = Bundle { dir: args.bundle.clone() };
        let init = Arc::new(AtomicI32::new(0));
        let order = Arc::new(Mutex::new(Order::default()));
        let events = Arc::new(ShimEvents::new(args.state.clone(), args.namespace.clone()));
        let cell = Arc::new(OnceLock::new());
        let early = Arc::new(EarlyDelete::default());
        let oom = Arc::new(OnceLock::new());
        let ctx = ExitCtx {
            id: args.id.clone(),
            bundle: bundle.clone(),
            init: init.clone(),
            order: order.clone(),
            events: events.clone(),
            runner: cell.clone(),
            early: early.clone(),
            oom: oom.clone(),
        };
        let hook = exit::hook(ctx.clone());
        let reaper = Reaper::start(hook);
        let runner = Runner { runtime: args.runtime.clone(), root: args.runtime_root.clone(), reaper };
        let _ = cell.set(runner.clone());
        let shim_dir = bundle.shim_dir();
        let _ = std::fs::remove_dir_all(&shim_dir);
        std::fs::DirBuilder::new().mode(0o700).create(&shim_dir).map_err(|e| io("shim dir", e))?;
        let (terminal, stdin) = super::tty::wants(&bundle.config());
        let console = if terminal { Some(ConsoleSocket::bind(&bundle.console())?) } else { None };
        let inputs = Inputs::default();
        let input = match stdin && !terminal {
            true => Stdio::from(inputs.open(None)?),
            false => Stdio::null(),
        };
        let output = open_output(&args, None)?;
        // With a terminal, the pipes carry only what the OCI runtime itself writes.
        let (out, err) = output.pipes()?;
        let dir = bundle.dir.display().to_string();
        let pid_file = bundle.init_pid().display().to_string();
        let console_path = console.as_ref().map(|c| c.path().display().to_string());
        let verb = if args.start { ["run", "--detach"].as_slice() } else { ["create"].as_slice() };
        let mut create = verb.to_vec();
        create.extend(["--bundle", &dir, "--pid-file", &pid_file]);
        if let Some(path) = &console_path {
            create.extend(["--console-socket", path.as_str()]);
        }
        create.push(&args.id);
        let init_since = runner.reaper.mark();
        let status = runner.run_with(&create, [input, Stdio::from(out), Stdio::from(err)])?;
        if status != 0 {
            let _ = runner.run(&["delete", "--force", &args.id]);
            return Err(runtime_error(&args.runtime, verb[0], &runtime_stderr(&output)));
        }
        // The cgroup exists now; before the init's pid is known (its exit may be handled then).
        let _ = oom.set(OomWatch::new(&bundle.config()));
        super::oom::start_watcher(ctx.clone());
        let tty = match console.map(|c| c.receive(Duration::from_secs(5))) {
            None => None,
            Some(master) => {
                let tty = master.and_then(|m| Tty::start(m, output.clone()));
                if tty.is_err() {
                    let _ = runner.run(&["delete", "--force", &args.id]);
                }
                Some(tty?)
            }
        };
        let pid: i32 = std::fs::read_to_string(bundle.init_pid())
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .ok_or_else(|| Error::internal(format!("{}: no init pid after create", args.runtime)))?;
        exit::init_known(&ctx, &runner.reaper, pid, init_since);
        let listener = UnixListener::bind(bundle.socket()).map_err(|e| io("shim socket", e))?;
        std::fs::set_permissions(bundle.socket(), std::fs::Permissions::from_mode(0o600))
            .map_err(|e| io("shim socket", e))?;
        let status = if args.start { TaskStatus::Running } else { TaskStatus::Created };
        Ok(Shim {
            args,
            bundle,
            runner,
            init: pid,
            init_since,
            status: Mutex::new(status),
            execs: Mutex::new(HashMap::new()),
            order,
            events,
            listener,
            tty,
            output,
            exec_outputs: Mutex::new(HashMap::new()),
            exec_ttys: Mutex::new(HashMap::new()),
            consoles: std::sync::atomic::AtomicUsize::new(0),
            inputs,
            start_answered: std::sync::atomic::AtomicBool::new(false),
            early,
            oom,
        })
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
                if active.load(Ordering::SeqCst) == 0 && !shim.events.busy() {
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
            let resp = match serde_json::from_str::<ShimRequest>(&line) {
                Ok(ShimRequest::Shutdown) => match self.shutdown() {
                    Ok(()) => {
                        let _ = writeln!(write, "{}", json(&ShimResponse::Ok));
                        let _ = write.flush();
                        self.delete_exited();
                        std::process::exit(0);
                    }
                    Err(e) => ShimResponse::Error(e),
                },
                Ok(req) => self.handle(req).unwrap_or_else(ShimResponse::Error),
                Err(e) => ShimResponse::Error(Error::invalid(format!("shim request: {e}"))),
            };
            if writeln!(write, "{}", json(&resp)).is_err() || write.flush().is_err() {
                return;
            }
        }
    }

    fn state(&self) -> ShimState {
        let exit = self.runner.reaper.exited(self.init, self.init_since).map(|e| self.init_exit(e));
        let status = if exit.is_some() {
            TaskStatus::Stopped
        } else {
            *self.status.lock().unwrap_or_else(|p| p.into_inner())
        };
        ShimState { pid: self.init_pid(), status, exit, shim_pid: std::process::id() }
    }

    /// The init's exit as told: marked when the OOM killer struck in the container.
    fn init_exit(&self, exit: ExitInfo) -> ExitInfo {
        ExitInfo { oom_killed: self.oom.get().is_some_and(OomWatch::killed), ..exit }
    }

    fn set(&self, status: TaskStatus) {
        *self.status.lock().unwrap_or_else(|p| p.into_inner()) = status;
    }

    /// A process's pid and the reaper's mark taken before its spawn: the init's, or an
    /// exec's.
    fn process(&self, exec_id: Option<&str>) -> Result<(i32, u64)> {
        let Some(exec_id) = exec_id else { return Ok((self.init, self.init_since)) };
        self.execs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(exec_id)
            .copied()
            .ok_or_else(|| Error::not_found(format!("exec {exec_id}: not found")))
    }

    fn handle(&self, req: ShimRequest) -> Result<ShimResponse> {
        let id = self.args.id.as_str();
        match req {
            ShimRequest::Start => {
                // Started by `run` already: the first `Start` only has `/tasks/start` (and an
                // exit held back behind it) published.
                let ran = self.args.start && !self.start_answered.swap(true, Ordering::SeqCst);
                if !ran {
                    if self.state().status != TaskStatus::Created {
                        return Err(Error::precondition(format!("task {id}: already started")));
                    }
                    self.runner.run(&["start", id])?;
                    self.set(TaskStatus::Running);
                }
                self.publish_start();
                Ok(ShimResponse::Pid(self.init_pid()))
            }
            ShimRequest::Kill { exec_id, signal, all } => {
                let sig = nix::sys::signal::Signal::try_from(signal)
                    .map_err(|_| Error::invalid(format!("signal {signal}: unknown")))?;
                if all {
                    self.runner.run(&["kill", "--all", id, &signal.to_string()])?;
                    return Ok(ShimResponse::Ok);
                }
                let (pid, since) = self.process(exec_id.as_deref())?;
                if self.runner.reaper.exited(pid, since).is_some() {
                    return Err(Error::not_found(format!("task {id}: process already finished")));
                }
                nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), sig)
                    .map_err(|e| Error::internal(format!("kill {pid}: {e}")))?;
                Ok(ShimResponse::Ok)
            }
            ShimRequest::Exec { exec_id, process, stdin, terminal } => {
                self.exec(&exec_id, &process, stdin, terminal)
            }
            ShimRequest::Pause => {
                self.runner.run(&["pause", id])?;
                self.set(TaskStatus::Paused);
                Ok(ShimResponse::Ok)
            }
            ShimRequest::Resume => {
                self.runner.run(&["resume", id])?;
                self.set(TaskStatus::Running);
                Ok(ShimResponse::Ok)
            }
            ShimRequest::State => Ok(ShimResponse::State(self.state())),
            ShimRequest::Wait { exec_id } => {
                let (pid, since) = self.process(exec_id.as_deref())?;
                let mut exit = self.runner.reaper.wait(pid, since, true);
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
                let out = self.runner.run(&["ps", "--format", "json", id])?;
                let pids: Vec<u32> = serde_json::from_slice(&out).unwrap_or_default();
                Ok(ShimResponse::Pids(pids))
            }
            ShimRequest::Shutdown => Ok(ShimResponse::Ok),
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
        }
    }

    /// Publishes `/tasks/start` (once), then an exit held back until it was.
    fn publish_start(&self) {
        let id = self.args.id.as_str();
        let mut o = self.order.lock().unwrap_or_else(|p| p.into_inner());
        if o.started {
            return;
        }
        self.events.publish(TaskStart { container_id: id.to_string(), pid: self.init_pid() });
        o.started = true;
        if let Some(oom) = o.pending_oom.take() {
            self.events.publish(oom);
        }
        if let Some(exit) = o.pending.take() {
            self.events.publish(exit);
            self.early.begin(self.runner.clone(), id.to_string());
        }
    }

    /// The output log of the init (`None`) or of an exec'd process.
    fn output(&self, exec_id: Option<&str>) -> Option<Arc<Output>> {
        match exec_id {
            None => Some(self.output.clone()),
            Some(e) => self.exec_outputs.lock().unwrap_or_else(|p| p.into_inner()).get(e).cloned(),
        }
    }

    /// The terminal of the init (`None`) or of an exec'd process.
    fn terminal(&self, exec_id: Option<&str>) -> Result<Arc<Tty>> {
        let tty = match exec_id {
            None => self.tty.clone(),
            Some(e) => self.exec_ttys.lock().unwrap_or_else(|p| p.into_inner()).get(e).cloned(),
        };
        tty.ok_or_else(|| match exec_id {
            None => Error::precondition(format!("task {}: has no terminal", self.args.id)),
            Some(e) => Error::precondition(format!("exec {e} of task {}: has no terminal", self.args.id)),
        })
    }

    fn exec(&self, exec_id: &str, process: &str, stdin: bool, terminal: bool) -> Result<ShimResponse> {
        let id = self.args.id.as_str();
        if self.state().status != TaskStatus::Running {
            return Err(Error::precondition(format!("task {id}: not running")));
        }
        self.free_exec_id(exec_id)?;
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
        let input = if stdin { Stdio::from(self.inputs.open(Some(exec_id))?) } else { Stdio::null() };
        let since = self.runner.reaper.mark();
        let status = self.runner.run_with(&args, [input, Stdio::from(out), Stdio::from(err)])?;
        if status != 0 {
            if stdin {
                let _ = self.inputs.close(id, Some(exec_id));
            }
            return Err(runtime_error(&self.args.runtime, "exec", &runtime_stderr(&output)));
        }
        self.exec_outputs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(exec_id.to_string(), output.clone());
        if let Some(console) = console {
            let master = console.receive(Duration::from_secs(5))?;
            let tty = Tty::start(master, output)?;
            self.exec_ttys.lock().unwrap_or_else(|p| p.into_inner()).insert(exec_id.to_string(), tty);
        }
        let pid: i32 = std::fs::read_to_string(&pid_file)
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .ok_or_else(|| Error::internal(format!("exec {exec_id}: no pid")))?;
        self.execs.lock().unwrap_or_else(|p| p.into_inner()).insert(exec_id.to_string(), (pid, since));
        let upid = u32::try_from(pid).unwrap_or(0);
        let mut o = self.order.lock().unwrap_or_else(|p| p.into_inner());
        self.events.publish(TaskExecStarted {
            container_id: id.to_string(),
            exec_id: exec_id.to_string(),
            pid: upid,
        });
        match self.runner.reaper.exited(pid, since) {
            Some(exit) => self.events.publish(TaskExit {
                container_id: id.to_string(),
                id: exec_id.to_string(),
                pid: upid,
                exit_status: exit.status,
                exited_at: exit.exited_at,
            }),
            None => {
                o.exec_pids.insert(pid, exec_id.to_string());
            }
        }
        Ok(ShimResponse::Pid(upid))
    }

    /// Makes `exec_id` free for a new process: refused while a process of that id runs;
    /// one that has exited is forgotten (with its output log, stdin and terminal), as ctr
    /// lets an exec id be used again once its process is gone.
    fn free_exec_id(&self, exec_id: &str) -> Result<()> {
        let mut execs = self.execs.lock().unwrap_or_else(|p| p.into_inner());
        let Some(&(pid, since)) = execs.get(exec_id) else { return Ok(()) };
        if self.runner.reaper.exited(pid, since).is_none() {
            return Err(Error::already_exists(format!("exec {exec_id}: already exists and still runs")));
        }
        execs.remove(exec_id);
        drop(execs);
        self.exec_outputs.lock().unwrap_or_else(|p| p.into_inner()).remove(exec_id);
        self.exec_ttys.lock().unwrap_or_else(|p| p.into_inner()).remove(exec_id);
        let _ = self.inputs.close(&self.args.id, Some(exec_id));
        for file in LogPaths::new(&self.args.logs, Some(exec_id)).existing() {
            let _ = std::fs::remove_file(file);
        }
        Ok(())
    }

    /// Waits for the early delete of an exited container, or deletes it now (forcibly if
    /// need be), so that the OCI runtime keeps nothing of it once this shim is gone.
    fn delete_exited(&self) {
        super::sys::background_priority();
        let id = self.args.id.as_str();
        if self.state().status == TaskStatus::Stopped
            && !self.early.wait(Duration::from_secs(10))
            && self.runner.run(&["delete", id]).is_err()
        {
            let _ = self.runner.run(&["delete", "--force", id]);
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
                self.runner.run(&["delete", "--force", id])?;
                let _ = self.runner.reaper.wait(self.init, self.init_since, true);
            }
            _ => return Err(Error::precondition(format!("task {id}: still running; kill it first"))),
        }
        let (oom, pending) = {
            let mut o = self.order.lock().unwrap_or_else(|p| p.into_inner());
            (o.pending_oom.take(), o.pending.take())
        };
        if let Some(oom) = oom {
            self.events.publish(oom);
        }
        if let Some(exit) = pending {
            self.events.publish(exit);
        }
        // Give the events a moment to reach the events service.
        self.events.finish(Duration::from_secs(2));
        let _ = std::fs::remove_file(self.bundle.socket());
        Ok(())
    }
}

fn json(resp: &ShimResponse) -> String {
    serde_json::to_string(resp).unwrap_or_else(|_| "\"Ok\"".into())
}
