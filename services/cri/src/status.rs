//! berth errors as gRPC statuses, and what each RPC did (counts, errors, latency) for the
//! metrics.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Instant;

use berth_ipc::{Code, Error};
use tonic::Status;

/// The gRPC status of a berth error: same code, message kept.
pub fn to_status(e: Error) -> Status {
    let code = match e.code {
        Code::NotFound => tonic::Code::NotFound,
        Code::AlreadyExists => tonic::Code::AlreadyExists,
        Code::InvalidArgument => tonic::Code::InvalidArgument,
        Code::FailedPrecondition => tonic::Code::FailedPrecondition,
        Code::Unavailable => tonic::Code::Unavailable,
        Code::OutOfRange => tonic::Code::OutOfRange,
        Code::Conflict => tonic::Code::Aborted,
        Code::PermissionDenied => tonic::Code::PermissionDenied,
        Code::DataLoss => tonic::Code::DataLoss,
        Code::Unimplemented => tonic::Code::Unimplemented,
        _ => tonic::Code::Internal,
    };
    Status::new(code, e.message)
}

/// The result type of the CRI handlers.
pub type CriResult<T> = std::result::Result<T, Status>;

/// Converts a berth result.
pub trait OrStatus<T> {
    /// The value, or the error as a gRPC status.
    fn or_status(self) -> CriResult<T>;
}

impl<T> OrStatus<T> for berth_ipc::Result<T> {
    fn or_status(self) -> CriResult<T> {
        self.map_err(to_status)
    }
}

/// `InvalidArgument` with `message`.
pub fn invalid(message: impl Into<String>) -> Status {
    Status::invalid_argument(message.into())
}

/// Per RPC: calls, failed calls, and time spent (µs), for the metrics.
#[derive(Debug, Default)]
pub struct RpcStats {
    by_rpc: Mutex<BTreeMap<&'static str, Counts>>,
}

#[derive(Debug, Default, Clone, Copy)]
struct Counts {
    calls: u64,
    errors: u64,
    total_us: u64,
    max_us: u64,
}

impl RpcStats {
    /// Records one call of `rpc` that began at `start`.
    pub fn record(&self, rpc: &'static str, start: Instant, ok: bool) {
        let us = u64::try_from(start.elapsed().as_micros()).unwrap_or(u64::MAX);
        let mut map = berth_ipc::sync::lock(&self.by_rpc);
        let c = map.entry(rpc).or_default();
        c.calls += 1;
        c.errors += u64::from(!ok);
        c.total_us = c.total_us.saturating_add(us);
        c.max_us = c.max_us.max(us);
    }

    /// Gauges: `cri_<rpc>_calls`, `_errors`, `_us_total`, `_us_max`.
    pub fn gauges(&self) -> Vec<(String, f64)> {
        let map = berth_ipc::sync::lock(&self.by_rpc);
        let mut out = Vec::new();
        #[allow(clippy::cast_precision_loss)]
        for (rpc, c) in map.iter() {
            out.push((format!("cri_{rpc}_calls"), c.calls as f64));
            out.push((format!("cri_{rpc}_errors"), c.errors as f64));
            out.push((format!("cri_{rpc}_us_total"), c.total_us as f64));
            out.push((format!("cri_{rpc}_us_max"), c.max_us as f64));
        }
        out
    }
}

/// Runs one RPC's handler, recording it (and logging a failure at debug).
pub async fn rpc<T>(
    stats: &RpcStats,
    name: &'static str,
    f: impl Future<Output = CriResult<T>>,
) -> CriResult<tonic::Response<T>> {
    let start = Instant::now();
    let out = f.await;
    stats.record(name, start, out.is_ok());
    if let Err(e) = &out {
        tracing::debug!(rpc = name, code = ?e.code(), message = e.message(), "CRI call failed");
    }
    out.map(tonic::Response::new)
}
