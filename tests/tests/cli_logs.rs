//! `berth tasks logs` as a user reads it (issue 15, item 4): the output of a running task,
//! an exited one, one whose task was deleted, until the container is removed; and a
//! container created again under an id whose old logs a crash kept shows only its own.
//! (Cap, rotation, follow, --tail/--since/--timestamps: `runtime_logs.rs`.)

mod runtime_support;

use std::time::{Duration, Instant};

use berth_system_tests::Berth;
use runtime_support::{berth_with_tiny, out, show, teardown};

fn logs(berth: &Berth, id: &str) -> String {
    let o = berth.cli(&["tasks", "logs", id]);
    assert!(o.status.success(), "{}", show(&o));
    out(&o)
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for e in std::fs::read_dir(from).expect("read dir").flatten() {
        std::fs::copy(e.path(), to.join(e.file_name())).expect("copy");
    }
}

#[test]
fn logs_while_running_after_exit_after_task_delete_until_rm() {
    let Some(berth) = berth_with_tiny(&["runc"]) else { return };
    let o = berth.cli(&["run", "-d", "tiny", "lg1", "sh", "-c", "echo one; sleep 2; echo two"]);
    assert!(o.status.success(), "{}", show(&o));
    let deadline = Instant::now() + Duration::from_secs(10);
    while logs(&berth, "lg1") != "one\n" {
        assert!(Instant::now() < deadline, "running: {:?}", logs(&berth, "lg1"));
        std::thread::sleep(Duration::from_millis(50));
    }
    let o = berth.cli(&["tasks", "wait", "lg1"]);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    assert_eq!(logs(&berth, "lg1"), "one\ntwo\n", "exited");
    let o = berth.cli(&["tasks", "delete", "lg1"]);
    assert!(o.status.success(), "{}", show(&o));
    assert_eq!(logs(&berth, "lg1"), "one\ntwo\n", "task deleted, container kept");
    let o = berth.cli(&["containers", "rm", "lg1"]);
    assert!(o.status.success(), "{}", show(&o));
    let o = berth.cli(&["tasks", "logs", "lg1"]);
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("lg1"), "{}", show(&o));
    teardown(&berth);
}

#[test]
fn a_new_container_does_not_show_a_stale_log_dir() {
    let Some(berth) = berth_with_tiny(&["runc"]) else { return };
    let dir = berth.root.join("logs/default/st1");
    let o = berth.cli(&["run", "tiny", "st1", "echo", "old output"]);
    assert!(o.status.success(), "{}", show(&o));
    // What a crash between the record's removal and the logs' leaves: the dir, no container.
    let o = berth.cli(&["tasks", "delete", "st1"]);
    assert!(o.status.success(), "{}", show(&o));
    let kept = berth.dir.path().join("kept-logs");
    copy_dir(&dir, &kept);
    let o = berth.cli(&["containers", "rm", "st1"]);
    assert!(o.status.success(), "{}", show(&o));
    copy_dir(&kept, &dir);
    let o = berth.cli(&["run", "tiny", "st1", "echo", "new output"]);
    assert_eq!(out(&o), "new output\n", "{}", show(&o));
    assert_eq!(logs(&berth, "st1"), "new output\n");
    teardown(&berth);
}
