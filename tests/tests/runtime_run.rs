//! `berth run` end to end through berthd and every service, with runc and crun: output and
//! exit codes, isolation, limits, exec, bad input, and nothing left behind.

mod runtime_support;

use berth_system_tests::Berth;
use berth_system_tests::{mounts_under, processes_with};
use runtime_support::{berth_with_tiny, can_run, import_busybox, out, show, teardown};

/// No mount, shim or task left. A shim finishes the runtime's delete just after the task's
/// delete is answered, so it gets a moment to exit.
fn assert_clean(berth: &Berth) {
    assert!(mounts_under(&berth.state).is_empty(), "mounts left: {:?}", mounts_under(&berth.state));
    let state = berth.state.to_string_lossy().into_owned();
    let ours = || -> Vec<u32> {
        let shims = processes_with("berth-shim");
        processes_with(&state).into_iter().filter(|p| shims.contains(p)).collect()
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while !ours().is_empty() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert!(ours().is_empty(), "shims left: {:?}", ours());
    let tasks = berth.cli(&["tasks", "ls", "--format", "json"]);
    assert_eq!(out(&tasks).trim(), "[]", "{}", show(&tasks));
}

/// `berth run --rm --runtime RUNTIME tiny ID sh -c SCRIPT`.
fn run_rm(berth: &Berth, runtime: &str, id: &str, script: &str) -> std::process::Output {
    berth.cli(&["run", "--rm", "--runtime", runtime, "tiny", id, "sh", "-c", script])
}

/// Zombie children of pid 1 or of this test whose parent is a shim of ours would show as
/// `Z`; none may exist among processes mentioning our state dir.
fn assert_no_zombies(berth: &Berth) {
    let state = berth.state.to_string_lossy().into_owned();
    for e in std::fs::read_dir("/proc").expect("proc").flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else { continue };
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let zombie = stat.rsplit(')').next().and_then(|r| r.split_whitespace().next()) == Some("Z");
        let ppid: u32 = stat
            .rsplit(')')
            .next()
            .and_then(|r| r.split_whitespace().nth(1))
            .and_then(|p| p.parse().ok())
            .unwrap_or(0);
        let parent_cmd = std::fs::read(format!("/proc/{ppid}/cmdline")).unwrap_or_default();
        if zombie && String::from_utf8_lossy(&parent_cmd).contains(&state) {
            panic!("zombie {pid} under {ppid}");
        }
    }
}

#[test]
fn run_rm_output_and_exit_code_with_runc_and_crun() {
    let Some(berth) = berth_with_tiny(&["runc", "crun"]) else { return };
    for runtime in ["runc", "crun"] {
        let id = format!("rm-{runtime}");
        let o = run_rm(&berth, runtime, &id, "echo out; echo err >&2; exit 3");
        assert_eq!(o.status.code(), Some(3), "{runtime}: {}", show(&o));
        assert_eq!(out(&o), "out\n", "{runtime}");
        assert!(String::from_utf8_lossy(&o.stderr).contains("err"), "{runtime}: {}", show(&o));
        let o = berth.cli(&["run", "--rm", "--runtime", runtime, "tiny", &id, "true"]);
        assert_eq!(o.status.code(), Some(0), "{runtime}: {}", show(&o));
        let ls = berth.cli(&["containers", "ls", "-q"]);
        assert!(!out(&ls).contains(&id), "container left: {}", show(&ls));
        assert_clean(&berth);
        assert_no_zombies(&berth);
    }
    // The user's path: a rootfs tarball imported with the CLI, then run.
    let tar = berth.dir.path().join("rootfs.tar");
    std::fs::write(&tar, runtime_support::busybox_tar()).expect("tar");
    let o = berth.cli(&["images", "import", "--rootfs", tar.to_str().expect("path"), "imported"]);
    assert!(o.status.success(), "{}", show(&o));
    let o = berth.cli(&["run", "--rm", "imported", "imp", "echo", "from", "imported"]);
    assert_eq!(out(&o), "from imported\n", "{}", show(&o));
    assert_clean(&berth);
    teardown(&berth);
}

#[test]
fn isolation_env_cwd_user_and_namespaces() {
    if !can_run("runc") {
        return;
    }
    let berth = Berth::start();
    import_busybox(
        &berth,
        "tiny",
        serde_json::json!({"Cmd": ["sh"], "Env": ["FROM_IMAGE=1"], "WorkingDir": "/work"}),
    );
    let script = "hostname; echo $$; echo $FOO $FROM_IMAGE; pwd; id -u; id -g; readlink /proc/self/ns/mnt; readlink /proc/self/ns/pid";
    let o =
        berth.cli(&["run", "--rm", "--env", "FOO=bar", "--user", "web", "tiny", "iso1", "sh", "-c", script]);
    assert!(o.status.success(), "{}", show(&o));
    let text = out(&o);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(&lines[..6], &["iso1", "1", "bar 1", "/srv/work", "80", "81"], "{text}");
    let host_mnt = std::fs::read_link("/proc/self/ns/mnt").expect("ns").to_string_lossy().into_owned();
    let host_pid = std::fs::read_link("/proc/self/ns/pid").expect("ns").to_string_lossy().into_owned();
    assert_ne!(lines[6], host_mnt, "private mount namespace");
    assert_ne!(lines[7], host_pid, "private pid namespace");
    let o = berth.cli(&[
        "run",
        "--rm",
        "--hostname",
        "box",
        "--cwd",
        "/tmp",
        "--user",
        "5:6",
        "tiny",
        "iso2",
        "sh",
        "-c",
        "hostname; pwd; id -u; id -g",
    ]);
    assert_eq!(out(&o), "box\n/tmp\n5\n6\n", "{}", show(&o));
    assert_clean(&berth);
    teardown(&berth);
}

#[test]
fn memory_limit_is_enforced() {
    if !can_run("runc") {
        return;
    }
    let berth = Berth::start();
    import_busybox(&berth, "tiny", serde_json::json!({"Cmd": ["sh"]}));
    let hog = "x=$(head -c 100000000 /dev/zero | tr '\\0' a); echo survived";
    let o = berth.cli(&["run", "--rm", "--memory", "16m", "tiny", "oom1", "sh", "-c", hog]);
    assert_eq!(o.status.code(), Some(137), "{}", show(&o));
    assert!(!out(&o).contains("survived"));
    let o = berth.cli(&[
        "run",
        "--rm",
        "--memory",
        "256m",
        "tiny",
        "oom2",
        "sh",
        "-c",
        "x=$(head -c 1000000 /dev/zero | tr '\\0' a); echo survived",
    ]);
    assert_eq!(out(&o), "survived\n", "{}", show(&o));
    assert_clean(&berth);
    teardown(&berth);
}

/// The same id again and again, each run right after the last one's delete: the new
/// container never collides with the runtime state its predecessor's shim is still
/// deleting.
#[test]
fn same_id_back_to_back() {
    if !can_run("runc") {
        return;
    }
    let berth = Berth::start();
    import_busybox(&berth, "tiny", serde_json::json!({"Cmd": ["sh"]}));
    let crun = can_run("crun");
    for i in 0..8 {
        let runtime = if i % 2 == 1 && crun { "crun" } else { "runc" };
        let o = run_rm(&berth, runtime, "again", &format!("echo {i}"));
        assert!(o.status.success(), "run {i}: {}", show(&o));
        assert_eq!(out(&o).trim(), i.to_string(), "run {i}");
    }
    assert_clean(&berth);
    teardown(&berth);
}

#[test]
fn exec_output_and_exit_code() {
    if !can_run("runc") {
        return;
    }
    let berth = Berth::start();
    import_busybox(&berth, "tiny", serde_json::json!({"Cmd": ["sh"]}));
    let o = berth.cli(&["run", "-d", "tiny", "ex1", "sleep", "1000"]);
    assert!(o.status.success(), "{}", show(&o));
    let o = berth.cli(&["tasks", "exec", "--exec-id", "x1", "ex1", "sh", "-c", "echo inside $$; exit 4"]);
    assert_eq!(o.status.code(), Some(4), "{}", show(&o));
    assert!(out(&o).starts_with("inside "), "{}", show(&o));
    let ps = berth.cli(&["tasks", "ps", "ex1"]);
    assert!(ps.status.success() && !out(&ps).trim().is_empty(), "{}", show(&ps));
    let o = berth.cli(&["tasks", "delete", "ex1"]);
    assert!(!o.status.success(), "delete of a running task is refused");
    assert!(berth.cli(&["tasks", "kill", "-s", "KILL", "ex1"]).status.success());
    let o = berth.cli(&["tasks", "wait", "ex1"]);
    assert_eq!(o.status.code(), Some(137), "{}", show(&o));
    let o = berth.cli(&["tasks", "delete", "ex1"]);
    assert_eq!(out(&o).trim(), "ex1 137", "{}", show(&o));
    assert!(berth.cli(&["containers", "rm", "ex1"]).status.success());
    assert_clean(&berth);
    teardown(&berth);
}

#[test]
fn bad_input_leaves_nothing_behind() {
    if !can_run("runc") {
        return;
    }
    let berth = Berth::start();
    import_busybox(&berth, "tiny", serde_json::json!({"Cmd": ["sh"]}));
    let cases: &[(&[&str], &str)] = &[
        (&["run", "--rm", "nosuchimage", "b1", "true"], "not found"),
        (&["run", "--rm", "--user", "4294967295", "tiny", "b2", "true"], "out of range"),
        (&["run", "--rm", "--user=-1", "tiny", "b3", "true"], "negative"),
        (&["run", "--rm", "--user", "nobody", "tiny", "b4", "true"], "not found in the image"),
        (&["run", "--rm", "--cwd", "/leak", "tiny", "b5", "true"], "/proc"),
        (&["run", "--rm", "--cwd", "/escape", "tiny", "b6", "true"], "escapes the rootfs"),
        (&["run", "--rm", "tiny", "bad/id", "true"], "container id"),
    ];
    for (args, want) in cases {
        let o = berth.cli(args);
        assert!(!o.status.success(), "{args:?} should fail: {}", show(&o));
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains(want), "{args:?}: expected {want:?} in {err}");
    }
    assert!(berth.cli(&["containers", "create", "tiny", "dup", "true"]).status.success());
    let o = berth.cli(&["containers", "create", "tiny", "dup", "true"]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("already exists"), "{}", show(&o));
    assert!(berth.cli(&["containers", "rm", "dup"]).status.success());
    let ls = berth.cli(&["containers", "ls", "-q"]);
    assert_eq!(out(&ls).trim(), "", "{}", show(&ls));
    let snaps = berth.cli(&["snapshots", "ls"]);
    assert!(!out(&snaps).contains("berth-container"), "snapshot left: {}", show(&snaps));
    assert_clean(&berth);
    teardown(&berth);
}

#[test]
fn task_events_in_containerd_order() {
    use berth_ipc::events::{Since, Subscribe, SubscribeItem};
    if !can_run("runc") {
        return;
    }
    let berth = Berth::start();
    import_busybox(&berth, "tiny", serde_json::json!({"Cmd": ["sh"]}));
    let o = berth.cli(&["run", "--rm", "tiny", "ev1", "true"]);
    assert!(o.status.success(), "{}", show(&o));
    let o = berth.cli(&["run", "-d", "tiny", "ev2", "sleep", "1000"]);
    assert!(o.status.success(), "{}", show(&o));
    let o = berth.cli(&["tasks", "exec", "--exec-id", "x", "ev2", "true"]);
    assert!(o.status.success(), "{}", show(&o));
    assert!(berth.cli(&["tasks", "kill", "-s", "9", "ev2"]).status.success());
    assert!(berth.cli(&["tasks", "wait", "ev2"]).status.code() == Some(137));
    assert!(berth.cli(&["tasks", "delete", "ev2"]).status.success());
    let services = berth.clients(std::time::Duration::from_secs(10));
    let topics = berth_system_tests::block_on(async {
        let sub = Subscribe { filters: vec!["topic~=\"^/tasks/\"".into()], since: Since::Seq(0) };
        let mut stream = services.events.stream(sub).await.expect("subscribe");
        let mut seen: Vec<(String, String)> = Vec::new();
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
        while seen.len() < 11 {
            let item = tokio::time::timeout_at(deadline, stream.next()).await;
            let Ok(Some(Ok(item))) = item else { break };
            if let SubscribeItem::Event(env) = item {
                let json = env.payload.to_json();
                let who = json.get("container_id").and_then(|v| v.as_str()).unwrap_or_default().to_string();
                seen.push((who, env.topic.clone()));
            }
        }
        seen
    });
    let of = |id: &str| -> Vec<String> {
        topics.iter().filter(|(c, _)| c == id).map(|(_, t)| t.clone()).collect()
    };
    assert_eq!(of("ev1"), ["/tasks/create", "/tasks/start", "/tasks/exit", "/tasks/delete"], "{topics:?}");
    assert_eq!(
        of("ev2"),
        [
            "/tasks/create",
            "/tasks/start",
            "/tasks/exec-added",
            "/tasks/exec-started",
            "/tasks/exit",
            "/tasks/exit",
            "/tasks/delete"
        ],
        "{topics:?}"
    );
    teardown(&berth);
}
