//! The chaos loop: every 0.3–2 s it SIGKILLs one berth process picked at random (a service,
//! berthd itself, or a container's shim) and measures how long until it answers again, or
//! freezes one (SIGSTOP, then SIGCONT 0.2–3 s later): a hang instead of a death.

use std::time::{Duration, Instant};

use berth_ipc::launcher::ServiceState;
use berth_system_tests::{Berth, SERVICES, block_on, pid_alive, signal};
use nix::sys::signal::Signal;

use super::{Rng, Shared};

/// Process kinds the loop picks from.
pub const KINDS: [&str; 8] =
    ["events", "content", "snapshot", "metadata", "runtime", "berthd", "shim", "freeze"];

/// Runs the chaos loop on `berth` until `until`.
pub fn run(berth: &mut Berth, shared: &Shared, rng: &Rng, until: Instant) {
    while Instant::now() < until {
        std::thread::sleep(rng.millis(300, 2000));
        let kind = KINDS[rng.below(KINDS.len() as u64) as usize];
        match kind {
            "berthd" => kill_launcher(berth, shared),
            "shim" => kill_shim(shared, rng),
            "freeze" => freeze(berth, shared, rng),
            service => kill_service(berth, shared, service),
        }
    }
}

fn record(shared: &Shared, kind: &str, latency: Option<Duration>) {
    let mut t = shared.tally.lock().expect("tally");
    *t.kills.entry(kind.into()).or_default() += 1;
    if let Some(l) = latency {
        t.latency.entry(kind.into()).or_default().push(l);
    }
}

/// SIGKILLs berthd (its services follow it by PDEATHSIG) and starts it again the way an
/// init system would; the latency is kill -> every service running.
fn kill_launcher(berth: &mut Berth, shared: &Shared) {
    let t0 = Instant::now();
    berth.kill_launcher();
    berth.launch();
    if settle(berth) > 0 {
        shared.violation("berthd restarted, but not every service runs 60 s later".into());
    }
    record(shared, "berthd", Some(t0.elapsed()));
}

fn kill_service(berth: &mut Berth, shared: &Shared, name: &str) {
    let Some(old) = berth.status(name).pid else { return };
    let t0 = Instant::now();
    signal(old, Signal::SIGKILL);
    let clients = berth.clients(Duration::from_secs(30));
    loop {
        let health = block_on(async {
            match name {
                "events" => clients.events.health().await,
                "content" => clients.content.health().await,
                "snapshot" => clients.snapshot.health().await,
                "metadata" => clients.metadata.health().await,
                _ => clients.runtime.health().await,
            }
        });
        match health {
            Ok(h) if h.pid != old => break,
            Ok(_) => std::thread::sleep(Duration::from_millis(1)),
            Err(e) => {
                shared.violation(format!("{name} did not answer within 30 s of its SIGKILL: {e}"));
                break;
            }
        }
    }
    record(shared, name, Some(t0.elapsed()));
}

/// SIGKILLs the shim of a churned (`c…`) or sacrificial (`v…`) container.
fn kill_shim(shared: &Shared, rng: &Rng) {
    let mut shims = shims(shared, |id| id.starts_with('c') || id.starts_with('v'));
    if shims.is_empty() {
        return;
    }
    let (id, pid) = shims.swap_remove(rng.below(shims.len() as u64) as usize);
    shared.shim_killed.lock().expect("shim set").insert(id);
    signal(pid, Signal::SIGKILL);
    record(shared, "shim", None);
}

/// Freezes one service or shim (any shim: a keeper must not notice its shim's hang) for
/// 0.2–3 s. A service frozen longer than the launcher's hang detection allows is replaced,
/// which is a fine outcome too; work sent to it meanwhile is retried by the workload.
fn freeze(berth: &mut Berth, shared: &Shared, rng: &Rng) {
    let mut targets: Vec<(String, u32)> =
        berth.list().into_iter().filter_map(|s| Some((s.name, s.pid?))).collect();
    targets.extend(shims(shared, |_| true));
    if targets.is_empty() {
        return;
    }
    let (_, pid) = &targets[rng.below(targets.len() as u64) as usize];
    signal(*pid, Signal::SIGSTOP);
    std::thread::sleep(rng.millis(200, 3000));
    signal(*pid, Signal::SIGCONT);
    record(shared, "freeze", None);
}

/// `(container id, shim pid)` of every live shim in the default namespace whose id passes
/// `pick`.
fn shims(shared: &Shared, pick: impl Fn(&str) -> bool) -> Vec<(String, u32)> {
    let mut shims = Vec::new();
    for e in std::fs::read_dir(shared.state.join("tasks/default")).into_iter().flatten().flatten() {
        let id = e.file_name().to_string_lossy().into_owned();
        if !pick(&id) {
            continue;
        }
        let pid = std::fs::read_to_string(e.path().join("shim.pid")).ok().and_then(|p| p.trim().parse().ok());
        if let Some(pid) = pid.filter(|p| is_our_shim(*p, shared)) {
            shims.push((id, pid));
        }
    }
    shims
}

/// Whether `pid` is a live shim of this berth (not a reused pid).
fn is_our_shim(pid: u32, shared: &Shared) -> bool {
    let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let cmd = String::from_utf8_lossy(&cmd);
    pid_alive(pid) && cmd.contains("berth-shim") && cmd.contains(&*shared.state.to_string_lossy())
}

/// Waits until every service runs (after the loop), returning how many are not running
/// after 60 s.
pub fn settle(berth: &mut Berth) -> usize {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let list = berth.list();
        let down = SERVICES.len()
            - list.iter().filter(|s| matches!(s.state, ServiceState::Running)).count().min(SERVICES.len());
        if down == 0 || Instant::now() > deadline {
            return down;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
