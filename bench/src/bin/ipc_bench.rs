//! The IPC benchmark: round-trip latency of a small request on one connection, and
//! throughput with many calls in flight, against a server in a separate process.
//!
//! ```text
//! cargo run --release -p berth-bench --bin ipc_bench [-- --calls N --seconds S --client-threads T]
//! ```
//!
//! The binary re-executes itself with `--serve SOCKET` to run the server (a 2-worker tokio
//! runtime, as every berth service has); the server exits when its stdin closes.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::Context as _;
use berth_bench::ipc;
use berth_bench::stats::{Percentiles, cpu_time, us};
use tokio_util::sync::CancellationToken;

struct Options {
    serve: Option<PathBuf>,
    calls: usize,
    warmup: usize,
    seconds: f64,
    client_threads: usize,
}

fn parse() -> anyhow::Result<Options> {
    let mut o = Options { serve: None, calls: 20_000, warmup: 2_000, seconds: 3.0, client_threads: 1 };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || args.next().with_context(|| format!("{a} needs a value"));
        match a.as_str() {
            "--serve" => o.serve = Some(PathBuf::from(value()?)),
            "--calls" => o.calls = value()?.parse()?,
            "--warmup" => o.warmup = value()?.parse()?,
            "--seconds" => o.seconds = value()?.parse()?,
            "--client-threads" => o.client_threads = value()?.parse()?,
            other => anyhow::bail!("unknown argument {other}"),
        }
    }
    Ok(o)
}

fn main() -> anyhow::Result<()> {
    let o = parse()?;
    match &o.serve {
        Some(path) => serve(path),
        None => measure(&o),
    }
}

/// Server mode: serve until stdin closes.
fn serve(path: &Path) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    rt.block_on(async {
        let shutdown = CancellationToken::new();
        let stop = shutdown.clone();
        std::thread::spawn(move || {
            let _ = std::io::copy(&mut std::io::stdin(), &mut std::io::sink());
            stop.cancel();
        });
        ipc::serve(path, shutdown).await?;
        Ok(())
    })
}

fn measure(o: &Options) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let socket = dir.path().join("bench.sock");
    let exe = std::env::current_exe()?;
    let mut server = Command::new(exe)
        .arg("--serve")
        .arg(&socket)
        .stdin(Stdio::piped())
        .spawn()
        .context("start the server process")?;
    let rt = if o.client_threads <= 1 {
        tokio::runtime::Builder::new_current_thread().enable_all().build()?
    } else {
        tokio::runtime::Builder::new_multi_thread().worker_threads(o.client_threads).enable_all().build()?
    };
    let result = rt.block_on(run(o, &socket, server.id()));
    drop(server.stdin.take()); // the server shuts down
    let status = server.wait()?;
    anyhow::ensure!(status.success(), "server exited with {status}");
    result
}

/// CPU time used by this process and the server so far.
fn cpu_of_both(server: u32) -> Option<Duration> {
    Some(cpu_time(None)? + cpu_time(Some(server))?)
}

async fn run(o: &Options, socket: &Path, pid: u32) -> anyhow::Result<()> {
    let c = ipc::client(socket);
    let welcome = c.welcome().await.context("connect to the server")?;
    anyhow::ensure!(welcome.pid == pid, "connected to pid {}, spawned {pid}", welcome.pid);
    let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let runtime = if o.client_threads <= 1 {
        "current-thread".to_string()
    } else {
        format!("{} workers", o.client_threads)
    };
    println!("berth IPC benchmark: server pid {pid} (separate process, 2 worker threads)");
    println!("client runtime: {runtime}; {cpus} CPUs; request Ping{{seq, name: 22 chars}} -> Pong");
    println!();

    ipc::sequential(&c, o.warmup).await?;
    let mut samples = ipc::sequential(&c, o.calls).await?;
    let p = Percentiles::of(&mut samples).context("no samples")?;
    println!("latency, 1 connection, sequential, {} calls after {} warm-up (µs):", p.count, o.warmup);
    println!(
        "  p50 {}  p90 {}  p99 {}  p99.9 {}  max {}  mean {}",
        us(p.p50),
        us(p.p90),
        us(p.p99),
        us(p.p999),
        us(p.max),
        us(p.mean)
    );
    println!();

    let length = Duration::from_secs_f64(o.seconds);
    let four: Vec<_> = (0..4).map(|_| ipc::client(socket)).collect();
    for cl in &four {
        cl.welcome().await?;
    }
    println!("throughput, calls in flight, {:.1} s each:", o.seconds);
    let mut best = 0.0f64;
    for (tasks, clients) in
        [(1, &four[..1]), (64, &four[..1]), (256, &four[..1]), (64, &four[..]), (256, &four[..])]
    {
        ipc::concurrent(clients, tasks, Duration::from_millis(200)).await?; // warm-up
        let cpu_before = cpu_of_both(pid);
        let (calls, took) = ipc::concurrent(clients, tasks, length).await?;
        let cpu = cpu_of_both(pid).zip(cpu_before).map(|(after, before)| after.saturating_sub(before));
        let rate = calls as f64 / took.as_secs_f64();
        best = best.max(rate);
        // CPU per call (client and server together) hardly depends on what else runs on the
        // machine, unlike calls/s.
        let per_call = cpu.map(|c| c.as_secs_f64() * 1e6 / calls.max(1) as f64).unwrap_or(f64::NAN);
        let used = cpu.map(|c| c.as_secs_f64() / took.as_secs_f64()).unwrap_or(f64::NAN);
        println!(
            "  {tasks:>3} tasks on {} connection{}: {:>7.0} calls/s   cpu {:.1} µs/call, {:.2} CPUs busy",
            clients.len(),
            if clients.len() == 1 { " " } else { "s" },
            rate,
            per_call,
            used,
        );
    }
    println!();
    let verdict = |ok: bool| if ok { "met" } else { "MISSED" };
    println!("target p50 < 30 µs: {} (p50 {} µs)", verdict(p.p50 < Duration::from_micros(30)), us(p.p50));
    println!("target > 100k calls/s: {} (best {:.0} calls/s)", verdict(best > 100_000.0), best);
    Ok(())
}
