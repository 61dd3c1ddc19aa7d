//! The IPC benchmark's pieces: a one-call protocol (`Ping` → `Pong`, a small request as a
//! service's `Info` would be), the server that answers it, and the loops that measure
//! round-trip latency on one connection and throughput with many calls in flight.

use std::path::Path;
use std::time::{Duration, Instant};

use berth_ipc::{Client, ClientOptions, Context, Handler, Reply, Server, ServerConfig};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

/// A small request: a sequence number and a short name, about 30 bytes on the wire.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Ping {
    /// Echoed back.
    pub seq: u64,
    /// A short string, like an object name.
    pub name: String,
}

/// The answer to [`Ping`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Pong {
    /// The request's `seq`.
    pub seq: u64,
    /// Length of the request's name.
    pub len: u32,
}

berth_ipc::protocol! {
    /// The benchmark service.
    pub protocol Bench = "bench";
    request BenchRequest; response BenchResponse;
    /// Answer at once. Always allowed.
    Ping(Ping) -> Pong [idempotent];
}

/// Answers `Ping` at once.
#[derive(Debug, Clone, Copy)]
pub struct BenchHandler;

impl Handler<Bench> for BenchHandler {
    async fn handle(&self, req: BenchRequest, _ctx: Context) -> Reply<BenchResponse> {
        match req {
            BenchRequest::Ping(p) => {
                let len = u32::try_from(p.name.len()).unwrap_or(u32::MAX);
                Reply::Unary(Ok(BenchResponse::Ping(Pong { seq: p.seq, len })))
            }
        }
    }
}

/// Serves the benchmark protocol on `path` until `shutdown`.
pub async fn serve(path: &Path, shutdown: CancellationToken) -> std::io::Result<()> {
    let listener = berth_ipc::socket::bind(path, None)?;
    Server::<Bench, _>::new(BenchHandler, ServerConfig::default()).serve(listener, shutdown).await
}

/// A client of the benchmark server at `path`.
pub fn client(path: &Path) -> Client<Bench> {
    Client::new(path, ClientOptions { deadline: Duration::from_secs(10), client_name: "ipc_bench".into() })
}

fn ping(seq: u64) -> Ping {
    Ping { seq, name: "sha256:0123456789abcdef".to_string() }
}

/// Makes `n` calls one after another; returns each round trip's duration.
pub async fn sequential(c: &Client<Bench>, n: usize) -> anyhow::Result<Vec<Duration>> {
    let mut samples = Vec::with_capacity(n);
    for seq in 0..n as u64 {
        let started = Instant::now();
        let pong = c.call(ping(seq)).await?;
        samples.push(started.elapsed());
        anyhow::ensure!(pong.seq == seq, "answer {} to call {seq}", pong.seq);
    }
    Ok(samples)
}

/// Runs `tasks` concurrent callers spread over `clients` (each a connection) for `length`;
/// returns the calls completed and the time taken.
pub async fn concurrent(
    clients: &[Client<Bench>],
    tasks: usize,
    length: Duration,
) -> anyhow::Result<(u64, Duration)> {
    let started = Instant::now();
    let until = started + length;
    let mut handles = Vec::with_capacity(tasks);
    for t in 0..tasks {
        let c = clients[t % clients.len()].clone();
        handles.push(tokio::spawn(async move {
            let mut done = 0u64;
            while Instant::now() < until {
                let seq = (t as u64) << 32 | done;
                let pong = c.call(ping(seq)).await?;
                anyhow::ensure!(pong.seq == seq, "answer {} to call {seq}", pong.seq);
                done += 1;
            }
            Ok(done)
        }));
    }
    let mut total = 0;
    for h in handles {
        total += h.await??;
    }
    Ok((total, started.elapsed()))
}
