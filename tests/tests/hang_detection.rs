//! A hung service (SIGSTOP) stops answering pings; the launcher kills and restarts it.

use std::time::{Duration, Instant};

use berth_ipc::launcher::ServiceState;
use berth_system_tests::{Berth, block_on, signal};
use nix::sys::signal::Signal;

#[test]
fn stopped_service_is_killed_and_restarted() {
    let mut berth =
        Berth::start_with("[supervisor]\nping_interval_ms = 200\nping_timeout_ms = 200\nping_failures = 3\n");
    let old = berth.status("metadata").pid.expect("running");
    let stopped_at = Instant::now();
    signal(old, Signal::SIGSTOP);
    let list = berth.wait_until("metadata replaced", Duration::from_secs(15), |l| {
        l.iter().any(|s| {
            s.name == "metadata" && s.state == ServiceState::Running && s.pid.is_some_and(|p| p != old)
        })
    });
    let status = list.iter().find(|s| s.name == "metadata").expect("listed");
    assert!(status.last_exit.as_deref().is_some_and(|e| e.contains("no answer")), "{status:?}");
    println!("hung metadata replaced after {:?}", stopped_at.elapsed());
    let clients = berth.clients(Duration::from_secs(5));
    let health = block_on(clients.metadata.health()).expect("metadata answers");
    assert_ne!(health.pid, old);
}
