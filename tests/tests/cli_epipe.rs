//! `berth … | head -1`: a command whose stdout is a pipe nobody reads any more exits
//! quietly with status 141 (as a coreutils program killed by SIGPIPE shows in a shell),
//! never with a panic (it was rc 101 and "failed printing to stdout: Broken pipe").

mod runtime_support;

use std::io::{BufRead, BufReader};
use std::os::fd::OwnedFd;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use berth_system_tests::{Berth, bin};
use runtime_support::{berth_with_tiny, show, teardown};

/// The status documented for a broken pipe.
const EPIPE_EXIT: i32 = 141;

fn berth_cmd(berth: &Berth, args: &[&str]) -> Command {
    let mut cmd = Command::new(bin("berth"));
    cmd.arg("--state").arg(&berth.state).args(args).stdin(Stdio::null()).stderr(Stdio::piped());
    cmd
}

/// Runs `berth ARGS` with stdout a pipe whose reader is already gone.
fn into_closed_pipe(berth: &Berth, args: &[&str]) -> Output {
    let (read, write): (OwnedFd, OwnedFd) = nix::unistd::pipe().expect("pipe");
    drop(read);
    let child = berth_cmd(berth, args).stdout(Stdio::from(write)).spawn().expect("spawn berth");
    child.wait_with_output().expect("wait")
}

fn assert_quiet(o: &Output, what: &str) {
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(EPIPE_EXIT), "{what}: {}", show(o));
    assert!(!stderr.contains("panicked"), "{what}: a panic: {stderr}");
    assert!(stderr.trim().is_empty(), "{what}: exits quietly: {stderr}");
}

#[test]
fn every_command_exits_quietly_on_a_broken_pipe() {
    let Some(berth) = berth_with_tiny(&["runc"]) else { return };
    // Output for `tasks logs`, and a stopped container that keeps it.
    let o = berth.cli(&["run", "tiny", "talk", "sh", "-c", "for i in 1 2 3 4 5; do echo line $i; done"]);
    assert!(o.status.success(), "{}", show(&o));

    for args in [
        &["images", "ls"][..],
        &["tasks", "logs", "talk"],
        &["events", "--since", "1"],
        &["containers", "ls"],
    ] {
        assert_quiet(&into_closed_pipe(&berth, args), &args.join(" "));
    }

    // `berth events --since 1 | head -1`: the reader takes one line and leaves; the next
    // event written (one happens after it left) ends the command.
    let mut child =
        berth_cmd(&berth, &["events", "--since", "1"]).stdout(Stdio::piped()).spawn().expect("spawn");
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
    let mut first = String::new();
    stdout.read_line(&mut first).expect("first line");
    assert!(!first.trim().is_empty(), "an event line");
    drop(stdout);
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut n = 0;
    while child.try_wait().expect("wait").is_none() {
        assert!(Instant::now() < deadline, "berth events still running with nobody reading");
        let o = berth.cli(&["namespaces", "create", &format!("epipe{n}")]);
        assert!(o.status.success(), "{}", show(&o));
        n += 1;
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_quiet(&child.wait_with_output().expect("wait"), "events --since 1 | head -1");

    let _ = berth.cli(&["tasks", "delete", "talk"]);
    let _ = berth.cli(&["containers", "rm", "talk"]);
    teardown(&berth);
}
