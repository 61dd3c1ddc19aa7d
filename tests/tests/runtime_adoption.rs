//! Containers outlive every berth process: SIGKILL the runtime service (or berthd itself)
//! while containers run; they keep running, the new service adopts them, and one that
//! exited meanwhile still reports its true exit code.

mod runtime_support;

use std::time::{Duration, Instant};

use berth_system_tests::{Berth, pid_alive, signal};
use nix::sys::signal::Signal;
use runtime_support::{can_run, import_busybox, out, show, teardown};

fn init_pid(berth: &Berth, id: &str) -> u32 {
    let path = berth.state.join("tasks/default").join(id).join("init.pid");
    std::fs::read_to_string(&path).expect("init.pid").trim().parse().expect("pid")
}

fn wait_for(what: &str, timeout: Duration, ok: impl Fn() -> bool) {
    let start = Instant::now();
    while !ok() {
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn tasks(berth: &Berth) -> Vec<serde_json::Value> {
    let o = berth.cli(&["tasks", "ls", "--format", "json"]);
    assert!(o.status.success(), "{}", show(&o));
    serde_json::from_str(&out(&o)).expect("tasks json")
}

fn start_five(berth: &Berth) -> Vec<u32> {
    import_busybox(berth, "tiny", serde_json::json!({"Cmd": ["sh"]}));
    let waiter = "while [ ! -e /tmp/stop ]; do sleep 0.05; done; exit 7";
    let o = berth.cli(&["run", "-d", "tiny", "a0", "sh", "-c", waiter]);
    assert!(o.status.success(), "{}", show(&o));
    for i in 1..5 {
        let o = berth.cli(&["run", "-d", "tiny", &format!("a{i}"), "sleep", "1000"]);
        assert!(o.status.success(), "{}", show(&o));
    }
    (0..5).map(|i| init_pid(berth, &format!("a{i}"))).collect()
}

#[test]
fn sigkill_runtime_service_with_five_containers() {
    if !can_run("runc") {
        return;
    }
    let mut berth = Berth::start();
    let pids = start_five(&berth);
    let runtime_pid = berth.status("runtime").pid.expect("runtime pid");
    // Kill it and hold it down while a0 exits.
    signal(runtime_pid, Signal::SIGKILL);
    let o = berth.cli(&["services", "stop", "runtime"]);
    assert!(o.status.success(), "{}", show(&o));
    std::fs::write(berth.state.join("tasks/default/a0/rootfs/tmp/stop"), b"").expect("stop file");
    let exit_file = berth.state.join("tasks/default/a0/exit.json");
    // exit.json exists (empty) from the task's creation; the shim fills it at the exit.
    wait_for("a0 to exit", Duration::from_secs(10), || {
        std::fs::metadata(&exit_file).is_ok_and(|m| m.len() > 0)
    });
    for (i, pid) in pids.iter().enumerate().skip(1) {
        assert!(pid_alive(*pid), "a{i} survived the runtime service");
    }
    let o = berth.cli(&["services", "start", "runtime"]);
    assert!(o.status.success(), "{}", show(&o));
    let list = tasks(&berth);
    assert_eq!(list.len(), 5, "{list:?}");
    for t in &list {
        if t["id"] == "a0" {
            assert_eq!(t["status"], "stopped");
            assert_eq!(t["exit_status"], 7);
        } else {
            assert_eq!(t["status"], "running", "{t}");
        }
    }
    let o = berth.cli(&["tasks", "wait", "a0"]);
    assert_eq!(o.status.code(), Some(7), "{}", show(&o));
    let o = berth.cli(&["tasks", "delete", "a0"]);
    assert_eq!(out(&o).trim(), "a0 7", "{}", show(&o));
    for i in 1..5 {
        let id = format!("a{i}");
        assert!(berth.cli(&["tasks", "kill", "-s", "9", &id]).status.success());
        assert_eq!(berth.cli(&["tasks", "wait", &id]).status.code(), Some(137));
        assert!(berth.cli(&["tasks", "delete", &id]).status.success());
    }
    teardown(&berth);
}

#[test]
fn sigkill_berthd_containers_survive_and_are_adopted() {
    if !can_run("runc") {
        return;
    }
    let mut berth = Berth::start();
    let pids = start_five(&berth);
    berth.kill_launcher();
    std::thread::sleep(Duration::from_millis(300));
    for (i, pid) in pids.iter().enumerate() {
        assert!(pid_alive(*pid), "a{i} survived berthd");
    }
    berth.launch();
    let list = tasks(&berth);
    assert_eq!(list.len(), 5, "{list:?}");
    assert!(list.iter().all(|t| t["status"] == "running"), "{list:?}");
    for (i, pid) in pids.iter().enumerate() {
        let id = format!("a{i}");
        assert!(berth.cli(&["tasks", "kill", "-s", "KILL", &id]).status.success());
        assert!(berth.cli(&["tasks", "wait", &id]).status.code() == Some(137));
        assert!(berth.cli(&["tasks", "delete", &id]).status.success());
        assert!(!pid_alive(*pid));
    }
    teardown(&berth);
}
