//! Events benchmark: durable publish throughput (client batches, single concurrent
//! publishes, the embedded outbox publisher) and live fan-out latency to 100 subscribers.
//!
//! Runs the real `berth-events` binary (found next to this executable) in a temp root, so
//! every figure includes the socket hops and the `fdatasync` of each group commit.
//!
//! ```text
//! cargo build --release -p berth-events -p berth-bench
//! target/release/events_bench [--events 200000] [--subscribers 100] [--rate 1000] [--seconds 5]
//! ```

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use berth_ipc::events::payload::ContentCreate;
use berth_ipc::events::{Events, NewEvent, Publish, PublishBatch, Since, Subscribe, SubscribeItem};
use berth_ipc::publisher::Publisher;
use berth_ipc::{Client, ClientOptions};

fn arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

use berth_service_kit::time::now_ns;

fn event(i: u64) -> NewEvent {
    NewEvent::new("default", ContentCreate { digest: format!("sha256:{i:064x}"), size: i })
}

struct Service {
    child: Child,
    _dir: tempfile::TempDir,
    socket: PathBuf,
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn start_service() -> anyhow::Result<Service> {
    let exe = std::env::current_exe()?;
    let bin = exe.parent().context("exe dir")?.join("berth-events");
    anyhow::ensure!(bin.exists(), "{} missing: cargo build --release -p berth-events", bin.display());
    let dir = tempfile::Builder::new().prefix("berth-events-bench-").tempdir_in(bench_tmp())?;
    let (root, state) = (dir.path().join("root"), dir.path().join("state"));
    std::fs::create_dir_all(&state)?;
    let child = Command::new(&bin)
        .arg("--root")
        .arg(&root)
        .arg("--state")
        .arg(&state)
        .env("RUST_LOG", "warn")
        .stderr(Stdio::inherit())
        .spawn()?;
    let socket = state.join("events.sock");
    let svc = Service { child, _dir: dir, socket };
    client(&svc.socket).health().await?;
    Ok(svc)
}

/// Where the temp root goes: `$BENCH_TMP`, else the system temp dir (use a real disk, not
/// tmpfs, for honest fsync figures).
fn bench_tmp() -> PathBuf {
    std::env::var_os("BENCH_TMP").map_or_else(std::env::temp_dir, PathBuf::from)
}

/// CPU seconds (user + system) the process `pid` has used so far.
fn cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat.rsplit(')').next().unwrap_or("").split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // After the command name: state is field 0, utime field 11, stime field 12 (clock ticks).
    (ticks(11) + ticks(12)) / 100.0
}

fn client(socket: &Path) -> Client<Events> {
    Client::new(socket, ClientOptions { deadline: Duration::from_secs(10), client_name: "bench".into() })
}

fn pct(sorted: &[u64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted[i.min(sorted.len() - 1)] as f64 / 1e6
}

async fn batched(svc: &Service, total: u64, publishers: u64, batch: u64) -> anyhow::Result<f64> {
    let started = Instant::now();
    let mut tasks = Vec::new();
    for p in 0..publishers {
        let c = client(&svc.socket);
        tasks.push(tokio::spawn(async move {
            let mut counter = 1;
            while counter <= total / publishers {
                let events = (0..batch).map(|i| event(counter + i)).collect();
                c.call(PublishBatch { publisher: format!("batch{p}"), first_counter: counter, events })
                    .await?;
                counter += batch;
            }
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok(total as f64 / started.elapsed().as_secs_f64())
}

async fn single(svc: &Service, total: u64, concurrency: u64) -> anyhow::Result<f64> {
    let started = Instant::now();
    let c = client(&svc.socket);
    let mut tasks = Vec::new();
    for p in 0..concurrency {
        let c = c.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..total / concurrency {
                c.call(Publish { publisher: format!("single{p}"), counter: i, event: event(i) }).await?;
            }
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok(total as f64 / started.elapsed().as_secs_f64())
}

async fn outbox(svc: &Service, total: u64) -> anyhow::Result<f64> {
    let publisher = Publisher::new(&svc.socket, "bench", total as usize);
    let started = Instant::now();
    for i in 0..total {
        publisher.publish("default", ContentCreate { digest: "sha256:x".into(), size: i });
    }
    let enqueue = started.elapsed();
    anyhow::ensure!(publisher.flush(Duration::from_secs(120)).await, "outbox flush timed out");
    println!("  outbox: enqueue of {total} took {:.1} ms (never blocks)", enqueue.as_secs_f64() * 1e3);
    Ok(total as f64 / started.elapsed().as_secs_f64())
}

/// `subscribers` live subscribers; one publisher at `rate` events/s for `seconds`; each
/// event carries its publish time, so the latency is publish call -> delivery.
async fn fanout(svc: &Service, subscribers: u64, rate: u64, seconds: u64) -> anyhow::Result<(Vec<u64>, f64)> {
    let total = rate * seconds;
    let mut readers = Vec::new();
    for _ in 0..subscribers {
        let c = client(&svc.socket);
        let mut stream = c
            .stream(Subscribe { filters: vec!["topic==/content/create".into()], since: Since::Live })
            .await?;
        anyhow::ensure!(matches!(stream.next().await, Some(Ok(SubscribeItem::Ready { .. }))), "ready");
        readers.push(tokio::spawn(async move {
            let _keep = c;
            let mut lat = Vec::with_capacity(total as usize);
            while (lat.len() as u64) < total {
                match stream.next().await {
                    Some(Ok(SubscribeItem::Event(e))) => {
                        if let berth_ipc::events::Payload::ContentCreate(p) = e.payload {
                            lat.push(now_ns().saturating_sub(p.size));
                        }
                    }
                    other => anyhow::bail!("subscriber: unexpected {other:?}"),
                }
            }
            anyhow::Ok(lat)
        }));
    }
    let c = client(&svc.socket);
    let started = Instant::now();
    let interval = Duration::from_nanos(1_000_000_000 / rate.max(1));
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let c = Arc::new(c);
    let mut pubs = Vec::new();
    for i in 0..total {
        tick.tick().await;
        let c = c.clone();
        pubs.push(tokio::spawn(async move {
            let ev = NewEvent::new("default", ContentCreate { digest: "sha256:x".into(), size: now_ns() });
            c.call(Publish { publisher: "fanout".into(), counter: i, event: ev }).await
        }));
    }
    for p in pubs {
        p.await??;
    }
    let achieved = total as f64 / started.elapsed().as_secs_f64();
    let mut all = Vec::new();
    for r in readers {
        all.extend(r.await??);
    }
    all.sort_unstable();
    Ok((all, achieved))
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> anyhow::Result<()> {
    let events = arg("--events", 200_000);
    let subscribers = arg("--subscribers", 100);
    let rate = arg("--rate", 1000);
    let seconds = arg("--seconds", 5);
    println!("events bench: {events} events, temp root under {}", bench_tmp().display());

    let svc = start_service().await?;
    let cpu_before = cpu_secs(svc.child.id());
    println!("durable publish throughput (events/s, each reply after fdatasync):");
    println!("  batches of 100, 4 publishers : {:>9.0}", batched(&svc, events, 4, 100).await?);
    println!("  single Publish, 256 in flight: {:>9.0}", single(&svc, events / 4, 256).await?);
    println!("  embedded Publisher (outbox)  : {:>9.0}", outbox(&svc, events).await?);
    let cpu = cpu_secs(svc.child.id()) - cpu_before;
    println!(
        "  service CPU for the {} events: {cpu:.2} s ({:.1} us per event)",
        events * 9 / 4,
        cpu * 1e6 / (events * 9 / 4) as f64
    );
    drop(svc);

    let svc = start_service().await?;
    let cpu_before = cpu_secs(svc.child.id());
    let (lat, achieved) = fanout(&svc, subscribers, rate, seconds).await?;
    let cpu = cpu_secs(svc.child.id()) - cpu_before;
    println!(
        "fan-out: {subscribers} subscribers, {achieved:.0} events/s for {seconds}s, {} deliveries: \
         latency publish->delivery p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        lat.len(),
        pct(&lat, 0.5),
        pct(&lat, 0.99),
        pct(&lat, 1.0)
    );
    println!(
        "  service CPU during fan-out: {cpu:.2} s ({:.1} us per delivery)",
        cpu * 1e6 / lat.len().max(1) as f64
    );
    Ok(())
}
