//! `berth run` in the foreground, without a terminal, as a user stops it: the signal the
//! client gets reaches the container's init as it was sent (Ctrl-C is SIGINT, not
//! SIGTERM), the output the process writes after it is still shown, and the client exits
//! with the container's status. A `--rm` client killed by SIGKILL leaves nothing running:
//! the runtime service sees its guard drop, kills the task and removes the container.

mod runtime_support;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use berth_system_tests::{Berth, bin, pid_alive, signal};
use nix::sys::signal::Signal;
use runtime_support::{berth_with_tiny, out, show, teardown};

/// A `berth run` in the background with its stdout read line by line.
struct Client {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Client {
    fn spawn(berth: &Berth, args: &[&str]) -> Client {
        let mut child = Command::new(bin("berth"))
            .arg("--state")
            .arg(&berth.state)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn berth");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        Client { child, lines, seen: Vec::new() }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits (up to 20 s) for a line of output equal to `want`.
    fn wait_line(&mut self, want: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(line) = self.lines.recv_timeout(Duration::from_millis(100)) {
                self.seen.push(line.clone());
                if line == want {
                    return;
                }
            }
        }
        let _ = self.child.kill();
        panic!("no line {want:?} from the container; saw {:?}", self.seen);
    }

    /// The exit code within `limit` (killing the client and failing past it), and every
    /// line of output seen.
    fn finish(mut self, limit: Duration) -> (Option<i32>, Vec<String>, String) {
        let deadline = Instant::now() + limit;
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                break status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                let mut e = String::new();
                if let Some(mut s) = self.child.stderr.take() {
                    let _ = std::io::Read::read_to_string(&mut s, &mut e);
                }
                panic!("berth run still running {limit:?} after the signal; output {:?} {e}", self.seen);
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        self.seen.extend(self.lines.iter());
        let mut stderr = String::new();
        if let Some(mut e) = self.child.stderr.take() {
            let _ = std::io::Read::read_to_string(&mut e, &mut stderr);
        }
        (status.code(), self.seen, stderr)
    }

    /// Whether the client still runs.
    fn running(&mut self) -> bool {
        self.child.try_wait().expect("wait").is_none()
    }
}

/// The pid of task `id`'s init, from `tasks ls`.
fn init_pid(berth: &Berth, id: &str) -> u32 {
    let o = berth.cli(&["tasks", "ls", "--format", "json"]);
    let tasks: serde_json::Value = serde_json::from_slice(&o.stdout).expect("tasks json");
    let task = tasks.as_array().and_then(|a| a.iter().find(|t| t["id"] == id));
    task.and_then(|t| t["pid"].as_u64())
        .and_then(|p| u32::try_from(p).ok())
        .unwrap_or_else(|| panic!("{}", show(&o)))
}

/// The container's name is no longer listed.
fn wait_gone(berth: &Berth, id: &str, limit: Duration) {
    let deadline = Instant::now() + limit;
    loop {
        let c = berth.cli(&["containers", "ls", "--format", "json"]);
        let t = berth.cli(&["tasks", "ls", "--format", "json"]);
        if !out(&c).contains(&format!("\"{id}\"")) && !out(&t).contains(&format!("\"{id}\"")) {
            return;
        }
        assert!(Instant::now() < deadline, "container {id} still there:\n{}\n{}", show(&c), show(&t));
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn ctrl_c_reaches_the_container_as_sigint_and_its_last_output_is_shown() {
    let Some(berth) = berth_with_tiny(&["runc"]) else { return };
    // Its handler writes two lines, a moment apart, then exits 42.
    let script = "trap 'echo caught INT; sleep 0.3; echo last words; exit 42' INT; \
                  echo ready; while :; do sleep 0.1; done";
    let mut c = Client::spawn(&berth, &["run", "--rm", "tiny", "sig1", "sh", "-c", script]);
    c.wait_line("ready");
    signal(c.pid(), Signal::SIGINT);
    let (code, lines, stderr) = c.finish(Duration::from_secs(15));
    assert_eq!(code, Some(42), "the container's exit code; output {lines:?}, stderr {stderr}");
    assert!(lines.iter().any(|l| l == "caught INT"), "{lines:?}");
    assert_eq!(lines.last().map(String::as_str), Some("last words"), "the last output is not lost");
    wait_gone(&berth, "sig1", Duration::from_secs(5));
    teardown(&berth);
}

#[test]
fn a_pid_1_that_ignores_sigterm_stops_on_sigint_and_other_signals_pass_as_sent() {
    let Some(berth) = berth_with_tiny(&["runc"]) else { return };
    // PID 1 ignores SIGTERM outright; SIGUSR1 and SIGHUP are reported; SIGINT ends it.
    let script = "trap '' TERM; trap 'echo got USR1' USR1; trap 'echo got HUP' HUP; \
                  trap 'echo bye; exit 130' INT; echo ready; while :; do sleep 0.1; done";
    let mut c = Client::spawn(&berth, &["run", "--rm", "tiny", "sig2", "sh", "-c", script]);
    c.wait_line("ready");
    signal(c.pid(), Signal::SIGUSR1);
    c.wait_line("got USR1");
    signal(c.pid(), Signal::SIGHUP);
    c.wait_line("got HUP");
    signal(c.pid(), Signal::SIGTERM);
    std::thread::sleep(Duration::from_millis(800));
    assert!(c.running(), "SIGTERM is ignored by the container, so the client keeps showing it");
    signal(c.pid(), Signal::SIGINT);
    let (code, lines, stderr) = c.finish(Duration::from_secs(15));
    assert_eq!(code, Some(130), "output {lines:?}, stderr {stderr}");
    assert_eq!(lines.last().map(String::as_str), Some("bye"), "{lines:?}");
    wait_gone(&berth, "sig2", Duration::from_secs(5));

    // The container's own exit status passes through unchanged.
    let o = berth.cli(&["run", "--rm", "tiny", "sig3", "sh", "-c", "exit 3"]);
    assert_eq!(o.status.code(), Some(3), "{}", show(&o));
    teardown(&berth);
}

#[test]
fn a_killed_rm_client_leaves_no_container_running() {
    let Some(berth) = berth_with_tiny(&["runc"]) else { return };
    let mut c =
        Client::spawn(&berth, &["run", "--rm", "tiny", "orphan", "sh", "-c", "echo ready; sleep 1717"]);
    c.wait_line("ready");
    let pid = init_pid(&berth, "orphan");
    assert!(pid_alive(pid), "the container's process runs");
    signal(c.pid(), Signal::SIGKILL);
    let (code, _, _) = c.finish(Duration::from_secs(5));
    assert_eq!(code, None, "killed by a signal");
    wait_gone(&berth, "orphan", Duration::from_secs(15));
    assert!(!pid_alive(pid), "the container's process was killed");

    // Without --rm the client owns nothing: the container keeps running (as docker's), for
    // `tasks attach`, `tasks logs` or `tasks kill`.
    let mut c = Client::spawn(&berth, &["run", "tiny", "kept", "sh", "-c", "echo ready; sleep 1718"]);
    c.wait_line("ready");
    let pid = init_pid(&berth, "kept");
    signal(c.pid(), Signal::SIGKILL);
    let _ = c.finish(Duration::from_secs(5));
    std::thread::sleep(Duration::from_millis(500));
    assert!(pid_alive(pid), "a container without --rm keeps running");
    let o = berth.cli(&["tasks", "kill", "-s", "KILL", "kept"]);
    assert!(o.status.success(), "{}", show(&o));
    let _ = berth.cli(&["tasks", "wait", "kept"]);
    let _ = berth.cli(&["tasks", "delete", "kept"]);
    let _ = berth.cli(&["containers", "rm", "kept"]);
    teardown(&berth);
}

/// The runtime side of `run --rm`'s guard: a service restart ends the guard's stream but
/// leaves the task running (the client opens a new one); dropping the guard while the task
/// runs (the client gone) kills it and removes the container.
#[test]
fn a_guard_survives_a_runtime_restart_and_its_drop_removes_the_container() {
    use berth_ipc::runtime::{Guard, TaskRef};
    let Some(berth) = berth_with_tiny(&["runc"]) else { return };
    let o = berth.cli(&["run", "-d", "tiny", "held", "sleep", "300"]);
    assert!(o.status.success(), "{}", show(&o));
    let pid = init_pid(&berth, "held");
    let services = berth.clients(Duration::from_secs(10));
    let task = TaskRef::init("default", "held");
    berth_system_tests::block_on(async {
        let mut guard = services.runtime.stream(Guard(task.clone())).await.expect("guard");
        let o = berth.cli(&["services", "restart", "runtime"]);
        assert!(o.status.success(), "{}", show(&o));
        let ended =
            tokio::time::timeout(Duration::from_secs(10), guard.next()).await.expect("the stream ends");
        assert!(ended.is_some_and(|r| r.is_err_and(|e| e.is(berth_ipc::Code::Unavailable))), "Unavailable");
    });
    std::thread::sleep(Duration::from_millis(300));
    assert!(pid_alive(pid), "a service restart is not the client going away");
    berth_system_tests::block_on(async {
        let guard = services.runtime.stream(Guard(task.clone())).await.expect("a new guard");
        tokio::time::sleep(Duration::from_millis(200)).await;
        drop(guard);
        tokio::time::sleep(Duration::from_millis(200)).await;
    });
    wait_gone(&berth, "held", Duration::from_secs(15));
    assert!(!pid_alive(pid), "the dropped guard's task was killed");
    teardown(&berth);
}

/// `berth run --rm` keeps showing the output, each line once, when the runtime service
/// restarts under it, and still exits with the container's status.
#[test]
fn run_output_rides_through_a_runtime_restart() {
    let Some(berth) = berth_with_tiny(&["runc"]) else { return };
    let script =
        "echo ready; i=0; while [ $i -lt 30 ]; do i=$((i+1)); echo line $i; sleep 0.05; done; exit 5";
    let mut c = Client::spawn(&berth, &["run", "--rm", "tiny", "steady", "sh", "-c", script]);
    c.wait_line("ready");
    let o = berth.cli(&["services", "restart", "runtime"]);
    assert!(o.status.success(), "{}", show(&o));
    let (code, lines, stderr) = c.finish(Duration::from_secs(20));
    assert_eq!(code, Some(5), "output {lines:?}, stderr {stderr}");
    let want: Vec<String> =
        std::iter::once("ready".to_string()).chain((1..=30).map(|i| format!("line {i}"))).collect();
    assert_eq!(lines, want, "every line once, in order; stderr {stderr}");
    wait_gone(&berth, "steady", Duration::from_secs(5));
    teardown(&berth);
}
