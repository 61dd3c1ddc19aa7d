//! A container that outgrows its `--memory` limit is killed by the kernel's OOM killer:
//! `berth events` shows `/tasks/oom` for it, then its `/tasks/exit` (137), and its exit is
//! marked OOMKilled (`tasks ls`), where a later status (the CRI's `reason`) reads it.

mod runtime_support;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use berth_system_tests::{Berth, bin};
use runtime_support::{berth_with_tiny, out, show, teardown};

/// `(container, topic)` of the events of `containers`, from the start of the log, until
/// `last` matches one (20 s at most).
fn events_until(
    berth: &Berth,
    containers: &[&str],
    last: impl Fn(&(String, String)) -> bool,
) -> Vec<(String, String)> {
    let mut events = Command::new(bin("berth"))
        .arg("--state")
        .arg(&berth.state)
        .args(["events", "--since", "1", "--format", "json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("berth events");
    let (tx, rx) = mpsc::channel();
    let stdout = events.stdout.take().expect("stdout");
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let mut seen: Vec<(String, String)> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) else { continue };
        let v: serde_json::Value = serde_json::from_str(&line).expect("json line");
        let topic = v["topic"].as_str().unwrap_or_default().to_string();
        let who = containers.iter().find(|c| line.contains(&format!("\"container_id\":\"{c}\"")));
        if let Some(who) = who {
            seen.push((who.to_string(), topic));
            if seen.last().is_some_and(&last) {
                break;
            }
        }
    }
    let _ = events.kill();
    let _ = events.wait();
    seen
}

#[test]
fn an_oom_kill_in_a_running_container_is_published_at_once() {
    let Some(berth) = berth_with_tiny(&["runc"]) else { return };
    // A subshell holds the memory and is the one killed; the init lives on.
    let script = "(x=$(head -c 100000000 /dev/zero | tr '\\0' a)); echo child gone; sleep 100";
    let o = berth.cli(&["run", "-d", "--memory", "32m", "tiny", "part", "sh", "-c", script]);
    assert!(o.status.success(), "{}", show(&o));
    let seen = events_until(&berth, &["part"], |(_, topic)| topic == "/tasks/oom");
    assert_eq!(seen.last().map(|(_, t)| t.as_str()), Some("/tasks/oom"), "{seen:?}");
    let o = berth.cli(&["tasks", "ls"]);
    assert!(out(&o).contains("running"), "the init still runs: {}", show(&o));
    let _ = berth.cli(&["tasks", "kill", "-s", "KILL", "part"]);
    let o = berth.cli(&["tasks", "wait", "part"]);
    assert_eq!(o.status.code(), Some(137), "{}", show(&o));
    let o = berth.cli(&["tasks", "delete", "part"]);
    assert!(o.status.success(), "{}", show(&o));
    let _ = berth.cli(&["containers", "rm", "part"]);
    teardown(&berth);
}

#[test]
fn an_oom_killed_container_gets_tasks_oom_before_its_exit() {
    let Some(berth) = berth_with_tiny(&["runc"]) else { return };
    // The shell holds a 100 MB string: far past 32 MiB.
    let hog = "x=$(head -c 100000000 /dev/zero | tr '\\0' a); echo survived";
    let o = berth.cli(&["run", "--memory", "32m", "tiny", "hog", "sh", "-c", hog]);
    assert_eq!(o.status.code(), Some(137), "killed by SIGKILL: {}", show(&o));
    assert!(!out(&o).contains("survived"), "{}", show(&o));

    let o = berth.cli(&["tasks", "ls", "--format", "json"]);
    let tasks: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    let hog_task = tasks.as_array().and_then(|a| a.iter().find(|t| t["id"] == "hog")).cloned();
    let hog_task = hog_task.unwrap_or_else(|| panic!("{}", show(&o)));
    assert_eq!(hog_task["exit_reason"], "OOMKilled", "{}", show(&o));
    let o = berth.cli(&["tasks", "ls"]);
    assert!(out(&o).contains("137 (OOMKilled)"), "{}", show(&o));

    // A container that stays within its limit is not marked.
    let o =
        berth.cli(&["run", "--memory", "32m", "tiny", "calm", "sh", "-c", "head -c 1000 /dev/zero | wc -c"]);
    assert!(o.status.success(), "{}", show(&o));

    let seen = events_until(&berth, &["hog", "calm"], |(who, topic)| who == "calm" && topic == "/tasks/exit");
    let topics =
        |c: &str| -> Vec<&str> { seen.iter().filter(|(w, _)| w == c).map(|(_, t)| t.as_str()).collect() };
    let hog_topics = topics("hog");
    let oom = hog_topics.iter().position(|t| *t == "/tasks/oom");
    let exit = hog_topics.iter().position(|t| *t == "/tasks/exit");
    assert!(oom.is_some() && exit.is_some() && oom < exit, "/tasks/oom then /tasks/exit: {hog_topics:?}");
    assert!(!topics("calm").contains(&"/tasks/oom"), "no OOM for calm: {:?}", topics("calm"));
    assert!(topics("calm").contains(&"/tasks/exit"), "{seen:?}");

    for id in ["hog", "calm"] {
        let _ = berth.cli(&["tasks", "delete", id]);
        let _ = berth.cli(&["containers", "rm", id]);
    }
    teardown(&berth);
}
