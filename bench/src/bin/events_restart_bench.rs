//! Events restart latency against the length of the log: the real `berth-events` binary
//! SIGKILLed with 10^4, 10^5 and 10^6 events stored, started again at once, timed from the
//! kill until a `Stats` call is answered (the service answers only once its log and its
//! idempotency window are open, so this is what a publisher waits for after a crash).
//!
//! ```text
//! cargo build -p berth-events -p berth-bench
//! BENCH_TMP=/path/on/real/disk target/debug/events_restart_bench [--sizes 10000,100000,1000000] [--rounds 5]
//! # another build of the service: --events-bin PATH (default: berth-events next to this executable)
//! ```
//!
//! The log is filled through the service itself (batches of 4,096 from 4 publishers), with
//! the default configuration (`dedup_window` 100,000, `max_events` 1,000,000).

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
            .stderr(Stdio::inherit())
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

async fn fill(socket: &Path, from: u64, to: u64) -> anyhow::Result<()> {
    const PUBLISHERS: u64 = 4;
    let mut tasks = Vec::new();
    for p in 0..PUBLISHERS {
        let c = client(socket);
        let (lo, hi) = (from + (to - from) * p / PUBLISHERS, from + (to - from) * (p + 1) / PUBLISHERS);
        tasks.push(tokio::spawn(async move {
            let mut counter = lo;
            while counter < hi {
                let n = (hi - counter).min(MAX_BATCH as u64);
                let events = (counter..counter + n)
                    .map(|i| NewEvent::new("default", ContentCreate { digest: format!("sha256:{i:064x}"), size: i }))
                    .collect();
                c.call(PublishBatch { publisher: format!("fill{p}"), first_counter: counter, events }).await?;
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
    let rounds: usize = arg("--rounds").map_or(Ok(5), |s| s.parse()).context("--rounds")?;
    let bin = match arg("--events-bin") {
        Some(p) => PathBuf::from(p),
        None => std::env::current_exe()?.parent().context("exe dir")?.join("berth-events"),
    };
    anyhow::ensure!(bin.exists(), "{} missing: cargo build -p berth-events", bin.display());
    let tmp = std::env::var_os("BENCH_TMP").map_or_else(std::env::temp_dir, PathBuf::from);
    let dir = tempfile::Builder::new().prefix("berth-events-restart-").tempdir_in(tmp)?;
    let mut svc = Service {
        bin,
        root: dir.path().join("root"),
        state: dir.path().join("state"),
        child: None,
    };
    std::fs::create_dir_all(&svc.state)?;
    svc.spawn()?;
    wait_answering(&svc.socket(), Duration::from_secs(30)).await?;
    println!("events restart (SIGKILL -> Stats answered), {}", svc.bin.display());
    let mut stored = 0;
    for size in sizes {
        let t = Instant::now();
        fill(&svc.socket(), stored, size.max(stored)).await?;
        stored = size.max(stored);
        let fill_s = t.elapsed().as_secs_f64();
        // Let the fill's memtables flush, as they would in a service that has been running.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let mut times = Vec::with_capacity(rounds);
        for _ in 0..rounds {
            let t = Instant::now();
            svc.kill();
            svc.spawn()?;
            let last = wait_answering(&svc.socket(), Duration::from_secs(120)).await?;
            times.push(t.elapsed().as_secs_f64() * 1e3);
            anyhow::ensure!(last == stored, "after the restart the log ends at {last}, not {stored}");
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        times.sort_by(f64::total_cmp);
        println!(
            "  {size:>8} events (filled in {fill_s:.1} s): p50 {:.1} ms  max {:.1} ms (n={rounds})",
            times[times.len() / 2],
            times[times.len() - 1]
        );
    }
    Ok(())
}
