//! A container's init output at a caller-chosen host file (`RunOptions.log_path`, the CRI's
//! LogDirectory/LogPath): written there by the shim in the CRI log format, never rotated by
//! berth; the owner renames the file and sends `ReopenLog`, and output goes on in a fresh
//! file at the path with nothing lost or written twice, also after the runtime service was
//! SIGKILLed and re-adopted the shim. Bad paths are refused naming container and path.

mod runtime_support;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use berth_ipc::Code;
use berth_ipc::launcher::ServiceState;
use berth_ipc::runtime::{CreateTask, OutputStream, ReopenLog, TaskRef};
use berth_system_tests::{Berth, block_on, signal};
use nix::sys::signal::Signal;
use runtime_support::{berth_with_tiny, out, show, teardown};

/// One CRI log record: `<time> <stream> <P|F> <data>`.
#[derive(Debug, PartialEq)]
struct Rec {
    stream: OutputStream,
    partial: bool,
    data: String,
}

fn records(path: &Path) -> Vec<Rec> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines()
        .map(|line| {
            let mut parts = line.splitn(4, ' ');
            let time = parts.next().expect("time");
            assert!(time.len() == 30 && time.ends_with('Z'), "RFC 3339 nanoseconds: {line}");
            let stream = match parts.next() {
                Some("stdout") => OutputStream::Stdout,
                Some("stderr") => OutputStream::Stderr,
                other => panic!("stream {other:?}: {line}"),
            };
            let partial = match parts.next() {
                Some("P") => true,
                Some("F") => false,
                other => panic!("tag {other:?}: {line}"),
            };
            Rec { stream, partial, data: parts.next().unwrap_or_default().to_string() }
        })
        .collect()
}

/// The numbers of the `lineN` records on stdout, in order.
fn numbers(recs: &[Rec]) -> Vec<u64> {
    recs.iter()
        .filter(|r| r.stream == OutputStream::Stdout && !r.partial)
        .filter_map(|r| r.data.strip_prefix("line").and_then(|n| n.parse().ok()))
        .collect()
}

fn wait_for(what: &str, timeout: Duration, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn has_lines(path: &Path, n: usize) -> bool {
    path.exists() && numbers(&records(path)).len() >= n
}

fn reopen(berth: &Berth, id: &str) -> berth_ipc::Result<()> {
    let services = berth.clients(Duration::from_secs(20));
    block_on(services.runtime.call(ReopenLog(TaskRef::init("default", id))))
}

fn kill_runtime_service(berth: &mut Berth) {
    let pid = berth.status("runtime").pid.expect("runtime pid");
    signal(pid, Signal::SIGKILL);
    berth.wait_until("runtime restarted", Duration::from_secs(20), |l| {
        l.iter().any(|s| {
            s.name == "runtime" && s.pid.is_some_and(|p| p != pid) && s.state == ServiceState::Running
        })
    });
}

#[test]
fn output_goes_to_the_log_path_and_a_reopen_starts_a_fresh_file() {
    let Some(mut berth) = berth_with_tiny(&["runc"]) else { return };
    // Missing dirs, as the kubelet's pod log dir may be.
    let log: PathBuf = berth.dir.path().join("pods/default_web_uid/web/0.log");
    let log_s = log.display().to_string();
    let script = "printf abc; sleep 0.3; echo def; echo oops >&2; i=0; while :; do echo line$i; i=$((i+1)); sleep 0.01; done";
    let o = berth.cli(&["run", "-d", "--log-path", &log_s, "tiny", "web", "sh", "-c", script]);
    assert!(o.status.success(), "{}", show(&o));
    wait_for("output at the log path", Duration::from_secs(10), || has_lines(&log, 5));

    let first = records(&log);
    let stdout: Vec<&Rec> = first.iter().filter(|r| r.stream == OutputStream::Stdout).collect();
    // A partial line is a `P` record; the newline that ends it comes with the next.
    assert_eq!(
        (stdout[0], stdout[1]),
        (
            &Rec { stream: OutputStream::Stdout, partial: true, data: "abc".into() },
            &Rec { stream: OutputStream::Stdout, partial: false, data: "def".into() }
        ),
        "{first:?}"
    );
    assert!(first.contains(&Rec { stream: OutputStream::Stderr, partial: false, data: "oops".into() }));
    // Instead of berth's own log, not beside it; the file 0640 at most, its new dirs 0755.
    assert!(!berth.root.join("logs/default/web/init.log").exists(), "berth's own init log written too");
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &Path| std::fs::metadata(p).expect("stat").permissions().mode() & 0o777;
    assert_eq!(mode(&log) & !0o640, 0, "log file mode {:o}", mode(&log));
    assert_eq!(mode(log.parent().expect("dir")) & !0o755, 0);
    assert_ne!(mode(log.parent().expect("dir")) & 0o055, 0, "the pod log dir is readable by others");

    // `tasks logs` reads that file.
    let o = berth.cli(&["tasks", "logs", "web"]);
    assert!(out(&o).starts_with("abcdef\nline0\nline1\n"), "{}", show(&o));
    assert_eq!(String::from_utf8_lossy(&o.stderr), "oops\n", "{}", show(&o));
    // An exec's output stays in berth's own log dir.
    let o = berth.cli(&["tasks", "exec", "--exec-id", "e1", "web", "echo", "from-exec"]);
    assert_eq!(out(&o), "from-exec\n", "{}", show(&o));
    assert!(berth.root.join("logs/default/web/exec-e1.log").exists());

    // The kubelet's rotation: rename, then reopen.
    let rotated1 = log.with_extension("log.1");
    std::fs::rename(&log, &rotated1).expect("rename");
    reopen(&berth, "web").expect("reopen");
    wait_for("a fresh file at the path", Duration::from_secs(10), || has_lines(&log, 5));

    // Again with a runtime service that was SIGKILLed: the restarted one reaches the shim
    // it re-adopted.
    kill_runtime_service(&mut berth);
    let rotated2 = log.with_extension("log.2");
    std::fs::rename(&log, &rotated2).expect("rename");
    reopen(&berth, "web").expect("reopen after a runtime service restart");
    wait_for("a fresh file after the restart", Duration::from_secs(10), || has_lines(&log, 5));
    let o = berth.cli(&["tasks", "logs", "web", "--tail", "1"]);
    assert!(out(&o).starts_with("line"), "the restarted service reads the new file: {}", show(&o));

    let o = berth.cli(&["tasks", "kill", "-s", "KILL", "web"]);
    assert!(o.status.success(), "{}", show(&o));
    let o = berth.cli(&["tasks", "wait", "web"]);
    assert_eq!(o.status.code(), Some(137), "{}", show(&o));

    // The three files hold every line once, in order, and the old ones kept theirs.
    let (a, b, c) = (numbers(&records(&rotated1)), numbers(&records(&rotated2)), numbers(&records(&log)));
    assert!(a.len() >= 5 && b.len() >= 5 && c.len() >= 5, "{} {} {}", a.len(), b.len(), c.len());
    let all: Vec<u64> = [a.clone(), b.clone(), c].concat();
    let want: Vec<u64> = (0..all.len() as u64).collect();
    assert_eq!(all, want, "lines lost or written twice across the reopens (first {a:?}, second {b:?})");
    assert!(records(&rotated1)[0].data == "abc", "the first file kept the first output");

    // Not running any more: refused as containerd's CRI does.
    let e = reopen(&berth, "web").expect_err("a stopped task");
    assert!(e.is(Code::FailedPrecondition) && e.message.contains("container web is not running"), "{e}");
    // The file is its owner's: still read after the task is gone, left by containers rm.
    let o = berth.cli(&["tasks", "delete", "web"]);
    assert!(o.status.success(), "{}", show(&o));
    let o = berth.cli(&["tasks", "logs", "web", "--tail", "1"]);
    assert!(o.status.success() && out(&o).starts_with("line"), "{}", show(&o));
    let o = berth.cli(&["containers", "rm", "web"]);
    assert!(o.status.success(), "{}", show(&o));
    assert!(log.exists(), "containers rm removed the caller's log file");
    teardown(&berth);
}

#[test]
fn bad_log_paths_and_reopens_are_refused() {
    let Some(berth) = berth_with_tiny(&["runc"]) else { return };
    let file = berth.dir.path().join("a-file");
    std::fs::write(&file, b"").expect("file");
    let dir = berth.dir.path().display().to_string();
    let under_file = format!("{}/0.log", file.display());
    for (path, why) in [
        ("pods/0.log", "not an absolute path"),
        (dir.as_str(), "is a directory"),
        (under_file.as_str(), "is not a directory"),
        ("/var/log/../tmp/0.log", "has a . or .. component"),
    ] {
        let o = berth.cli(&["run", "-d", "--log-path", path, "tiny", "bad", "true"]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "{path}: {}", show(&o));
        assert!(err.contains(&format!("container bad: log path {path:?}: ")), "{path}: {}", show(&o));
        assert!(err.contains(&format!("{why} (invalid argument)")), "{path}: {}", show(&o));
    }
    let o = berth.cli(&["containers", "ls"]);
    assert!(!out(&o).contains("bad"), "a refused container was made: {}", show(&o));

    // ReopenLog: of no container, of one with no task, of a created task, of an exec.
    let e = reopen(&berth, "nobody").expect_err("no container");
    assert!(e.is(Code::NotFound) && e.message.contains("container nobody: not found"), "{e}");
    let log = berth.dir.path().join("c1.log");
    let o = berth.cli(&[
        "containers",
        "create",
        "--log-path",
        &log.display().to_string(),
        "tiny",
        "c1",
        "sleep",
        "100",
    ]);
    assert!(o.status.success(), "{}", show(&o));
    let e = reopen(&berth, "c1").expect_err("no task");
    assert!(e.is(Code::NotFound) && e.message.contains("container c1 has no task"), "{e}");
    let services = berth.clients(Duration::from_secs(10));
    block_on(services.runtime.call(CreateTask(TaskRef::init("default", "c1")))).expect("create task");
    assert!(log.exists(), "the log file is made with the task");
    let e = reopen(&berth, "c1").expect_err("created, not started");
    assert!(e.is(Code::FailedPrecondition) && e.message.contains("container c1 is not running"), "{e}");
    let exec = TaskRef { exec_id: Some("e1".into()), ..TaskRef::init("default", "c1") };
    let e = block_on(services.runtime.call(ReopenLog(exec))).expect_err("an exec");
    assert!(e.is(Code::InvalidArgument) && e.message.contains("exec e1 of container c1"), "{e}");
    let o = berth.cli(&["containers", "rm", "--force", "c1"]);
    assert!(o.status.success(), "{}", show(&o));

    // A foreground run attaches to the output at its log path.
    let fg = berth.dir.path().join("fg/0.log");
    let fg_s = fg.display().to_string();
    let o = berth.cli(&[
        "run",
        "--rm",
        "--log-path",
        &fg_s,
        "tiny",
        "fg",
        "sh",
        "-c",
        "printf abc; echo err >&2; exit 3",
    ]);
    assert_eq!(o.status.code(), Some(3), "{}", show(&o));
    assert_eq!(
        (out(&o).as_str(), String::from_utf8_lossy(&o.stderr).as_ref()),
        ("abc", "err\n"),
        "{}",
        show(&o)
    );
    assert!(records(&fg).contains(&Rec { stream: OutputStream::Stdout, partial: true, data: "abc".into() }));
    teardown(&berth);
}
