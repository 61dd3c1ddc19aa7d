//! Containers' output logs: kept under the root dir with a size cap and rotation (never on
//! the state dir's tmpfs), read after the fact with `berth tasks logs`, removed with the
//! container.

mod runtime_support;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use berth_ipc::launcher::ServiceState;
use berth_system_tests::{Berth, bin, signal};
use nix::sys::signal::Signal;
use runtime_support::{can_run, import_busybox, out, show, teardown};

const CAP: u64 = 65536;
const FILES: u64 = 3;

fn berth_with_cap() -> Option<Berth> {
    if !can_run("runc") {
        return None;
    }
    let berth = Berth::start_with(&format!("[runtime]\nlog_max_bytes = {CAP}\nlog_max_files = {FILES}\n"));
    import_busybox(&berth, "tiny", serde_json::json!({"Cmd": ["sh"]}));
    Some(berth)
}

/// Regular files under `dir` and their sizes, not descending into a container's rootfs.
fn files_under(dir: &Path) -> Vec<(String, u64)> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else { return found };
    for e in entries.flatten() {
        let (path, Ok(meta)) = (e.path(), e.metadata()) else { continue };
        if meta.is_dir() && e.file_name() != "rootfs" {
            found.extend(files_under(&path));
        } else if meta.is_file() {
            found.push((path.display().to_string(), meta.len()));
        }
    }
    found
}

fn wait_for(what: &str, timeout: Duration, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `berth ARGS…`, killed if it runs longer than `timeout` (a follow that never ends).
fn cli_bounded(berth: &Berth, args: &[&str], timeout: Duration) -> (Output, Duration) {
    let started = Instant::now();
    let mut child = Command::new(bin("berth"))
        .arg("--state")
        .arg(&berth.state)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run berth");
    while child.try_wait().expect("wait").is_none() && started.elapsed() < timeout {
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    (child.wait_with_output().expect("output"), started.elapsed())
}

#[test]
fn a_flood_of_output_is_capped_on_the_root_dir() {
    let Some(berth) = berth_with_cap() else { return };
    // About 8 MB of output (whole lines of 31 bytes), 40 times what the cap keeps.
    let script = "yes berth-log-flood-line-of-output | head -c 7999984; echo done; sleep 1000";
    let o = berth.cli(&["run", "-d", "tiny", "flood", "sh", "-c", script]);
    assert!(o.status.success(), "{}", show(&o));
    wait_for("the flood to end", Duration::from_secs(120), || {
        out(&berth.cli(&["tasks", "logs", "flood", "--tail", "1"])) == "done\n"
    });
    let logs = berth.root.join("logs/default/flood");
    let kept = files_under(&logs);
    assert!(!kept.is_empty() && kept.len() as u64 <= FILES, "{kept:?}");
    for (path, len) in &kept {
        assert!(*len <= CAP, "{path}: {len} bytes over the cap of {CAP}");
    }
    let total: u64 = kept.iter().map(|(_, l)| l).sum();
    assert!(total > CAP, "rotated files kept: {kept:?}");
    // Nothing of the output on the state dir (a tmpfs in production).
    let state: u64 = files_under(&berth.state).iter().map(|(_, l)| l).sum();
    assert!(state < 1 << 20, "{state} bytes under the state dir: {:?}", files_under(&berth.state));
    let o = berth.cli(&["tasks", "logs", "flood", "--tail", "3"]);
    assert_eq!(
        out(&o),
        "berth-log-flood-line-of-output\nberth-log-flood-line-of-output\ndone\n",
        "{}",
        show(&o)
    );
    let o = berth.cli(&["containers", "rm", "--force", "flood"]);
    assert!(o.status.success(), "{}", show(&o));
    assert!(!logs.exists(), "logs left after containers rm");
    teardown(&berth);
}

#[test]
fn tasks_logs_tail_follow_after_exit_restart_and_rm() {
    let Some(mut berth) = berth_with_cap() else { return };
    let script =
        "echo line1; echo line2; printf 'line3\\n'; sleep 0.5; echo oops >&2; sleep 2; printf late; exit 0";
    let o = berth.cli(&["run", "-d", "tiny", "c1", "sh", "-c", script]);
    assert!(o.status.success(), "{}", show(&o));
    wait_for("the first lines", Duration::from_secs(10), || {
        String::from_utf8_lossy(&berth.cli(&["tasks", "logs", "c1"]).stderr).contains("oops")
    });
    // The last two lines of both streams: line3 and oops. (Two pipes have no order between
    // them, so oops is written half a second after line3.)
    let o = berth.cli(&["tasks", "logs", "c1", "--tail", "2"]);
    assert_eq!(out(&o), "line3\n", "{}", show(&o));
    assert_eq!(String::from_utf8_lossy(&o.stderr), "oops\n", "{}", show(&o));
    // Follow: the rest arrives, and the command ends when the process exits.
    let (o, took) = cli_bounded(&berth, &["tasks", "logs", "-f", "c1"], Duration::from_secs(20));
    assert!(took < Duration::from_secs(15), "follow did not end at the exit: {}", show(&o));
    assert_eq!(out(&o), "line1\nline2\nline3\nlate", "{}", show(&o));
    // After the exit, byte-exact (a last line without newline stays so).
    let o = berth.cli(&["tasks", "logs", "c1"]);
    assert_eq!(out(&o), "line1\nline2\nline3\nlate", "{}", show(&o));
    let o = berth.cli(&["tasks", "logs", "c1", "--timestamps"]);
    let text = out(&o);
    let lines: Vec<&str> = text.split('\n').collect();
    assert_eq!(lines.len(), 4, "{text}");
    for (line, want) in lines.iter().zip(["line1", "line2", "line3", "late"]) {
        let (time, rest) = line.split_once(' ').expect("a time first");
        assert!(time.len() == 30 && time.starts_with("20") && time.ends_with('Z'), "{line}");
        assert_eq!(rest, want);
    }
    let future = (std::time::SystemTime::now() + Duration::from_secs(3600))
        .duration_since(std::time::UNIX_EPOCH)
        .expect("now")
        .as_secs()
        .to_string();
    let o = berth.cli(&["tasks", "logs", "c1", "--since", &future]);
    assert!(o.status.success() && o.stdout.is_empty() && o.stderr.is_empty(), "{}", show(&o));
    let o = berth.cli(&["tasks", "logs", "c1", "--since", "1h", "--tail", "1"]);
    assert_eq!(out(&o), "late", "{}", show(&o));
    let o = berth.cli(&["tasks", "logs", "c1", "--since", "soon"]);
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("\"soon\""), "{}", show(&o));
    // A restarted runtime service reads them still.
    let pid = berth.status("runtime").pid.expect("runtime pid");
    signal(pid, Signal::SIGKILL);
    berth.wait_until("runtime restarted", Duration::from_secs(20), |l| {
        l.iter().any(|s| {
            s.name == "runtime" && s.pid.is_some_and(|p| p != pid) && s.state == ServiceState::Running
        })
    });
    let o = berth.cli(&["tasks", "logs", "c1"]);
    assert_eq!(out(&o), "line1\nline2\nline3\nlate", "after a restart: {}", show(&o));
    // Without a task: still there, until the container goes.
    let o = berth.cli(&["tasks", "delete", "c1"]);
    assert!(o.status.success(), "{}", show(&o));
    let o = berth.cli(&["tasks", "logs", "c1", "-f"]);
    assert_eq!(out(&o), "line1\nline2\nline3\nlate", "without a task: {}", show(&o));
    let o = berth.cli(&["containers", "rm", "c1"]);
    assert!(o.status.success(), "{}", show(&o));
    assert!(!berth.root.join("logs/default/c1").exists(), "logs left after containers rm");
    let o = berth.cli(&["tasks", "logs", "c1"]);
    assert!(!o.status.success(), "{}", show(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("c1"), "{}", show(&o));
    // Live output stays byte-exact, partial lines and both streams.
    let o = berth.cli(&[
        "run",
        "--rm",
        "tiny",
        "p1",
        "sh",
        "-c",
        "printf abc; printf def >&2; printf 'g\\n\\nh'",
    ]);
    assert_eq!(out(&o), "abcg\n\nh", "{}", show(&o));
    assert_eq!(String::from_utf8_lossy(&o.stderr), "def", "{}", show(&o));
    teardown(&berth);
}
