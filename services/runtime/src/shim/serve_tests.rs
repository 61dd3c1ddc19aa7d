//! The shim's container logic (create, the requests, exec, shutdown) against an OCI runtime
//! double and a reaper without its thread, without root: what the shim asks of the runtime,
//! and what it answers when the runtime fails. The real runtimes are exercised by the system
//! tests (`runtime_run`).

use std::io::{IoSlice, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicI32;
use std::sync::{Arc, Mutex};

use berth_ipc::Code;
use berth_ipc::runtime::{ExitInfo, ShimRequest, ShimResponse, TaskStatus};

use super::super::ShimArgs;
use super::super::process::{RuntimeCalls, RuntimeIo, runtime_error};
use super::super::reaper::{OnExit, Reaper};
use super::*;

/// Pids above the kernel's largest `pid_max` (2^22): a signal the shim sends to one can
/// reach no process.
const FIRST_PID: i32 = 5_000_001;

/// An OCI runtime that records its calls, writes the pid files it is given, fails the calls
/// that start with a prefix it is told (writing the stderr it is told), answers `ps` what it
/// is told, and sends a pty master to a console socket. Its `delete --force` ends the init.
struct Fake {
    reaper: Arc<Reaper>,
    hook: Mutex<Option<OnExit>>,
    calls: Mutex<Vec<String>>,
    fail: Mutex<Vec<(String, String)>>,
    ps: Mutex<Vec<u8>>,
    next_pid: AtomicI32,
    init: Mutex<Option<i32>>,
    /// The slave ends of the ptys sent, kept open.
    slaves: Mutex<Vec<OwnedFd>>,
}

impl Fake {
    fn new() -> Arc<Fake> {
        Arc::new(Fake {
            reaper: Arc::new(Reaper::default()),
            hook: Mutex::new(None),
            calls: Mutex::default(),
            fail: Mutex::default(),
            ps: Mutex::default(),
            next_pid: AtomicI32::new(FIRST_PID),
            init: Mutex::new(None),
            slaves: Mutex::default(),
        })
    }

    fn calls(&self) -> Vec<String> {
        self.calls.lock().expect("calls").clone()
    }

    /// Calls starting with `prefix` fail, with `stderr`.
    fn fail(&self, prefix: &str, stderr: &str) {
        self.fail.lock().expect("fail").push((prefix.into(), stderr.into()));
    }

    /// Calls starting with `prefix` work again.
    fn heal(&self, prefix: &str) {
        self.fail.lock().expect("fail").retain(|(p, _)| p != prefix);
    }

    /// The stderr of a call that is to fail.
    fn failure(&self, line: &str) -> Option<String> {
        let fail = self.fail.lock().expect("fail");
        fail.iter().find(|(p, _)| line.starts_with(p.as_str())).map(|(_, e)| e.clone())
    }

    /// Process `pid` exits with `status`, as the reaper thread would tell it.
    fn exit(&self, pid: i32, status: u32) {
        let hook = self.hook.lock().expect("hook");
        let hook = hook.as_ref().expect("the shim gave its hook");
        self.reaper.reaped(hook, pid, ExitInfo { status, exited_at: 1, oom_killed: false });
    }

    fn record(&self, args: &[&str]) -> String {
        let line = args.join(" ");
        self.calls.lock().expect("calls").push(line.clone());
        line
    }

    /// Connects to `path` and sends a new pty's master, as a runtime's `--console-socket`.
    fn send_pty(&self, path: &str) {
        let pty = nix::pty::openpty(None, None).expect("openpty");
        let conn = UnixStream::connect(path).expect("console socket");
        let fds = [pty.master.as_raw_fd()];
        let cmsg = [nix::sys::socket::ControlMessage::ScmRights(&fds)];
        let iov = [IoSlice::new(b"pty")];
        nix::sys::socket::sendmsg::<()>(
            conn.as_raw_fd(),
            &iov,
            &cmsg,
            nix::sys::socket::MsgFlags::empty(),
            None,
        )
        .expect("sendmsg");
        self.slaves.lock().expect("slaves").push(pty.slave);
    }
}

/// The value after `flag` in `args`.
fn flag<'a>(args: &[&'a str], flag: &str) -> Option<&'a str> {
    args.iter().position(|a| *a == flag).and_then(|i| args.get(i + 1)).copied()
}

impl RuntimeCalls for Fake {
    fn call(&self, args: &[&str]) -> berth_ipc::Result<Vec<u8>> {
        let line = self.record(args);
        if let Some(stderr) = self.failure(&line) {
            return Err(runtime_error("fake", args[0], stderr.as_bytes()));
        }
        if line.starts_with("delete --force") {
            let init = self.init.lock().expect("init").take();
            if let Some(pid) = init.filter(|pid| self.reaper.exited(*pid, 0).is_none()) {
                self.exit(pid, 137);
            }
        }
        match args[0] {
            "ps" => Ok(self.ps.lock().expect("ps").clone()),
            _ => Ok(Vec::new()),
        }
    }

    fn call_with(&self, args: &[&str], mut io: RuntimeIo) -> berth_ipc::Result<u32> {
        let line = self.record(args);
        if let Some(stderr) = self.failure(&line) {
            io.stderr.write_all(stderr.as_bytes()).expect("stderr");
            return Ok(1);
        }
        if let Some(path) = flag(args, "--console-socket") {
            self.send_pty(path);
        }
        if let Some(pid_file) = flag(args, "--pid-file") {
            let pid = self.next_pid.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            std::fs::write(pid_file, pid.to_string()).expect("pid file");
            if args[0] != "exec" {
                *self.init.lock().expect("init") = Some(pid);
            }
        }
        Ok(0)
    }
}

/// A bundle in a temp dir, the shim's arguments for it, and its runtime double.
struct Setup {
    _dir: tempfile::TempDir,
    args: ShimArgs,
    fake: Arc<Fake>,
}

impl Setup {
    /// A bundle whose `config.json` is `config`; the container started by `run` if `start`.
    fn new(config: serde_json::Value, start: bool) -> Setup {
        let dir = tempfile::tempdir().expect("tempdir");
        let bundle = dir.path().join("b");
        std::fs::create_dir(&bundle).expect("bundle");
        std::fs::write(bundle.join("config.json"), config.to_string()).expect("config");
        let args = ShimArgs {
            namespace: "default".into(),
            id: "web".into(),
            bundle,
            runtime: "fake".into(),
            runtime_root: dir.path().join("root"),
            state: dir.path().to_path_buf(),
            logs: dir.path().join("logs"),
            log_max_bytes: 1 << 20,
            log_max_files: 2,
            log_path: None,
            start,
        };
        Setup { _dir: dir, args, fake: Fake::new() }
    }

    fn plain() -> Setup {
        Setup::new(serde_json::json!({ "process": { "args": ["sh"] } }), false)
    }

    fn bundle(&self) -> &Path {
        &self.args.bundle
    }

    fn create(&self) -> berth_ipc::Result<Shim> {
        let fake = self.fake.clone();
        Shim::create_on(self.args.clone(), move |_, hook| {
            *fake.hook.lock().expect("hook") = Some(hook);
            let runtime: Arc<dyn RuntimeCalls> = fake.clone();
            (fake.reaper.clone(), runtime)
        })
    }
}

/// A plain task, created and started.
fn started() -> (Setup, Shim) {
    let s = Setup::plain();
    let shim = s.create().expect("created");
    shim.handle(ShimRequest::Start).expect("started");
    (s, shim)
}

fn path(p: PathBuf) -> String {
    p.display().to_string()
}

fn status(shim: &Shim) -> TaskStatus {
    shim.state().status
}

fn kill(signal: i32, all: bool) -> ShimRequest {
    ShimRequest::Kill { exec_id: None, signal, all }
}

fn exec(exec_id: &str) -> ShimRequest {
    ShimRequest::Exec {
        exec_id: exec_id.into(),
        process: r#"{"args":["true"]}"#.into(),
        stdin: false,
        terminal: false,
    }
}

#[test]
fn create_gives_the_runtime_the_bundle_and_pid_file_and_no_console_without_a_terminal() {
    let s = Setup::plain();
    let shim = s.create().expect("created");
    let b = s.bundle();
    let want = format!("create --bundle {} --pid-file {} web", b.display(), path(b.join("init.pid")));
    assert_eq!(s.fake.calls(), [want]);
    assert_eq!(shim.init_pid(), FIRST_PID as u32);
    assert_eq!(status(&shim), TaskStatus::Created);
    assert!(b.join("shim").join("sock").exists(), "the shim's socket listens");
}

#[test]
fn run_mode_runs_detached_and_a_terminal_comes_over_the_console_socket() {
    let config = serde_json::json!({ "process": { "terminal": true, "args": ["sh"] } });
    let s = Setup::new(config, true);
    let shim = s.create().expect("created");
    let b = s.bundle();
    let want = format!(
        "run --detach --bundle {} --pid-file {} --console-socket {} web",
        b.display(),
        path(b.join("init.pid")),
        path(b.join("shim").join("console"))
    );
    assert_eq!(s.fake.calls(), [want]);
    assert_eq!(status(&shim), TaskStatus::Running);
    let resized = shim.handle(ShimRequest::Resize { exec_id: None, cols: 100, rows: 30 });
    assert_eq!(resized.ok(), Some(ShimResponse::Ok), "the pty received is the task's terminal");
}

#[test]
fn a_failed_create_is_the_runtimes_last_stderr_line_and_is_force_deleted() {
    let s = Setup::plain();
    s.fake.fail(
        "create",
        "time=\"x\" level=warning msg=\"cgroup\"\nlevel=error msg=\"exec: sh: not found in $PATH\"\n\n",
    );
    let e = s.create().err().expect("create fails");
    assert_eq!(e.to_string(), r#"fake create: level=error msg="exec: sh: not found in $PATH""#);
    assert!(e.is(Code::NotFound), "the runtime's 'not found' keeps its code: {e}");
    assert_eq!(s.fake.calls().last().map(String::as_str), Some("delete --force web"));
}

#[test]
fn start_runs_the_runtimes_start_once() {
    let s = Setup::plain();
    let shim = s.create().expect("created");
    assert_eq!(shim.handle(ShimRequest::Start).ok(), Some(ShimResponse::Pid(FIRST_PID as u32)));
    assert_eq!(status(&shim), TaskStatus::Running);
    let e = shim.handle(ShimRequest::Start).expect_err("second start");
    assert!(e.is(Code::FailedPrecondition) && e.to_string() == "task web: already started", "{e}");
    assert_eq!(s.fake.calls().iter().filter(|c| *c == "start web").count(), 1);
}

#[test]
fn a_failed_start_keeps_the_task_created_and_the_runtimes_code() {
    let s = Setup::plain();
    let shim = s.create().expect("created");
    s.fake.fail("start", "container \"web\" does not exist");
    let e = shim.handle(ShimRequest::Start).expect_err("start fails");
    assert!(e.is(Code::NotFound), "{e}");
    assert_eq!(status(&shim), TaskStatus::Created);
}

#[test]
fn a_stopped_task_is_not_signalled_and_tells_its_exit() {
    let (s, shim) = started();
    s.fake.exit(FIRST_PID, 3);
    let e = shim.handle(kill(15, false)).expect_err("kill of a stopped task");
    assert!(e.is(Code::NotFound) && e.to_string() == "task web: process already finished", "{e}");
    let state = shim.state();
    assert_eq!((state.status, state.exit.map(|e| e.status)), (TaskStatus::Stopped, Some(3)));
    assert!(s.fake.calls().iter().all(|c| !c.starts_with("kill")), "{:?}", s.fake.calls());
    assert!(s.bundle().join("exit.json").exists(), "the exit is recorded durably");
}

#[test]
fn kill_all_goes_through_the_runtime_and_an_unknown_signal_through_nothing() {
    let s = Setup::plain();
    let shim = s.create().expect("created");
    assert_eq!(shim.handle(kill(9, true)).ok(), Some(ShimResponse::Ok));
    assert_eq!(s.fake.calls().last().map(String::as_str), Some("kill --all web 9"));
    let e = shim.handle(kill(999, false)).expect_err("signal 999");
    assert!(e.is(Code::InvalidArgument) && e.to_string() == "signal 999: unknown", "{e}");
    assert_eq!(s.fake.calls().len(), 2);
}

#[test]
fn pause_and_resume_set_the_status_only_when_the_runtime_did_it() {
    let (s, shim) = started();
    shim.handle(ShimRequest::Pause).expect("paused");
    assert_eq!(status(&shim), TaskStatus::Paused);
    s.fake.fail("resume", "level=error msg=\"container not paused\"");
    assert!(shim.handle(ShimRequest::Resume).is_err());
    assert_eq!(status(&shim), TaskStatus::Paused, "a failed resume leaves it paused");
    s.fake.heal("resume");
    shim.handle(ShimRequest::Resume).expect("resumed");
    assert_eq!(status(&shim), TaskStatus::Running);
    assert_eq!(s.fake.calls()[2..], ["pause web", "resume web", "resume web"]);
}

#[test]
fn ps_answers_the_runtimes_pids_and_nothing_for_garbage() {
    let s = Setup::plain();
    let shim = s.create().expect("created");
    *s.fake.ps.lock().expect("ps") = b"[5000001,17]".to_vec();
    assert_eq!(shim.handle(ShimRequest::Ps).ok(), Some(ShimResponse::Pids(vec![5_000_001, 17])));
    assert_eq!(s.fake.calls().last().map(String::as_str), Some("ps --format json web"));
    *s.fake.ps.lock().expect("ps") = b"{not json".to_vec();
    assert_eq!(shim.handle(ShimRequest::Ps).ok(), Some(ShimResponse::Pids(Vec::new())));
}

#[test]
fn shutdown_force_deletes_a_created_task_and_refuses_a_running_one() {
    let s = Setup::plain();
    let shim = s.create().expect("created");
    shim.shutdown().expect("shutdown of a created task");
    assert_eq!(s.fake.calls().last().map(String::as_str), Some("delete --force web"));
    assert!(!s.bundle().join("shim").join("sock").exists(), "its socket is removed");

    let (s, shim) = started();
    let e = shim.shutdown().expect_err("running");
    assert!(
        e.is(Code::FailedPrecondition) && e.to_string() == "task web: still running; kill it first",
        "{e}"
    );
    assert!(s.fake.calls().iter().all(|c| !c.starts_with("delete")), "{:?}", s.fake.calls());
}

#[test]
fn an_exited_task_is_deleted_by_its_exit_and_not_again() {
    let (s, shim) = started();
    s.fake.exit(FIRST_PID, 0);
    assert!(shim.shared.early_deleted(std::time::Duration::from_secs(5)), "the exit began the delete");
    shim.delete_exited();
    let deletes: Vec<String> = s.fake.calls().into_iter().filter(|c| c.starts_with("delete")).collect();
    assert_eq!(deletes, ["delete web"]);
}

#[test]
fn a_delete_that_fails_after_an_exit_falls_back_to_force() {
    let s = Setup::plain();
    let shim = s.create().expect("created");
    // Exited before it was started: no early delete.
    s.fake.exit(FIRST_PID, 1);
    assert_eq!(status(&shim), TaskStatus::Stopped);
    s.fake.fail("delete web", "level=error msg=\"cannot delete container web that is not stopped\"");
    shim.delete_exited();
    let deletes: Vec<String> = s.fake.calls().into_iter().filter(|c| c.starts_with("delete")).collect();
    assert_eq!(deletes, ["delete web", "delete --force web"]);
}

#[test]
fn exec_gives_its_spec_and_pid_file_and_its_id_is_taken_until_it_exits() {
    let s = Setup::plain();
    let shim = s.create().expect("created");
    let e = shim.handle(exec("e1")).expect_err("not running yet");
    assert!(e.is(Code::FailedPrecondition) && e.to_string() == "task web: not running", "{e}");
    shim.handle(ShimRequest::Start).expect("started");
    let pid = FIRST_PID + 1;
    assert_eq!(shim.handle(exec("e1")).ok(), Some(ShimResponse::Pid(pid as u32)));
    let b = s.bundle();
    let (spec, pid_file) = (b.join("exec-e1.json"), b.join("exec-e1.pid"));
    let want = format!("exec --process {} --pid-file {} --detach web", path(spec.clone()), path(pid_file));
    assert_eq!(s.fake.calls().last(), Some(&want));
    assert_eq!(std::fs::read_to_string(spec).ok().as_deref(), Some(r#"{"args":["true"]}"#));
    let e = shim.handle(exec("e1")).expect_err("e1 runs");
    assert!(e.is(Code::AlreadyExists) && e.to_string() == "exec e1: already exists and still runs", "{e}");
    s.fake.exit(pid, 7);
    let waited = shim.handle(ShimRequest::Wait { exec_id: Some("e1".into()) });
    assert!(matches!(waited, Ok(ShimResponse::Exit(ExitInfo { status: 7, .. }))), "{waited:?}");
    assert_eq!(status(&shim), TaskStatus::Running, "an exec's exit is not the task's");
    assert_eq!(shim.handle(exec("e1")).ok(), Some(ShimResponse::Pid(pid as u32 + 1)), "the id is free again");
}

#[test]
fn a_failed_exec_is_the_runtimes_stderr_and_frees_its_id() {
    let (s, shim) = started();
    s.fake.fail("exec", "level=error msg=\"exec failed: unable to start container process: exec: \\\"nope\\\": executable file not found in $PATH\"");
    let e = shim.handle(exec("e1")).expect_err("exec fails");
    assert!(e.to_string().starts_with("fake exec: level=error msg=\"exec failed"), "{e}");
    assert!(e.is(Code::NotFound), "{e}");
    s.fake.heal("exec");
    assert!(matches!(shim.handle(exec("e1")), Ok(ShimResponse::Pid(_))), "e1 was not left reserved");
    let e = shim.handle(ShimRequest::Kill { exec_id: Some("e2".into()), signal: 15, all: false });
    assert!(e.err().is_some_and(|e| e.is(Code::NotFound) && e.to_string() == "exec e2: not found"));
}
