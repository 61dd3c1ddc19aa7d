//! The shim on its own: a bundle made by hand (busybox rootfs directory), the real
//! `berth-shim` binary, runc and crun.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use berth_ipc::runtime::{ExecSpec, OutputStream, RunOptions, ShimRequest, ShimResponse, TaskStatus};
use berth_runtime::bundle::Bundle;
use berth_runtime::shim::ShimArgs;
use berth_runtime::spec;

/// Spawns a shim for a fresh bundle running `args`; `start`: the runtime's `run` instead of
/// `create`. Answers the bundle and the init pid.
fn start_shim(runtime: &str, dir: &std::path::Path, id: &str, args: &[&str], start: bool) -> (Bundle, u32) {
    let state = dir.join("state");
    let bundle = Bundle::new(&state, "default", id);
    std::fs::create_dir_all(bundle.rootfs()).expect("bundle");
    common::busybox_rootfs(&bundle.rootfs());
    let opts =
        RunOptions { args: Some(args.iter().map(|s| s.to_string()).collect()), ..RunOptions::default() };
    let image = spec::ImageConfig::default();
    let spec = spec::generate(
        &image,
        &opts,
        id,
        &spec::Placement { cgroup: format!("/berth-shimtest/default/{id}"), ..Default::default() },
        &bundle.rootfs(),
    )
    .expect("spec");
    std::fs::write(bundle.config(), serde_json::to_vec(&spec).expect("json")).expect("config");
    let shim_args = ShimArgs {
        namespace: "default".into(),
        id: id.into(),
        bundle: bundle.dir.clone(),
        runtime: runtime.into(),
        runtime_root: dir.join("runc-root"),
        logs: dir.join("logs"),
        log_max_bytes: 10 << 20,
        log_max_files: 2,
        log_path: None,
        state,
        start,
    };
    let mut child = Command::new(env!("CARGO_BIN_EXE_berth-shim"))
        .args(shim_args.to_args())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn shim");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut line).expect("ready line");
    assert!(child.wait().expect("wait").success(), "first shim process exits 0");
    match serde_json::from_str(&line).expect("ready json") {
        ShimResponse::Pid(pid) => (bundle, pid),
        other => panic!("shim failed: {other:?}"),
    }
}

fn run_to_exit(runtime: &str) {
    if !common::can_run(runtime) {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let id = format!("shimtest-{runtime}-{}", std::process::id());
    let (bundle, pid) = start_shim(
        runtime,
        dir.path(),
        &id,
        &["sh", "-c", "echo hi; echo err >&2; hostname; sleep 0.3; exit 3"],
        false,
    );
    assert!(pid > 0);
    let sock = bundle.socket();
    let meta = std::fs::metadata(&sock).expect("socket");
    assert_eq!(std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o777, 0o600);
    let state = match common::shim_call(&sock, &ShimRequest::State) {
        ShimResponse::State(s) => s,
        other => panic!("{other:?}"),
    };
    assert_eq!(state.status, TaskStatus::Created);
    let shim_pid = state.shim_pid;
    // Detached: the shim is not our child and leads no session of ours.
    let stat = std::fs::read_to_string(format!("/proc/{shim_pid}/stat")).expect("shim stat");
    let ppid: u32 = stat
        .rsplit(')')
        .next()
        .and_then(|r| r.split_whitespace().nth(1))
        .and_then(|p| p.parse().ok())
        .expect("ppid");
    assert_ne!(ppid, std::process::id());
    assert!(matches!(common::shim_call(&sock, &ShimRequest::Start), ShimResponse::Pid(p) if p == pid));
    // An exec while it runs.
    let spec: oci_spec::runtime::Spec =
        serde_json::from_slice(&std::fs::read(bundle.config()).expect("config")).expect("spec");
    let process = spec::exec_process(
        &spec,
        &ExecSpec {
            args: vec!["sh".into(), "-c".into(), "echo inside; exit 5".into()],
            ..ExecSpec::default()
        },
    )
    .expect("exec");
    let process = serde_json::to_string(&process).expect("json");
    let exec = ShimRequest::Exec { exec_id: "e1".into(), process, stdin: false, terminal: false };
    assert!(matches!(common::shim_call(&sock, &exec), ShimResponse::Pid(_)));
    match common::shim_call(&sock, &ShimRequest::Wait { exec_id: Some("e1".into()) }) {
        ShimResponse::Exit(e) => assert_eq!(e.status, 5),
        other => panic!("{other:?}"),
    }
    assert_eq!(output(dir.path(), Some("e1"), OutputStream::Stdout), "inside\n");
    match common::shim_call(&sock, &ShimRequest::Wait { exec_id: None }) {
        ShimResponse::Exit(e) => assert_eq!(e.status, 3),
        other => panic!("{other:?}"),
    }
    assert_eq!(bundle.read_exit().map(|e| e.status), Some(3));
    assert_eq!(output(dir.path(), None, OutputStream::Stdout), format!("hi\n{id}\n"));
    assert_eq!(output(dir.path(), None, OutputStream::Stderr), "err\n");
    assert!(matches!(common::shim_call(&sock, &ShimRequest::Shutdown), ShimResponse::Ok));
    wait_until(std::time::Duration::from_secs(2), || {
        !std::path::Path::new(&format!("/proc/{shim_pid}")).exists()
    });
    assert!(!std::path::Path::new(&format!("/proc/{shim_pid}")).exists(), "shim exited after shutdown");
    remove_test_cgroups(&id);
}

/// What the process wrote on `stream`, from its log under `<dir>/logs`.
fn output(dir: &std::path::Path, exec: Option<&str>, stream: OutputStream) -> String {
    let paths = berth_runtime::logfile::LogPaths::new(&dir.join("logs"), exec);
    let mut out = Vec::new();
    for f in paths.existing() {
        for line in std::fs::read(f).expect("log").split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            let r = berth_runtime::logfile::parse(line).expect("a CRI record");
            if r.stream == stream {
                out.extend(r.bytes());
            }
        }
    }
    String::from_utf8(out).expect("utf8")
}

/// Polls `done` every 10 ms until it holds or `timeout` has passed (the caller asserts).
fn wait_until(timeout: std::time::Duration, done: impl Fn() -> bool) {
    let deadline = std::time::Instant::now() + timeout;
    while !done() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

/// Removes the test cgroups of container `id` (and their parents where now empty).
fn remove_test_cgroups(id: &str) {
    for h in std::fs::read_dir("/sys/fs/cgroup").into_iter().flatten().flatten() {
        for dir in
            [format!("berth-shimtest/default/{id}"), "berth-shimtest/default".into(), "berth-shimtest".into()]
        {
            let _ = std::fs::remove_dir(h.path().join(dir));
        }
    }
}

/// Started by the runtime's `run`, a container that exits at once (before the shim has read
/// its pid, typically): its exit is still recorded as the init's, `/tasks/exit` waits for
/// `Start`, and the shim shuts down cleanly.
fn run_exits_at_once(runtime: &str) {
    if !common::can_run(runtime) {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let id = format!("shimrun-{runtime}-{}", std::process::id());
    let (bundle, pid) = start_shim(runtime, dir.path(), &id, &["sh", "-c", "echo quick; exit 4"], true);
    assert!(pid > 0);
    let sock = bundle.socket();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let state = loop {
        match common::shim_call(&sock, &ShimRequest::State) {
            ShimResponse::State(s) if s.status == TaskStatus::Stopped => break s,
            ShimResponse::State(s) if std::time::Instant::now() < deadline => {
                assert_eq!(s.status, TaskStatus::Running, "started by run");
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(state.exit.map(|e| e.status), Some(4));
    assert_eq!(bundle.read_exit().map(|e| e.status), Some(4), "the init's exit is recorded durably");
    assert!(matches!(common::shim_call(&sock, &ShimRequest::Start), ShimResponse::Pid(p) if p == pid));
    wait_until(std::time::Duration::from_secs(2), || {
        output(dir.path(), None, OutputStream::Stdout) == "quick\n"
    });
    assert_eq!(output(dir.path(), None, OutputStream::Stdout), "quick\n");
    assert!(matches!(common::shim_call(&sock, &ShimRequest::Shutdown), ShimResponse::Ok));
    // The shim finishes the runtime's delete after answering, then exits.
    let root = dir.path().join("runc-root").join(&id);
    let shim_alive = || {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", state.shim_pid)).unwrap_or_default();
        stat.rsplit(')').next().and_then(|r| r.split_whitespace().next()).is_some_and(|s| s != "Z")
    };
    wait_until(std::time::Duration::from_secs(3), || !root.exists() && !shim_alive());
    assert!(!root.exists(), "the runtime's state of {id} is deleted");
    assert!(!shim_alive(), "shim exited");
    remove_test_cgroups(&id);
}

#[test]
fn runc_run_exits_at_once() {
    run_exits_at_once("runc");
}

#[test]
fn crun_run_exits_at_once() {
    run_exits_at_once("crun");
}

/// A container started by `run` whose `Start` never comes (the runtime service died in
/// between): after the grace period the shim goes on as if told, so the exit held back
/// behind `/tasks/start` is released and the runtime's delete of the exited container
/// runs without waiting for a `Shutdown`.
#[test]
fn run_without_start_goes_on_after_the_grace_period() {
    if !common::can_run("runc") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let id = format!("shimgrace-{}", std::process::id());
    let (bundle, _) = start_shim("runc", dir.path(), &id, &["sh", "-c", "exit 2"], true);
    let root = dir.path().join("runc-root").join(&id);
    std::thread::sleep(std::time::Duration::from_secs(2));
    assert!(root.exists(), "deleted before the grace period: /tasks/start would come after the exit");
    wait_until(std::time::Duration::from_secs(20), || !root.exists());
    assert!(!root.exists(), "the exited container was never deleted without a Start");
    assert_eq!(bundle.read_exit().map(|e| e.status), Some(2));
    assert!(matches!(common::shim_call(&bundle.socket(), &ShimRequest::Shutdown), ShimResponse::Ok));
    remove_test_cgroups(&id);
}

#[test]
fn runc_run_exec_exit() {
    run_to_exit("runc");
}

#[test]
fn crun_run_exec_exit() {
    run_to_exit("crun");
}

#[test]
fn create_failure_is_reported() {
    if !common::can_run("runc") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("state");
    let bundle = Bundle::new(&state, "default", "broken");
    std::fs::create_dir_all(bundle.rootfs()).expect("bundle");
    std::fs::write(bundle.config(), b"{\"ociVersion\":\"1.0.2\"}").expect("config");
    let args = ShimArgs {
        namespace: "default".into(),
        id: "broken".into(),
        bundle: bundle.dir.clone(),
        runtime: "runc".into(),
        runtime_root: dir.path().join("runc-root"),
        logs: dir.path().join("logs"),
        log_max_bytes: 10 << 20,
        log_max_files: 2,
        log_path: None,
        state,
        start: false,
    };
    let out = Command::new(env!("CARGO_BIN_EXE_berth-shim")).args(args.to_args()).output().expect("shim");
    let line = String::from_utf8_lossy(&out.stdout);
    assert!(line.contains("Error"), "{line}");
}

/// The shim's protocol versions, and lines no runtime service sends, on one connection:
/// each is answered with an error naming the problem and the connection goes on.
#[test]
fn versioned_requests_and_hostile_lines() {
    use std::io::Write;
    if !common::can_run("runc") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let id = format!("shimproto-{}", std::process::id());
    let (bundle, _) = start_shim("runc", dir.path(), &id, &["sleep", "30"], false);
    let conn = std::os::unix::net::UnixStream::connect(bundle.socket()).expect("connect");
    let mut write = conn.try_clone().expect("clone");
    let mut read = BufReader::new(conn);
    let mut ask = |line: &str| -> ShimResponse {
        writeln!(write, "{line}").expect("send");
        let mut answer = String::new();
        read.read_line(&mut answer).expect("answer");
        serde_json::from_str(&answer).expect("answer json")
    };
    let versioned = |protocol: u32, req: ShimRequest| {
        serde_json::to_string(&ShimRequest::Versioned { protocol, request: Box::new(req) }).expect("json")
    };
    match ask(&versioned(berth_ipc::runtime::SHIM_PROTOCOL, ShimRequest::State)) {
        ShimResponse::State(s) => assert_eq!(s.status, TaskStatus::Created),
        other => panic!("{other:?}"),
    }
    match ask(&versioned(99, ShimRequest::State)) {
        ShimResponse::Error(e) => {
            assert!(e.is(berth_ipc::Code::FailedPrecondition) && e.message.contains("protocol 99"), "{e}")
        }
        other => panic!("{other:?}"),
    }
    match ask(&versioned(1, ShimRequest::Versioned { protocol: 1, request: Box::new(ShimRequest::State) })) {
        ShimResponse::Error(e) => assert!(e.is(berth_ipc::Code::InvalidArgument), "{e}"),
        other => panic!("{other:?}"),
    }
    for garbage in ["not json", r#"{"Versioned":{"protocol":"one"}}"#, r#"{"Exec":{}}"#] {
        match ask(garbage) {
            ShimResponse::Error(e) => {
                assert!(
                    e.is(berth_ipc::Code::InvalidArgument) && e.message.starts_with("shim request: "),
                    "{e}"
                )
            }
            other => panic!("{garbage}: {other:?}"),
        }
    }
    // A bare request (protocol 0, what an older runtime service sends) is still answered.
    assert!(matches!(ask(r#""State""#), ShimResponse::State(_)));
    let shim_pid = bundle.read_shim_pid().expect("shim pid");
    assert!(matches!(ask(r#""Shutdown""#), ShimResponse::Ok));
    wait_until(std::time::Duration::from_secs(5), || {
        !std::path::Path::new(&format!("/proc/{shim_pid}")).exists()
    });
    assert!(!std::path::Path::new(&format!("/proc/{shim_pid}")).exists(), "shim exited after shutdown");
    remove_test_cgroups(&id);
}
