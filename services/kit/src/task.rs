//! Running blocking work (file system, fsync, big hashing) off a service's async threads.
//!
//! Services run on a small runtime (two worker threads by default): one `std::fs` call that
//! waits on a slow disk stalls every connection behind it. Such work goes through
//! [`blocking`], which runs it on tokio's blocking pool and turns a panic or a cancelled
//! task into an `Internal` error naming `who`.

use berth_ipc::{Error, Result};

/// Runs `f` on the blocking pool; a panic in `f` becomes `Internal` ("`who`: …").
pub async fn blocking<T: Send + 'static>(
    who: &str,
    f: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(f).await.map_err(|e| Error::internal_cause(who, e))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn results_and_panics_come_back_as_results() {
        assert_eq!(blocking("worker", || Ok(7)).await, Ok(7));
        let err = blocking::<()>("worker", || Err(Error::not_found("blob x"))).await;
        assert_eq!(err, Err(Error::not_found("blob x")));
        let panicked = blocking::<()>("content worker", || panic!("boom")).await.expect_err("panic");
        assert_eq!(panicked.code, berth_ipc::Code::Internal);
        assert!(panicked.message.starts_with("content worker: "), "{panicked}");
    }
}
