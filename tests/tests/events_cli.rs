//! `berth events` as a user runs it: replay with `--since`, filters, JSON lines, and it
//! keeps following across a restart of the events service.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use berth_ipc::events::payload::{ContentCreate, TaskExit};
use berth_ipc::events::{NewEvent, PublishBatch};
use berth_system_tests::{Berth, bin, block_on, signal};
use nix::sys::signal::Signal;

#[test]
fn berth_events_replays_filters_and_follows_across_a_restart() {
    let mut berth = Berth::start();
    let clients = berth.clients(Duration::from_secs(10));
    let publish = |counter: u64, events: Vec<NewEvent>| {
        block_on(clients.events.call(PublishBatch {
            publisher: "cli-test".into(),
            first_counter: counter,
            events,
        }))
        .expect("publish")
    };
    let exit = |id: &str| {
        NewEvent::new("k8s.io", TaskExit { container_id: id.into(), id: id.into(), ..Default::default() })
    };
    publish(
        1,
        vec![exit("a"), NewEvent::new("default", ContentCreate { digest: "d".into(), size: 1 }), exit("b")],
    );

    let mut child = Command::new(bin("berth"))
        .arg("--state")
        .arg(&berth.state)
        .args([
            "events",
            "--since",
            "1",
            "--format",
            "json",
            "--filter",
            "topic==/tasks/exit,namespace==k8s.io",
        ])
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
    let read = || -> serde_json::Value {
        let line = rx.recv_timeout(Duration::from_secs(15)).expect("a line from berth events");
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("JSON line {line:?}: {e}"))
    };
    let first = read();
    assert_eq!(first["topic"], "/tasks/exit");
    assert_eq!(first["namespace"], "k8s.io");
    assert_eq!(first["type"], "TaskExit");
    assert_eq!(first["event"]["container_id"], "a");
    let first_seq = first["seq"].as_u64().expect("seq");
    let second = read();
    assert_eq!(second["event"]["container_id"], "b");
    assert_eq!(second["seq"].as_u64(), Some(first_seq + 2), "the content event in between is filtered out");
    assert!(second["time"].as_str().is_some_and(|t| t.ends_with('Z')));

    // The service is killed and restarted by the launcher; the CLI follows on.
    let pid = berth.status("events").pid.expect("pid");
    signal(pid, Signal::SIGKILL);
    publish(4, vec![exit("c")]);
    assert_eq!(read()["event"]["container_id"], "c");
    let _ = child.kill();
    let _ = child.wait();
}
