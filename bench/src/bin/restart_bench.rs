//! Restart latency: how long a SIGKILLed berth process takes to answer again. Driven by
//! `bench/restart.sh`, which starts berthd and containerd and gives them some history.
//!
//! ```text
//! restart_bench services STATE ROUNDS   SIGKILL each service ROUNDS times (the launcher
//!                                       restarts it): kill -> Health answered by the new
//!                                       pid, percentiles per service
//! restart_bench wait-health STATE       wait until every service and the launcher answer
//!                                       (after a berthd restart the script made)
//! restart_bench wait-connect SOCKET     wait until SOCKET accepts a connection
//! ```
//!
//! A service's socket is bound by berthd and outlives the service, so a `Health` sent while
//! the service is down waits in the socket's backlog and is answered by the replacement the
//! moment it serves: the figure is what a client sees, with no polling granularity.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use berth_bench::stats::Percentiles;
use berth_ipc::launcher::{Launcher, ListServices};
use berth_ipc::{Client, ClientOptions};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

const SERVICES: [&str; 5] = ["events", "content", "snapshot", "metadata", "runtime"];

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    match args.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
        ["services", state, rounds] => rt.block_on(services(Path::new(state), rounds.parse()?)),
        ["wait-health", state] => rt.block_on(wait_health(Path::new(state), Duration::from_secs(60))),
        ["wait-connect", socket] => wait_connect(Path::new(socket), Duration::from_secs(60)),
        _ => bail!("usage: restart_bench services STATE ROUNDS | wait-health STATE | wait-connect SOCKET"),
    }
}

fn socket(state: &Path, name: &str) -> PathBuf {
    state.join(format!("{name}.sock"))
}

async fn services(state: &Path, rounds: usize) -> anyhow::Result<()> {
    let options = ClientOptions { deadline: Duration::from_secs(30), client_name: "restart_bench".into() };
    let launcher = Client::<Launcher>::in_state_dir(state, options);
    println!("{:<9} {:>6} {:>9} {:>9} {:>9}", "service", "kills", "p50 ms", "p90 ms", "max ms");
    for name in SERVICES {
        let mut samples = Vec::new();
        for _ in 0..rounds {
            // A pause between kills: the launcher's back-off doubles for a service killed
            // again right after it came back, which is a different measurement.
            tokio::time::sleep(Duration::from_millis(1500)).await;
            let list = launcher.call(ListServices).await.context("list services")?;
            let old = list.iter().find(|s| s.name == name).and_then(|s| s.pid).context("service pid")?;
            let t0 = Instant::now();
            kill(Pid::from_raw(i32::try_from(old)?), Signal::SIGKILL)?;
            loop {
                let h = berth_ipc::probe::probe(&socket(state, name), name, Duration::from_secs(30)).await;
                match h {
                    Ok(h) if h.pid != old => break,
                    // The old process answered before the kill landed: ask again.
                    Ok(_) => tokio::time::sleep(Duration::from_micros(200)).await,
                    Err(e) => bail!("{name}: no answer within 30 s of its SIGKILL: {e}"),
                }
            }
            samples.push(t0.elapsed());
        }
        let p = Percentiles::of(&mut samples).context("samples")?;
        let ms = |d: Duration| format!("{:.1}", d.as_secs_f64() * 1e3);
        println!("{name:<9} {:>6} {:>9} {:>9} {:>9}", p.count, ms(p.p50), ms(p.p90), ms(p.max));
    }
    Ok(())
}

async fn wait_health(state: &Path, limit: Duration) -> anyhow::Result<()> {
    let start = Instant::now();
    for name in SERVICES.into_iter().chain(["berthd"]) {
        while berth_ipc::probe::probe(&socket(state, name), name, Duration::from_secs(5)).await.is_err() {
            if start.elapsed() > limit {
                bail!("{name} did not answer within {limit:?}");
            }
            tokio::time::sleep(Duration::from_micros(500)).await;
        }
    }
    Ok(())
}

fn wait_connect(socket: &Path, limit: Duration) -> anyhow::Result<()> {
    let start = Instant::now();
    while std::os::unix::net::UnixStream::connect(socket).is_err() {
        if start.elapsed() > limit {
            bail!("{} accepted nothing within {limit:?}", socket.display());
        }
        std::thread::sleep(Duration::from_micros(500));
    }
    Ok(())
}
