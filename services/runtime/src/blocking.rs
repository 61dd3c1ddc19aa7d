//! Blocking work (`std::fs`, `/proc` scans, OCI runtime calls) from async code: on tokio's
//! blocking pool, so the service's few worker threads never stall behind it.
//! (A local copy until the service kit has one; issue 16 item 2 gives the kit its own.)

use berth_ipc::{Error, Result};

/// Runs `f` on the blocking pool and answers what it returns; a panic in `f` is an
/// internal error, not a panic of the caller.
pub async fn blocking<T, F>(f: F) -> Result<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(f).await.map_err(|e| Error::internal_cause("blocking task", e))
}
