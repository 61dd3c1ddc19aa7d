//! The storm phase: SIGKILLs at more than one a second across the six services, without
//! waiting for the victim to come back, for a fixed time. With the launcher's real
//! crash-loop limit in force, no service may be left down afterwards: deaths of a process
//! that had served are not a crash loop, and a service marked failed anyway (killed while
//! still starting too often) is retried on the slow schedule.

use std::time::{Duration, Instant};

use berth_ipc::launcher::ServiceState;
use berth_system_tests::{Berth, SERVICES, signal};
use nix::sys::signal::Signal;

use super::{Rng, Shared};

/// Kills a random service every 0.2–0.6 s (about 2.5 a second) until `until`; returns the kills sent.
pub fn run(berth: &mut Berth, shared: &Shared, rng: &Rng, until: Instant) -> u64 {
    let mut kills = 0;
    let mut saw_failed = 0;
    while Instant::now() < until {
        std::thread::sleep(rng.millis(200, 600));
        let name = SERVICES[rng.below(SERVICES.len() as u64) as usize];
        let list = berth.list();
        saw_failed += list.iter().filter(|s| s.state == ServiceState::Failed).count() as u64;
        let Some(pid) = list.iter().find(|s| s.name == name).and_then(|s| s.pid) else { continue };
        signal(pid, Signal::SIGKILL);
        kills += 1;
        let mut t = shared.tally.lock().expect("tally");
        *t.kills.entry("storm".into()).or_default() += 1;
    }
    let mut t = shared.tally.lock().expect("tally");
    t.ops.insert("storm-failed-seen".into(), saw_failed);
    kills
}

/// Rate check: at least one kill a second over `took`.
pub fn check_rate(shared: &Shared, kills: u64, took: Duration) {
    let rate = kills as f64 / took.as_secs_f64();
    println!("storm: {kills} SIGKILLs in {:.1} s ({rate:.2}/s)", took.as_secs_f64());
    if rate < 1.0 {
        shared.violation(format!("storm too slow: {rate:.2} kills/s"));
    }
}
