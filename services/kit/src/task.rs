//! Running blocking work (file system, fsync, big hashing) off a service's async threads.
//!
//! Services run on a small runtime (two worker threads by default): one `std::fs` call that
//! waits on a slow disk stalls every connection behind it. Such work goes through
//! [`blocking`] (or [`blocking_value`] for work that answers a plain value), which runs it
//! on tokio's blocking pool and turns a panic or a cancelled task into an `Internal` error
//! naming `who`.

use berth_ipc::{Error, Result};

/// Runs `f` on the blocking pool; a panic in `f` becomes `Internal` ("`who`: …").
pub async fn blocking<T: Send + 'static>(
    who: &str,
    f: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    blocking_value(who, f).await?
}

/// [`blocking`] for an `f` that answers a plain value (a `bool`, an `io::Result`, …): the
/// value comes back as it is, and only a panic in `f` becomes `Internal` ("`who`: …").
pub async fn blocking_value<T: Send + 'static>(
    who: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(f).await.map_err(|e| Error::internal_cause(who, e))
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

    #[tokio::test]
    async fn a_plain_value_comes_back_as_it_is() {
        assert_eq!(blocking_value("worker", || 7).await, Ok(7));
        let inner: Result<std::io::Result<()>> =
            blocking_value("worker", || Err(std::io::Error::other("x"))).await;
        assert!(matches!(inner, Ok(Err(_))), "{inner:?}");
        let panicked =
            blocking_value("runtime worker", || -> bool { panic!("boom") }).await.expect_err("panic");
        assert_eq!(panicked.code, berth_ipc::Code::Internal);
        assert!(panicked.message.starts_with("runtime worker: "), "{panicked}");
    }
}
