//! Events restart latency against the length of the log: the real `berth-events` binary
//! SIGKILLed with 10^4, 10^5 and 10^6 events stored, started again at once, timed from the
//! kill until a `Stats` call is answered (the service answers only once its log and its
//! idempotency window are open, so this is what a publisher waits for after a crash).
//!
//! ```text
//! cargo build --release -p berth-events -p berth-bench
//! BENCH_TMP=/path/on/real/disk target/release/events_restart_bench [--sizes 10000,100000,1000000] [--rounds 5]
//!     [--publishers 4] [--batch 4096]
//! # another build of the service: --events-bin PATH (default: berth-events next to this executable)
//! # BENCH_LOG=1: the service's log (it says how long the open, the window and retention took)
//! # BENCH_KEEP=1: the service's root is kept after the run
//! ```
//!
//! The log is filled through the service itself (by default batches of 4,096 from 4
//! publishers; `--batch 1 --publishers 64` is many services publishing one event at a time),
//! with the default configuration (`dedup_window` 100,000, `max_events` 1,000,000).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;
use berth_ipc::events::payload::ContentCreate;
use berth_ipc::events::{Events, MAX_BATCH, NewEvent, PublishBatch, Stats};
use berth_ipc::{Client, ClientOptions};

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned()
}

fn client(socket: &Path) -> Client<Events> {
    Client::new(socket, ClientOptions { deadline: Duration::from_secs(60), client_name: "bench".into() })
}

/// The service in a temp root; killed and reaped on drop.
struct Service {
    bin: PathBuf,
    root: PathBuf,
    state: PathBuf,
    child: Option<Child>,
}

impl Service {
    fn spawn(&mut self) -> anyhow::Result<()> {
        let child = Command::new(&self.bin)
            .arg("--root")
            .arg(&self.root)
            .arg("--state")
            .arg(&self.state)
            .env("RUST_LOG", "warn")
            .stderr(if std::env::var_os("BENCH_LOG").is_some() { Stdio::inherit() } else { Stdio::null() })
            .spawn()
            .with_context(|| format!("start {}", self.bin.display()))?;
        self.child = Some(child);
        Ok(())
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill(); // SIGKILL
            let _ = c.wait();
        }
    }

    /// CPU time the running service has used so far, in ms (`/proc/<pid>/schedstat`: on-CPU
    /// nanoseconds of every thread, summed over `task/`; threads already ended are not counted).
    fn cpu_ms(&self) -> f64 {
        let Some(c) = &self.child else { return 0.0 };
        let dir = format!("/proc/{}/task", c.id());
        let mut ns = 0u64;
        for t in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let stat = std::fs::read_to_string(t.path().join("schedstat")).unwrap_or_default();
            ns += stat.split_whitespace().next().and_then(|v| v.parse().ok()).unwrap_or(0);
        }
        ns as f64 / 1e6
    }

    fn socket(&self) -> PathBuf {
        self.state.join("events.sock")
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Polls `Stats` every millisecond until answered.
async fn wait_answering(socket: &Path, timeout: Duration) -> anyhow::Result<u64> {
    let started = Instant::now();
    loop {
        let c = Client::<Events>::new(
            socket,
            ClientOptions { deadline: Duration::from_secs(5), client_name: "bench".into() },
        );
        if let Ok(s) = c.call(Stats).await {
            return Ok(s.last);
        }
        anyhow::ensure!(started.elapsed() < timeout, "events did not answer within {timeout:?}");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// How the log is filled: `publishers` concurrent publishers, `batch` events a call.
#[derive(Clone, Copy)]
struct Load {
    publishers: u64,
    batch: u64,
}

async fn fill(socket: &Path, from: u64, to: u64, load: Load) -> anyhow::Result<()> {
    let (publishers, batch) = (load.publishers, load.batch);
    let mut tasks = Vec::new();
    for p in 0..publishers {
        let c = client(socket);
        let (lo, hi) = (from + (to - from) * p / publishers, from + (to - from) * (p + 1) / publishers);
        tasks.push(tokio::spawn(async move {
            let mut counter = lo;
            while counter < hi {
                let n = (hi - counter).min(batch);
                let events = (counter..counter + n)
                    .map(|i| {
                        NewEvent::new(
                            "default",
                            ContentCreate { digest: format!("sha256:{i:064x}"), size: i },
                        )
                    })
                    .collect();
                c.call(PublishBatch { publisher: format!("fill{p}"), first_counter: counter, events })
                    .await?;
                counter += n;
            }
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok(())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let sizes: Vec<u64> = arg("--sizes")
        .unwrap_or_else(|| "10000,100000,1000000".into())
        .split(',')
        .map(|s| s.parse().context("--sizes: numbers separated by commas"))
        .collect::<anyhow::Result<_>>()?;
    let load = Load {
        publishers: arg("--publishers").map_or(Ok(4), |s| s.parse()).context("--publishers")?.max(1),
        batch: arg("--batch")
            .map_or(Ok(MAX_BATCH as u64), |s| s.parse())
            .context("--batch")?
            .clamp(1, MAX_BATCH as u64),
    };
    let rounds: usize = arg("--rounds").map_or(Ok(5), |s| s.parse()).context("--rounds")?;
    let bin = match arg("--events-bin") {
        Some(p) => PathBuf::from(p),
        None => std::env::current_exe()?.parent().context("exe dir")?.join("berth-events"),
    };
    anyhow::ensure!(bin.exists(), "{} missing: cargo build -p berth-events", bin.display());
    let tmp = std::env::var_os("BENCH_TMP").map_or_else(std::env::temp_dir, PathBuf::from);
    let mut dir = tempfile::Builder::new().prefix("berth-events-restart-").tempdir_in(tmp)?;
    // BENCH_KEEP=1: the service's root is kept (for profiling a restart by hand).
    dir.disable_cleanup(std::env::var_os("BENCH_KEEP").is_some());
    let mut svc =
        Service { bin, root: dir.path().join("root"), state: dir.path().join("state"), child: None };
    std::fs::create_dir_all(&svc.state)?;
    svc.spawn()?;
    wait_answering(&svc.socket(), Duration::from_secs(30)).await?;
    println!(
        "events restart (SIGKILL -> Stats answered), {}; filled by {} publishers, {} events a call",
        svc.bin.display(),
        load.publishers,
        load.batch
    );
    let mut stored = 0;
    for size in sizes {
        let t = Instant::now();
        fill(&svc.socket(), stored, size.max(stored), load).await?;
        stored = size.max(stored);
        let fill_s = t.elapsed().as_secs_f64();
        // Let the fill's memtables flush, as they would in a service that has been running.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let mut times = Vec::with_capacity(rounds);
        let mut cpu = Vec::with_capacity(rounds);
        for _ in 0..rounds {
            let t = Instant::now();
            svc.kill();
            svc.spawn()?;
            let last = wait_answering(&svc.socket(), Duration::from_secs(120)).await?;
            times.push(t.elapsed().as_secs_f64() * 1e3);
            cpu.push(svc.cpu_ms());
            anyhow::ensure!(last == stored, "after the restart the log ends at {last}, not {stored}");
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        times.sort_by(f64::total_cmp);
        cpu.sort_by(f64::total_cmp);
        println!(
            "  {size:>8} events (filled in {fill_s:.1} s): wall min {:.1} ms  p50 {:.1} ms  max {:.1} ms; \
             cpu until answering p50 {:.1} ms (n={rounds})",
            times[0],
            times[times.len() / 2],
            times[times.len() - 1],
            cpu[cpu.len() / 2],
        );
    }
    Ok(())
}
