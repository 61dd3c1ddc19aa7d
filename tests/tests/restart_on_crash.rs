//! SIGKILL each service in turn: the launcher restarts it, and a client call made right
//! after the kill succeeds because the client waits and retries. Prints kill-to-ready times.

use std::time::{Duration, Instant};

use berth_ipc::launcher::ServiceState;
use berth_system_tests::{Berth, SERVICES, block_on, signal};
use nix::sys::signal::Signal;

#[test]
fn sigkill_each_service_then_call_at_once() {
    let mut berth = Berth::start();
    let clients = berth.clients(Duration::from_secs(10));
    for name in SERVICES {
        let before = berth.status(name);
        let old_pid = before.pid.expect("running");
        let killed_at = Instant::now();
        signal(old_pid, Signal::SIGKILL);
        // The call is made at once: the socket stays bound by the launcher, so it queues
        // in the backlog or retries until the new process answers.
        let health = block_on(async {
            match name {
                "events" => clients.events.health().await,
                "content" => clients.content.health().await,
                "snapshot" => clients.snapshot.health().await,
                "metadata" => clients.metadata.health().await,
                "cri" => clients.cri.health().await,
                _ => clients.runtime.health().await,
            }
        })
        .unwrap_or_else(|e| panic!("{name}: call after kill failed: {e}"));
        let answered = killed_at.elapsed();
        assert_eq!(health.name, name);
        assert_ne!(health.pid, old_pid, "{name} answered from the killed process");
        let after = berth.wait_until(&format!("{name} running again"), Duration::from_secs(10), |l| {
            l.iter().any(|s| s.name == name && s.state == ServiceState::Running && s.pid == Some(health.pid))
        });
        let status = after.iter().find(|s| s.name == name).expect("listed");
        assert_eq!(status.restarts, before.restarts + 1);
        assert!(status.last_exit.as_deref().is_some_and(|e| e.contains("SIGKILL")), "{status:?}");
        println!(
            "{name:<9} kill -> first answer {:>7.2} ms, launcher's exit -> ready {} ms",
            answered.as_secs_f64() * 1000.0,
            status.last_restart_ms.unwrap_or(0)
        );
    }
    // The others were never disturbed.
    let list = berth.list();
    assert!(list.iter().all(|s| s.state == ServiceState::Running && s.restarts == 1), "{list:#?}");
}
