//! `berth commit` of a running container freezes it while its changes are read and thaws
//! it after (the runtime's `/tasks/paused` and `/tasks/resumed` events, in that order, and
//! the task running again); `--pause=false` commits it without pausing.

mod runtime_support;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use berth_system_tests::{Berth, bin};
use runtime_support::{can_run, import_busybox, out, show, teardown};

/// Topics of the task events for container `c` seen while `f` runs (and 1 s after).
fn task_topics_during(berth: &Berth, f: impl FnOnce()) -> Vec<String> {
    let mut child = Command::new(bin("berth"))
        .arg("--state")
        .arg(&berth.state)
        .args(["events", "--format", "json", "--filter", "namespace==default"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("run berth events");
    let (tx, rx) = mpsc::channel();
    let stdout = child.stdout.take().expect("stdout");
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    std::thread::sleep(Duration::from_millis(500));
    f();
    let mut topics = Vec::new();
    while let Ok(line) = rx.recv_timeout(Duration::from_secs(1)) {
        let v: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
        if v["event"]["container_id"] == "c" {
            topics.push(v["topic"].as_str().unwrap_or_default().to_string());
        }
    }
    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), nix::sys::signal::SIGKILL);
    let _ = child.wait();
    topics
}

fn task_status(berth: &Berth) -> String {
    let o = berth.cli(&["--format", "json", "tasks", "ls"]);
    out(&o)
}

#[test]
fn commit_pauses_a_running_container_unless_told_not_to() {
    if !can_run("runc") {
        println!("skipped: runc cannot run containers here");
        return;
    }
    let berth = Berth::start();
    import_busybox(&berth, "base", serde_json::json!({"Cmd": ["sh"]}));
    let o = berth.cli(&["run", "-d", "base", "c", "sh", "-c", "echo hi > /srv/f; sleep 1000"]);
    assert!(o.status.success(), "{}", show(&o));
    std::thread::sleep(Duration::from_millis(300));

    let topics = task_topics_during(&berth, || {
        let o = berth.cli(&["commit", "c", "paused"]);
        assert!(o.status.success(), "{}", show(&o));
    });
    let paused = topics.iter().position(|t| t == "/tasks/paused");
    let resumed = topics.iter().position(|t| t == "/tasks/resumed");
    assert!(paused.is_some() && resumed > paused, "paused, then resumed: {topics:?}");
    assert!(task_status(&berth).contains("running"), "{}", task_status(&berth));

    let topics = task_topics_during(&berth, || {
        let o = berth.cli(&["commit", "--pause=false", "c", "running"]);
        assert!(o.status.success(), "{}", show(&o));
    });
    assert!(!topics.iter().any(|t| t == "/tasks/paused"), "--pause=false paused it: {topics:?}");
    assert!(task_status(&berth).contains("running"), "{}", task_status(&berth));

    let _ = berth.cli(&["tasks", "kill", "-s", "SIGKILL", "c"]);
    teardown(&berth);
}
