//! Socket files left behind by SIGKILLed processes never prevent a restart: neither for a
//! new berthd after the old one was killed (its services die with it), nor for a service run
//! standalone (as under systemd).

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use berth_system_tests::{Berth, bin, block_on, pid_alive, signal};
use nix::sys::signal::Signal;

#[test]
fn new_launcher_after_sigkill() {
    let mut berth = Berth::start();
    let pids: Vec<u32> = berth.list().iter().filter_map(|s| s.pid).collect();
    berth.kill_launcher();
    // Services are told (PR_SET_PDEATHSIG) and exit: no orphans.
    let deadline = Instant::now() + Duration::from_secs(10);
    while pids.iter().any(|p| pid_alive(*p)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let alive: Vec<_> = pids.iter().filter(|p| pid_alive(**p)).collect();
    assert!(alive.is_empty(), "services outlived a SIGKILLed berthd: {alive:?}");
    assert!(berth.state.join("content.sock").exists(), "expected a stale socket file");

    berth.launch();
    let clients = berth.clients(Duration::from_secs(5));
    for (name, h) in block_on(clients.health_all()) {
        h.unwrap_or_else(|e| panic!("{name} after relaunch: {e}"));
    }
}

#[test]
fn standalone_service_replaces_its_stale_socket() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (root, state) = (dir.path().join("root"), dir.path().join("state"));
    let spawn = || {
        Command::new(bin("berth-events"))
            .arg("--root")
            .arg(&root)
            .arg("--state")
            .arg(&state)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn berth-events")
    };
    let options = berth_ipc::ClientOptions { deadline: Duration::from_secs(10), client_name: "test".into() };
    let client: berth_ipc::Client<berth_ipc::events::Events> =
        berth_ipc::Client::in_state_dir(&state, options);
    let mut first = spawn();
    let h1 = block_on(client.health()).expect("first instance answers");
    signal(first.id(), Signal::SIGKILL);
    let _ = first.wait();
    assert!(state.join("events.sock").exists(), "SIGKILL leaves the socket file");
    let mut second = spawn();
    let h2 = block_on(client.health()).expect("second instance answers");
    assert_ne!(h1.pid, h2.pid);
    // A clean SIGTERM removes the socket.
    signal(second.id(), Signal::SIGTERM);
    let status = second.wait().expect("wait");
    assert!(status.success(), "{status}");
    assert!(!state.join("events.sock").exists(), "socket not removed on SIGTERM");
}
