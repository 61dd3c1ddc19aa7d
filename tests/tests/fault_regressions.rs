//! One regression test per defect the fault campaign (`fault_campaign.rs`) found, each a
//! deterministic replay of the moment a SIGKILL hit by chance.

mod runtime_support;

use std::time::{Duration, Instant};

use berth_ipc::Digest;
use berth_ipc::content::proxy::ContentClient;
use berth_ipc::content::store::{ContentStore, ContentWriter};
use berth_ipc::runtime::{ListTasks, TaskInfo, TaskStatus};
use berth_system_tests::dist::{LayoutImage, Registry, berth_ok, busybox_rootfs, have, layout_tar};
use berth_system_tests::mounts_under;
use berth_system_tests::{Berth, block_on, pid_alive, signal};
use nix::sys::signal::Signal;
use runtime_support::{can_run, import_busybox, out, show, teardown};

/// The init and shim pids of task `id` in the default namespace.
fn task_pids(berth: &Berth, id: &str) -> (u32, u32) {
    let bundle = berth.state.join("tasks/default").join(id);
    let read =
        |f: &str| -> u32 { std::fs::read_to_string(bundle.join(f)).expect(f).trim().parse().expect("pid") };
    (read("init.pid"), read("shim.pid"))
}

fn wait_for(what: &str, ok: impl Fn() -> bool) {
    let start = Instant::now();
    while !ok() {
        assert!(start.elapsed() < Duration::from_secs(10), "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A pull killed between writing a layer's last byte and committing it left an ingest
/// holding the whole blob; every later pull asked the registry for `bytes=SIZE-` and got
/// 416, forever. Now the full ingest is committed (and its digest verified).
#[test]
fn pull_resumes_an_ingest_that_holds_every_byte() {
    if !have("docker-registry") {
        eprintln!("skipped: docker-registry is missing");
        return;
    }
    let berth = Berth::start();
    let reg = Registry::start(None);
    let work = berth.dir.path().join("work");
    busybox_rootfs(&work.join("l0"), "full-ingest");
    let name = format!("{}/regress/full:v1", reg.addr);
    let archive = work.join("img.tar");
    let layers = [work.join("l0")];
    layout_tar(
        &work,
        &[LayoutImage { name: &name, layers: &layers, fake_diff_ids: None, index: None }],
        &archive,
    );
    berth_ok(&berth, &["-n", "seed", "images", "import", archive.to_str().expect("utf8")]);
    berth_ok(&berth, &["-n", "seed", "images", "push", "--quiet", &name]);
    let ls = berth_ok(&berth, &["-n", "seed", "--format", "json", "images", "ls"]);
    let manifest: serde_json::Value = serde_json::from_str(&ls).expect("json");
    let manifest = manifest[0]["digest"].as_str().expect("digest").to_string();
    let manifest: serde_json::Value =
        serde_json::from_str(&berth_ok(&berth, &["-n", "seed", "content", "get", &manifest]))
            .expect("manifest");
    let layer = Digest::parse(manifest["layers"][0]["digest"].as_str().expect("layer")).expect("digest");
    let clients = berth.clients(Duration::from_secs(10));
    let content = ContentClient::new(clients.content.clone());
    let bytes = block_on(content.read(&layer, 0, None)).expect("layer bytes");
    berth_ok(&berth, &["-n", "seed", "images", "rm", "--sync", &name]);

    // The interrupted pull: every byte written under the pull's ingest ref, no commit.
    block_on(async {
        let mut w = content
            .writer(&format!("pull-{layer}"), Some(layer), Some(bytes.len() as u64))
            .await
            .expect("writer");
        w.write_at(0, bytes.clone()).await.expect("write");
    });
    let o = berth.cli(&["images", "pull", "--quiet", &name]);
    assert!(o.status.success(), "{}", show(&o));
    let check = berth_ok(&berth, &["images", "check", &name]);
    assert!(check.contains("\tcomplete\t") && !check.contains("not unpacked"), "{check}");
}

/// A task whose shim was SIGKILLed reported `stopped` with 255 while its container kept
/// running, unsupervised. Now the container is killed before the 255 is recorded.
#[test]
fn a_task_whose_shim_died_is_really_stopped() {
    if !can_run("runc") {
        return;
    }
    let berth = Berth::start();
    import_busybox(&berth, "tiny", serde_json::json!({"Cmd": ["sh"]}));
    berth_ok(&berth, &["run", "-d", "tiny", "v", "sleep", "1000"]);
    let (init, shim) = task_pids(&berth, "v");
    signal(shim, Signal::SIGKILL);
    wait_for("the shim to die", || !pid_alive(shim));
    let o = berth.cli(&["--format", "json", "tasks", "ls"]);
    let list: serde_json::Value = serde_json::from_str(&out(&o)).expect("tasks json");
    assert_eq!(list[0]["status"], "stopped", "{list}");
    assert_eq!(list[0]["exit_status"], 255, "{list}");
    wait_for("the container to be gone", || !pid_alive(init));
    assert_eq!(berth_ok(&berth, &["tasks", "delete", "v"]).trim(), "v 255");
    berth_ok(&berth, &["containers", "rm", "v"]);
    teardown(&berth);
}

/// A container create killed after its snapshot was prepared left the snapshot (and maybe
/// its spec mount) behind, and every later create of that id failed with "already exists"
/// until GC took the snapshot. Now the leftover, whose labels prove it is this container's
/// (as a create prepares it), is removed and the create goes through.
#[test]
fn a_create_killed_after_its_snapshot_does_not_block_the_id() {
    if !can_run("runc") {
        return;
    }
    let berth = Berth::start();
    import_busybox(&berth, "tiny", serde_json::json!({"Cmd": ["sh"]}));
    berth_ok(&berth, &["snapshots", "prepare", "berth-container-c1"]);
    let owner =
        ["snapshots", "label", "berth-container-c1", "berth.io/namespace=default", "berth.io/container=c1"];
    berth_ok(&berth, &owner);
    let spec_mnt = berth.state.join("tasks/.mnt/default/c1");
    std::fs::create_dir_all(&spec_mnt).expect("mkdir");
    let tmpfs = nix::mount::MsFlags::empty();
    nix::mount::mount(Some("tmpfs"), &spec_mnt, Some("tmpfs"), tmpfs, None::<&str>).expect("mount tmpfs");
    let o = berth.cli(&["run", "-d", "tiny", "c1", "sleep", "1000"]);
    assert!(o.status.success(), "{}", show(&o));
    assert!(mounts_under(&spec_mnt).is_empty(), "{:?}", mounts_under(&spec_mnt));
    berth_ok(&berth, &["containers", "rm", "--force", "c1"]);
    teardown(&berth);
}

/// A runtime service killed while a new container's rootfs was mounted for its spec left
/// that mount forever. The restarted service unmounts what is left under `tasks/.mnt`.
#[test]
fn a_restarted_runtime_unmounts_a_killed_creates_spec_mount() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let mut berth = Berth::start();
    let spec_mnt = berth.state.join("tasks/.mnt/default/gone");
    // One left by a runtime from before namespaces had a level of their own.
    let old_mnt = berth.state.join("tasks/.mnt/default-old");
    for dir in [&spec_mnt, &old_mnt] {
        std::fs::create_dir_all(dir).expect("mkdir");
        let tmpfs = nix::mount::MsFlags::empty();
        nix::mount::mount(Some("tmpfs"), dir, Some("tmpfs"), tmpfs, None::<&str>).expect("mount tmpfs");
    }
    std::fs::create_dir(old_mnt.join("rootfs-dir")).expect("a dir inside the old mount");
    let old = berth.status("runtime").pid.expect("runtime pid");
    signal(old, Signal::SIGKILL);
    let health = block_on(berth.clients(Duration::from_secs(10)).runtime.health()).expect("runtime back");
    assert_ne!(health.pid, old);
    assert!(mounts_under(&spec_mnt).is_empty(), "{:?}", mounts_under(&spec_mnt));
    assert!(!spec_mnt.exists());
    assert!(mounts_under(&old_mnt).is_empty(), "{:?}", mounts_under(&old_mnt));
    assert!(!old_mnt.exists());
}

/// berthd SIGKILLed: its services got SIGTERM and drained while the new berthd started new
/// ones on the same store at once. An old snapshot service finishing an unpack after the
/// new one had read its index left an image "not unpacked" for good. Now a service waits
/// for `<root>/.<name>.lock`, held by the previous process until it exits.
#[test]
fn a_service_waits_for_its_predecessor_to_leave_the_store() {
    let mut berth = Berth::start();
    let lock =
        std::fs::File::open(berth.root.join(".snapshot.lock")).expect("the snapshot service's lock file");
    assert!(
        nix::fcntl::Flock::lock(lock, nix::fcntl::FlockArg::LockExclusiveNonblock).is_err(),
        "the running snapshot service holds its lock"
    );
    // Stand in for a predecessor still draining: hold the lock, then replace the service.
    // berthd is stopped meanwhile, so that its restart cannot take the lock first; it
    // restarts the service once continued.
    let old = berth.status("snapshot").pid.expect("snapshot pid");
    let launcher = berth.launcher_pid();
    signal(launcher, Signal::SIGSTOP);
    signal(old, Signal::SIGKILL);
    let lock = std::fs::File::open(berth.root.join(".snapshot.lock")).expect("lock file");
    let deadline = Instant::now() + Duration::from_secs(10);
    let held = loop {
        match nix::fcntl::Flock::lock(
            lock.try_clone().expect("fd"),
            nix::fcntl::FlockArg::LockExclusiveNonblock,
        ) {
            Ok(l) => break l,
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(1)),
            Err(_) => {
                signal(launcher, Signal::SIGCONT);
                panic!("the killed snapshot service's lock was not released within 10 s");
            }
        }
    };
    signal(launcher, Signal::SIGCONT);
    std::thread::sleep(Duration::from_millis(500));
    let waiting = berth.status("snapshot");
    assert_eq!(waiting.state, berth_ipc::launcher::ServiceState::Starting, "{waiting:?}");
    drop(held);
    let health = block_on(berth.clients(Duration::from_secs(10)).snapshot.health()).expect("snapshot back");
    assert_ne!(health.pid, old);
}

/// A task delete (or create) killed part-way left a bundle without its `task.json`: the
/// task was "not found", yet `containers rm` said "has a task", forever. Now removing the
/// container clears such a bundle (rootfs unmounted).
#[test]
fn a_bundle_left_without_its_record_does_not_pin_the_container() {
    if !can_run("runc") {
        return;
    }
    let berth = Berth::start();
    import_busybox(&berth, "tiny", serde_json::json!({"Cmd": ["sh"]}));
    berth_ok(&berth, &["containers", "create", "tiny", "c2", "sleep", "1000"]);
    let rootfs = berth.state.join("tasks/default/c2/rootfs");
    std::fs::create_dir_all(&rootfs).expect("mkdir");
    let tmpfs = nix::mount::MsFlags::empty();
    nix::mount::mount(Some("tmpfs"), &rootfs, Some("tmpfs"), tmpfs, None::<&str>).expect("mount tmpfs");
    let o = berth.cli(&["tasks", "delete", "c2"]);
    assert!(!o.status.success() && show(&o).contains("container c2 has no task"), "{}", show(&o));
    let o = berth.cli(&["containers", "rm", "c2"]);
    assert!(o.status.success(), "{}", show(&o));
    assert!(mounts_under(&rootfs).is_empty(), "{:?}", mounts_under(&rootfs));
    assert!(!berth.state.join("tasks/default/c2").exists());
    teardown(&berth);
}

/// A shim still starting when its runtime service died lost its socket at adoption (its
/// task, with no `shim.pid` yet, was settled as dead), served nobody, and outlived its
/// container's removal. Now a cleanup kills every live shim of the bundle first.
#[test]
fn an_unreachable_shim_does_not_outlive_its_container() {
    if !can_run("runc") {
        return;
    }
    let berth = Berth::start();
    import_busybox(&berth, "tiny", serde_json::json!({"Cmd": ["sh"]}));
    berth_ok(&berth, &["run", "-d", "tiny", "u", "sleep", "1000"]);
    let (init, shim) = task_pids(&berth, "u");
    std::fs::remove_file(berth.state.join("tasks/default/u/shim/sock")).expect("remove the shim's socket");
    let o = berth.cli(&["containers", "rm", "--force", "u"]);
    assert!(o.status.success(), "{}", show(&o));
    wait_for("the shim to be gone", || !pid_alive(shim));
    wait_for("the container to be gone", || !pid_alive(init));
    teardown(&berth);
}

/// A runtime service restarted while one shim did not answer (stopped, stuck, or slow on a
/// loaded machine) either killed that shim's container at adoption (the campaign's keepers
/// `k0`, `k2` died with 137 after a berthd relaunch: a missed `State` deadline counted as a
/// dead shim) or, with the shim silent for good, never finished adopting: no deadline on
/// shim calls, so the service never became ready, and every `tasks ls` hung. Now adoption
/// leaves a live shim alone without asking it, a shim call has a deadline, and a silent
/// shim's task lists as `unknown` beside the others.
#[test]
fn a_silent_shim_neither_dies_nor_blocks_the_runtime() {
    if !can_run("runc") {
        return;
    }
    let mut berth = Berth::start();
    import_busybox(&berth, "tiny", serde_json::json!({"Cmd": ["sh"]}));
    berth_ok(&berth, &["run", "-d", "tiny", "quiet", "sleep", "1000"]);
    berth_ok(&berth, &["run", "-d", "tiny", "loud", "sleep", "1000"]);
    let (init, shim) = task_pids(&berth, "quiet");
    signal(shim, Signal::SIGSTOP);
    let old = berth.status("runtime").pid.expect("runtime pid");
    signal(old, Signal::SIGKILL);
    let services = berth.clients(Duration::from_secs(30));
    let started = Instant::now();
    let health = block_on(services.runtime.health()).expect("runtime back");
    assert_ne!(health.pid, old);
    let list = ListTasks { namespace: "default".into() };
    let tasks = block_on(services.runtime.call(list.clone())).expect("tasks listed");
    let waited = started.elapsed();
    assert!(waited < Duration::from_secs(20), "runtime back and tasks listed only after {waited:?}");
    let status = |tasks: &[TaskInfo], id: &str| {
        tasks.iter().find(|t| t.id == id).map(|t| (t.status, t.exit.map(|e| e.status)))
    };
    assert_eq!(status(&tasks, "quiet"), Some((TaskStatus::Unknown, None)), "{tasks:?}");
    assert_eq!(status(&tasks, "loud"), Some((TaskStatus::Running, None)), "{tasks:?}");
    assert!(pid_alive(init), "the silent shim's container was killed");
    assert_eq!(berth.status("runtime").pid, Some(health.pid), "the runtime service was restarted again");

    signal(shim, Signal::SIGCONT);
    let tasks = block_on(services.runtime.call(list)).expect("tasks listed");
    assert_eq!(status(&tasks, "quiet"), Some((TaskStatus::Running, None)), "{tasks:?}");
    assert_eq!(tasks.iter().find(|t| t.id == "quiet").map(|t| t.pid), Some(init));
    for id in ["quiet", "loud"] {
        berth_ok(&berth, &["containers", "rm", "--force", id]);
    }
    wait_for("the container to be gone", || !pid_alive(init));
    teardown(&berth);
}

/// A long-lived container's shim reaps thousands of processes, and pids come round again
/// (32768 of them by default). An exec that drew the pid of an exec reaped earlier was
/// reported exited at once, with that exec's status and none of its own output (the
/// campaign's keepers printed "" after some 2,000 execs each). Here the pid is made to come
/// round on purpose, by setting the kernel's next pid (`/proc/sys/kernel/ns_last_pid`).
#[test]
fn an_exec_on_a_reused_pid_is_its_own_process() {
    if !can_run("runc") {
        return;
    }
    let berth = Berth::start();
    import_busybox(&berth, "tiny", serde_json::json!({"Cmd": ["sh"]}));
    berth_ok(&berth, &["run", "-d", "tiny", "long", "sleep", "1000"]);
    let exec_d = |exec_id: &str, script: &str| -> i32 {
        let pid =
            berth_ok(&berth, &["tasks", "exec", "-d", "--exec-id", exec_id, "long", "sh", "-c", script]);
        pid.trim().parse().expect("exec pid")
    };
    let wait = |exec_id: &str| berth.cli(&["tasks", "wait", "--exec-id", exec_id, "long"]).status.code();
    let first = exec_d("first", "exit 3");
    assert_eq!(wait("first"), Some(3));

    // The CLI's, the shim's and runc's processes and threads take pids before the exec's
    // process does: aim below by as many as the last attempt took.
    let mut reused = None;
    let mut back = 8;
    for attempt in 0..100 {
        let base = first - back;
        std::fs::write("/proc/sys/kernel/ns_last_pid", base.to_string()).expect("set ns_last_pid");
        let id = format!("try{attempt}");
        let pid = exec_d(&id, "sleep 0.3; echo mine; exit 5");
        if (1..first).contains(&(pid - base)) {
            back = pid - base;
        }
        if pid == first {
            reused = Some(id);
            break;
        }
        assert_eq!(wait(&id), Some(5), "exec {id}");
    }
    let Some(id) = reused else {
        eprintln!("skipped: the kernel never gave pid {first} to an exec again in 100 tries");
        return;
    };
    // The old record (exit 3) must not answer for the new process.
    let state = berth_ok(&berth, &["--format", "json", "tasks", "ls"]);
    assert!(state.contains("running"), "{state}");
    assert_eq!(wait(&id), Some(5), "exec {id} on reused pid {first}: the earlier exec's exit came back");
    let out = berth_ok(&berth, &["tasks", "attach", "--exec-id", &id, "long"]);
    assert_eq!(out.trim(), "mine");
    berth_ok(&berth, &["containers", "rm", "--force", "long"]);
    teardown(&berth);
}
