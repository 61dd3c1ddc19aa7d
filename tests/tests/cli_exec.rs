//! `berth tasks exec` as the README shows it: no `--exec-id` needed (one is made up), and
//! an exec id can be used again once its earlier process has exited (as ctr allows), with
//! the new process's output only; a process of that id still running keeps it.

mod runtime_support;

use berth_system_tests::Berth;
use runtime_support::{berth_with_tiny, out, show, teardown};

fn exec(berth: &Berth, args: &[&str]) -> std::process::Output {
    berth.cli(&[&["tasks", "exec"][..], args].concat())
}

#[test]
fn exec_ids_are_optional_and_reusable() {
    let Some(berth) = berth_with_tiny(&["runc"]) else { return };
    let o = berth.cli(&["run", "-d", "tiny", "web", "sleep", "100"]);
    assert!(o.status.success(), "{}", show(&o));

    // The README's example, twice: each gets an id of its own.
    for _ in 0..2 {
        let o = exec(&berth, &["web", "hostname"]);
        assert!(o.status.success(), "{}", show(&o));
        assert_eq!(out(&o).trim(), "web", "{}", show(&o));
    }
    let o = exec(&berth, &["web", "sh", "-c", "exit 5"]);
    assert_eq!(o.status.code(), Some(5), "the exec's status: {}", show(&o));

    // Detached without an id: the id made up is told (on stderr), and can be waited on.
    let o = exec(&berth, &["-d", "web", "sh", "-c", "exit 4"]);
    assert!(o.status.success(), "{}", show(&o));
    let stderr = String::from_utf8_lossy(&o.stderr).into_owned();
    let id = stderr.trim().strip_prefix("exec id ").unwrap_or_else(|| panic!("{}", show(&o))).to_string();
    assert!(id.starts_with("exec-") && id.len() > "exec-".len(), "{id}");
    let o = berth.cli(&["tasks", "wait", "--exec-id", &id, "web"]);
    assert_eq!(o.status.code(), Some(4), "{}", show(&o));

    // An id used again once its process has exited: the new output only.
    let o = exec(&berth, &["--exec-id", "again", "web", "echo", "one"]);
    assert_eq!(out(&o), "one\n", "{}", show(&o));
    let o = exec(&berth, &["--exec-id", "again", "web", "echo", "two"]);
    assert!(o.status.success(), "an exited exec's id is free again: {}", show(&o));
    assert_eq!(out(&o), "two\n", "{}", show(&o));
    let o = berth.cli(&["tasks", "logs", "--exec-id", "again", "web"]);
    assert_eq!(out(&o), "two\n", "the log is the new process's: {}", show(&o));

    // While a process of that id runs, the id is taken.
    let o = exec(&berth, &["-d", "--exec-id", "busy", "web", "sleep", "100"]);
    assert!(o.status.success(), "{}", show(&o));
    let o = exec(&berth, &["--exec-id", "busy", "web", "true"]);
    assert!(!o.status.success(), "{}", show(&o));
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(stderr.contains("exec busy: already exists and still runs"), "{}", show(&o));
    let o = berth.cli(&["tasks", "kill", "-s", "KILL", "--exec-id", "busy", "web"]);
    assert!(o.status.success(), "{}", show(&o));
    let _ = berth.cli(&["tasks", "wait", "--exec-id", "busy", "web"]);
    let o = exec(&berth, &["--exec-id", "busy", "web", "echo", "free"]);
    assert_eq!(out(&o), "free\n", "killed and waited, the id is free: {}", show(&o));

    let _ = berth.cli(&["tasks", "kill", "-s", "KILL", "web"]);
    let _ = berth.cli(&["tasks", "wait", "web"]);
    let o = berth.cli(&["tasks", "delete", "web"]);
    assert!(o.status.success(), "{}", show(&o));
    let o = berth.cli(&["containers", "rm", "web"]);
    assert!(o.status.success(), "{}", show(&o));
    teardown(&berth);
}
