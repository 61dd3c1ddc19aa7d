//! The shim's [`Shim`]: its reaper started, the OCI runtime's `create` (or `run --detach`)
//! done, its terminal received and its socket bound. Serving it is [`super::serve`].

use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::os::unix::net::UnixListener;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use berth_ipc::runtime::TaskStatus;
use berth_ipc::{Error, Result};

use super::ShimArgs;
use super::events::ShimEvents;
use super::exit::{self, ExitCtx};
use super::input::Inputs;
use super::oom::OomWatch;
use super::process::{Runner, RuntimeCalls, RuntimeIo, runtime_error};
use super::reaper::{OnExit, Reaper};
use super::relay::Output;
use super::state::Shared;
use super::tty::{ConsoleSocket, Tty};
use crate::bundle::Bundle;
use crate::logfile::LogPaths;

/// A shim with a created container.
pub struct Shim {
    pub(super) args: ShimArgs,
    pub(super) bundle: Bundle,
    /// The OCI runtime: every verb goes through it.
    pub(super) runtime: Arc<dyn RuntimeCalls>,
    /// Every exit the shim sees.
    pub(super) reaper: Arc<Reaper>,
    pub(super) init: i32,
    /// The reaper's mark taken before the init was spawned.
    pub(super) init_since: u64,
    /// Everything its threads share, under one lock ([`Shared`]).
    pub(super) shared: Arc<Shared>,
    /// What the reaper's exit hook works with (the same state, events, OOM counter).
    pub(super) exits: ExitCtx,
    pub(super) listener: UnixListener,
    pub(super) tty: Option<Arc<Tty>>,
    /// The init's output log.
    pub(super) output: Arc<Output>,
    /// Console sockets made so far (names them apart).
    pub(super) consoles: std::sync::atomic::AtomicUsize,
    pub(super) inputs: Inputs,
}

pub(super) fn io(what: &str, e: std::io::Error) -> Error {
    Error::internal_cause(what, e)
}

/// How long `Wait` waits for the output a process wrote before its exit to reach the log
/// (a process it left behind may hold its stdout open for longer).
pub(super) const DRAIN_WAIT: Duration = Duration::from_millis(500);

/// The log of the init (`None`: at `--log-path` if given) or an exec.
pub(super) fn open_output(args: &ShimArgs, exec: Option<&str>) -> Result<Arc<Output>> {
    let paths = match (&args.log_path, exec) {
        (Some(path), None) => LogPaths::at(path),
        _ => LogPaths::new(&args.logs, exec),
    };
    Output::open(paths, args.log_max_bytes, args.log_max_files)
        .map_err(|e| e.context(format!("container {}", args.id)))
}

/// What the OCI runtime wrote on stderr before failing, once it is in.
pub(super) fn runtime_stderr(output: &Output) -> Vec<u8> {
    output.wait_drained(DRAIN_WAIT);
    output.stderr_tail()
}

/// Starts the reaper thread with the exit hook and answers it with the runner of the OCI
/// runtime the shim was told.
fn start_reaper(args: &ShimArgs, hook: OnExit) -> (Arc<Reaper>, Arc<dyn RuntimeCalls>) {
    let reaper = Reaper::start(hook);
    let runner =
        Runner { runtime: args.runtime.clone(), root: args.runtime_root.clone(), reaper: reaper.clone() };
    (reaper, Arc::new(runner))
}

/// The shim's private dir, made afresh (0700).
fn make_shim_dir(bundle: &Bundle) -> Result<()> {
    let shim_dir = bundle.shim_dir();
    let _ = std::fs::remove_dir_all(&shim_dir);
    if let Some(parent) = shim_dir.parent() {
        std::fs::DirBuilder::new()
            .mode(0o700)
            .recursive(true)
            .create(parent)
            .map_err(|e| io("shim dir", e))?;
    }
    std::fs::DirBuilder::new().mode(0o700).create(&shim_dir).map_err(|e| io("shim dir", e))
}

/// The pid the OCI runtime wrote in `pid_file`.
pub(super) fn read_pid(pid_file: &std::path::Path) -> Option<i32> {
    std::fs::read_to_string(pid_file).ok().and_then(|s| s.trim().parse().ok())
}

impl Shim {
    /// Starts the reaper, runs the runtime's `create`, binds the socket.
    pub fn create(args: ShimArgs) -> Result<Shim> {
        Shim::create_on(args, start_reaper)
    }

    /// [`Shim::create`] with the reaper and the OCI runtime `start` makes from the exit hook
    /// (a test's: a reaper without its thread and a runtime double).
    pub(super) fn create_on(
        args: ShimArgs,
        start: impl FnOnce(&ShimArgs, OnExit) -> (Arc<Reaper>, Arc<dyn RuntimeCalls>),
    ) -> Result<Shim> {
        let bundle = Bundle { dir: args.bundle.clone() };
        let status = if args.start { TaskStatus::Running } else { TaskStatus::Created };
        let shared = Shared::new(status);
        let events = Arc::new(ShimEvents::new(args.state.clone(), args.namespace.clone()));
        let cell = Arc::new(OnceLock::new());
        let oom = Arc::new(OnceLock::new());
        let ctx = ExitCtx {
            id: args.id.clone(),
            bundle: bundle.clone(),
            shared: shared.clone(),
            events,
            runtime: cell.clone(),
            oom: oom.clone(),
        };
        let (reaper, runtime) = start(&args, exit::hook(ctx.clone()));
        let _ = cell.set(runtime.clone());
        make_shim_dir(&bundle)?;
        let (terminal, stdin) = super::tty::wants(&bundle.config());
        let console = if terminal { Some(ConsoleSocket::bind(&bundle.console())?) } else { None };
        let inputs = Inputs::default();
        let input = match stdin && !terminal {
            true => Some(inputs.open(None)?),
            false => None,
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
        let init_since = reaper.mark();
        let status = runtime.call_with(&create, RuntimeIo { stdin: input, stdout: out, stderr: err })?;
        if status != 0 {
            let _ = runtime.call(&["delete", "--force", &args.id]);
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
                    let _ = runtime.call(&["delete", "--force", &args.id]);
                }
                Some(tty?)
            }
        };
        let pid = read_pid(&bundle.init_pid())
            .ok_or_else(|| Error::internal(format!("{}: no init pid after create", args.runtime)))?;
        exit::init_known(&ctx, &reaper, pid, init_since);
        let listener = UnixListener::bind(bundle.socket()).map_err(|e| io("shim socket", e))?;
        std::fs::set_permissions(bundle.socket(), std::fs::Permissions::from_mode(0o600))
            .map_err(|e| io("shim socket", e))?;
        Ok(Shim {
            args,
            bundle,
            runtime,
            reaper,
            init: pid,
            init_since,
            shared,
            exits: ctx,
            listener,
            tty,
            output,
            consoles: std::sync::atomic::AtomicUsize::new(0),
            inputs,
        })
    }
}
