//! Small lies and dead ends a new user met (issue 15, item 8): berthd down said nothing for
//! 50 s; `run --rm -d` ignored `--rm`; `tasks pause` without a task blamed a shim socket;
//! leases took no resources; runc's empty cgroup parents stayed behind.

mod runtime_support;

use std::path::Path;
use std::time::{Duration, Instant};

use berth_ipc::launcher::ServiceState;
use berth_system_tests::{Berth, signal};
use nix::sys::signal::Signal;
use runtime_support::{berth_with_tiny, out, show, teardown};

fn err(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn wait_for(what: &str, timeout: Duration, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn berthd_down_is_said_at_once_for_every_command() {
    let mut berth = Berth::start();
    berth.stop();
    let sock = berth.state.join("berthd.sock");
    for args in [&["version"][..], &["images", "ls"], &["tasks", "ls"], &["content", "ls"], &["events"]] {
        let started = Instant::now();
        let o = berth.cli(args);
        let took = started.elapsed();
        assert!(!o.status.success(), "{args:?}: {}", show(&o));
        assert!(took < Duration::from_secs(3), "{args:?} took {took:?}");
        let e = err(&o);
        assert!(e.contains("berthd is not running") && e.contains(&*sock.to_string_lossy()), "{args:?}: {e}");
        assert_eq!(e.lines().count(), 1, "one line: {e}");
    }
    // A stale socket (berthd SIGKILLed) is named as such.
    berth.launch();
    let services: Vec<u32> = berth.list().iter().filter_map(|s| s.pid).collect();
    berth.kill_launcher();
    assert!(sock.exists(), "a SIGKILLed berthd leaves its socket");
    // Its services drain and exit on their own (PDEATHSIG); one still answering would
    // rightly be asked instead, so wait for them (bounded) before asking.
    wait_for("berthd's services to exit", Duration::from_secs(20), || {
        services.iter().all(|p| !berth_system_tests::pid_alive(*p))
    });
    let o = berth.cli(&["version"]);
    assert!(err(&o).contains("refuses connections"), "{}", show(&o));
    // `config default` needs no berthd.
    let o = berth.cli(&["config", "default"]);
    assert!(o.status.success(), "{}", show(&o));
}

#[test]
fn services_run_by_systemd_units_need_no_berthd() {
    // The systemd units run each service standalone: no berthd.sock, the services' own.
    let dir = tempfile::tempdir().expect("tempdir");
    let (root, state) = (dir.path().join("root"), dir.path().join("state"));
    let mut events = std::process::Command::new(berth_system_tests::bin("berth-events"))
        .arg("--root")
        .arg(&root)
        .arg("--state")
        .arg(&state)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn berth-events");
    wait_for("events.sock", Duration::from_secs(10), || state.join("events.sock").exists());
    let o = std::process::Command::new(berth_system_tests::bin("berth"))
        .arg("--state")
        .arg(&state)
        .args(["--timeout", "1", "version"])
        .output()
        .expect("berth version");
    signal(events.id(), Signal::SIGTERM);
    let _ = events.wait();
    assert!(!err(&o).contains("berthd is not running"), "{}", show(&o));
    let text = out(&o);
    let row = text.lines().find(|l| l.starts_with("events")).expect("an events row");
    assert!(row.contains(env!("CARGO_PKG_VERSION")), "events answered: {}", show(&o));
}

#[test]
fn a_restarting_service_is_still_waited_for() {
    let mut berth = Berth::start();
    let pid = berth.status("metadata").pid.expect("metadata pid");
    signal(pid, Signal::SIGKILL);
    // berthd runs: the command waits for the service and succeeds.
    let o = berth.cli(&["namespaces", "ls"]);
    assert!(o.status.success(), "{}", show(&o));
    assert!(out(&o).contains("default") || out(&o).starts_with("NAME"), "{}", show(&o));
    berth.wait_until("metadata back", Duration::from_secs(20), |l| {
        l.iter().any(|s| s.name == "metadata" && s.state == ServiceState::Running && s.pid != Some(pid))
    });
}

/// Whether container `id` is listed.
fn listed(berth: &Berth, id: &str) -> bool {
    out(&berth.cli(&["containers", "ls", "-q"])).lines().any(|l| l == id)
}

fn snapshot_listed(berth: &Berth, id: &str) -> bool {
    out(&berth.cli(&["snapshots", "ls"])).contains(&format!("berth-container-{id}"))
}

#[test]
fn run_rm_detached_is_removed_at_exit_even_across_a_runtime_restart() {
    let Some(mut berth) = berth_with_tiny(&["runc"]) else { return };
    let o = berth.cli(&["run", "--rm", "-d", "tiny", "rm1", "sh", "-c", "echo bye; sleep 1; exit 3"]);
    assert!(o.status.success(), "{}", show(&o));
    assert_eq!(out(&o), "rm1\n");
    assert!(listed(&berth, "rm1"), "running, it is there");
    // The record goes first, then the snapshot: wait for both.
    wait_for("rm1 and its snapshot removed after its exit", Duration::from_secs(20), || {
        !listed(&berth, "rm1") && !snapshot_listed(&berth, "rm1")
    });
    assert!(!berth.root.join("logs/default/rm1").exists(), "its logs went with it");
    assert!(out(&berth.cli(&["tasks", "ls"])).lines().all(|l| !l.starts_with("rm1 ")));

    // The runtime service restarts while the task runs: the new one removes it at exit.
    let o = berth.cli(&["run", "--rm", "-d", "tiny", "rm2", "sleep", "2"]);
    assert!(o.status.success(), "{}", show(&o));
    let pid = berth.status("runtime").pid.expect("runtime pid");
    signal(pid, Signal::SIGKILL);
    berth.wait_until("runtime restarted", Duration::from_secs(20), |l| {
        l.iter().any(|s| {
            s.name == "runtime" && s.pid.is_some_and(|p| p != pid) && s.state == ServiceState::Running
        })
    });
    assert!(listed(&berth, "rm2"), "still running after the restart");
    wait_for("rm2 and its snapshot removed after its exit", Duration::from_secs(20), || {
        !listed(&berth, "rm2") && !snapshot_listed(&berth, "rm2")
    });

    // Without --rm a detached container stays after its exit.
    let o = berth.cli(&["run", "-d", "tiny", "keep1", "true"]);
    assert!(o.status.success(), "{}", show(&o));
    let o = berth.cli(&["tasks", "wait", "keep1"]);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    std::thread::sleep(Duration::from_millis(500));
    assert!(listed(&berth, "keep1"));
    // The label is berth's: a user may set only this one under berth.io/.
    let o = berth.cli(&["containers", "create", "--label", "berth.io/other=1", "tiny", "lbl1"]);
    assert!(!o.status.success() && err(&o).contains("reserved"), "{}", show(&o));
    teardown(&berth);
}

#[test]
fn task_commands_without_a_task_say_so() {
    let Some(berth) = berth_with_tiny(&["runc"]) else { return };
    let o = berth.cli(&["containers", "create", "tiny", "nt1"]);
    assert!(o.status.success(), "{}", show(&o));
    let cases: [&[&str]; 6] = [
        &["tasks", "pause", "nt1"],
        &["tasks", "resume", "nt1"],
        &["tasks", "kill", "nt1"],
        &["tasks", "exec", "--exec-id", "e1", "nt1", "true"],
        &["tasks", "metrics", "nt1"],
        &["tasks", "ps", "nt1"],
    ];
    for args in cases {
        let o = berth.cli(args);
        assert!(!o.status.success(), "{args:?}: {}", show(&o));
        let e = err(&o);
        assert!(e.contains("container nt1 has no task"), "{args:?}: {e}");
        assert!(!e.contains("No such file") && !e.contains("sock"), "{args:?}: {e}");
    }
    // No such container at all: said so.
    for verb in ["pause", "ps", "kill"] {
        let o = berth.cli(&["tasks", verb, "nosuch"]);
        assert!(err(&o).contains("container nosuch: not found"), "{verb}: {}", show(&o));
    }
    teardown(&berth);
}

#[test]
fn leases_take_resources_and_protect_them_from_gc() {
    let berth = Berth::start();
    let blob = b"a blob a lease protects\n";
    let o = berth.cli_with_input(&["content", "ingest", "--stream", "l-blob"], blob);
    assert!(o.status.success(), "{}", show(&o));
    let digest = out(&o).trim().to_string();
    let o = berth.cli(&["leases", "create", "--id", "l1"]);
    assert!(o.status.success(), "{}", show(&o));
    for (kind, id) in [("content", digest.as_str()), ("snapshots/overlayfs", "k1"), ("ingests", "r1")] {
        let o = berth.cli(&["leases", "add-resource", "l1", kind, id]);
        assert!(o.status.success(), "{kind}: {}", show(&o));
    }
    let o = berth.cli(&["--format", "json", "leases", "resources", "l1"]);
    let list: serde_json::Value = serde_json::from_str(&out(&o)).expect("json");
    let got: Vec<(String, String)> = list
        .as_array()
        .expect("array")
        .iter()
        .map(|r| (r["type"].as_str().expect("type").into(), r["id"].as_str().expect("id").into()))
        .collect();
    for want in [("content", digest.as_str()), ("snapshots/overlayfs", "k1"), ("ingests", "r1")] {
        assert!(got.contains(&(want.0.to_string(), want.1.to_string())), "{want:?} in {got:?}");
    }
    let o = berth.cli(&["leases", "rm-resource", "l1", "ingests", "r1"]);
    assert!(o.status.success(), "{}", show(&o));
    assert!(!out(&berth.cli(&["leases", "resources", "l1"])).contains("r1"));
    // The lease keeps the unreferenced blob through GC; without it, GC takes it.
    let blobs = || out(&berth.cli(&["content", "ls"]));
    assert!(berth.cli(&["gc"]).status.success());
    assert!(blobs().contains(&digest), "the leased blob survives GC: {}", blobs());
    let o = berth.cli(&["leases", "rm-resource", "l1", "content", &digest]);
    assert!(o.status.success(), "{}", show(&o));
    assert!(berth.cli(&["gc"]).status.success());
    assert!(!blobs().contains(&digest), "unleased, GC removes it: {}", blobs());
    // Bad input: a clear error naming the object.
    let o = berth.cli(&["leases", "add-resource", "l1", "blobs", "x"]);
    assert!(
        err(&o).contains("\"blobs\": unknown (content, snapshots/<snapshotter>, ingests)"),
        "{}",
        show(&o)
    );
    let o = berth.cli(&["leases", "add-resource", "nope", "content", &digest]);
    assert!(!o.status.success() && err(&o).contains("nope"), "{}", show(&o));
    let o = berth.cli(&["leases", "add-resource", "l1", "content", "sha256:zz"]);
    assert!(!o.status.success() && err(&o).contains("not a digest"), "{}", show(&o));
}

/// The cgroup dir `path` (from the cgroup root) in the memory hierarchy.
fn memory_cgroup(path: &str) -> std::path::PathBuf {
    Path::new("/sys/fs/cgroup/memory").join(path.trim_start_matches('/'))
}

#[test]
fn empty_cgroup_parents_go_with_the_last_container() {
    let Some(berth) = berth_with_tiny(&["runc"]) else { return };
    if !Path::new("/sys/fs/cgroup/memory").is_dir() {
        eprintln!("skipped: no cgroup v1 memory hierarchy");
        return;
    }
    let parent = berth_service_kit::config::RuntimeConfig::default()
        .cgroup_parent(&berth.state)
        .expect("cgroup parent");
    let ns_dir = memory_cgroup(&format!("{parent}/default"));
    for id in ["cg1", "cg2"] {
        let o = berth.cli(&["run", "-d", "tiny", id, "sleep", "1000"]);
        assert!(o.status.success(), "{}", show(&o));
    }
    assert!(ns_dir.join("cg1").is_dir() && ns_dir.join("cg2").is_dir(), "{}", ns_dir.display());
    let o = berth.cli(&["containers", "rm", "--force", "cg1"]);
    assert!(o.status.success(), "{}", show(&o));
    wait_for("cg1's cgroup gone", Duration::from_secs(10), || !ns_dir.join("cg1").exists());
    std::thread::sleep(Duration::from_millis(300));
    assert!(ns_dir.is_dir(), "the namespace level stays while cg2 runs under it");
    let o = berth.cli(&["containers", "rm", "--force", "cg2"]);
    assert!(o.status.success(), "{}", show(&o));
    wait_for("the empty parents removed", Duration::from_secs(10), || !memory_cgroup(&parent).exists());
    assert!(Path::new("/sys/fs/cgroup/memory").is_dir(), "the root stays");
    // A foreground `run --rm` leaves nothing either.
    let o = berth.cli(&["run", "--rm", "tiny", "cg3", "true"]);
    assert!(o.status.success(), "{}", show(&o));
    wait_for("cg3's parents removed", Duration::from_secs(10), || !memory_cgroup(&parent).exists());
    teardown(&berth);
}
