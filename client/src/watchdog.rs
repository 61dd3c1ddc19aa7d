//! Bounds on a slow or stalled registry: a response must start (status and headers) within
//! the stall timeout, and its body must then deliver at least [`MIN_PROGRESS`] bytes in every
//! window of that length. A connection that trickles one byte a second (slow-loris) or goes
//! silent therefore fails in bounded time with an error naming what was being fetched,
//! instead of holding a pull and its lease forever.

use std::time::Duration;

use berth_ipc::{Error, Result};
use reqwest::Response;
use tokio::time::Instant;

/// The default stall timeout.
pub const STALL_TIMEOUT: Duration = Duration::from_secs(30);

/// Bytes a body must deliver in every stall window.
pub const MIN_PROGRESS: u64 = 16 << 10;

/// The text of a `reqwest` error with its causes (`reqwest` prints only the outer one:
/// "request or response body error" hides a timeout or a connection reset).
pub fn describe(e: &reqwest::Error) -> String {
    let mut out = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

/// Awaits a response's start, failing after `stall`.
pub async fn started<F>(what: &str, stall: Duration, send: F) -> Result<Response>
where
    F: std::future::Future<Output = reqwest::Result<Response>>,
{
    match tokio::time::timeout(stall, send).await {
        Ok(Ok(resp)) => Ok(resp),
        Ok(Err(e)) => Err(Error::unavailable(format!("{what}: {}", describe(&e)))),
        Err(_) => {
            Err(Error::unavailable(format!("{what}: timed out: no response within {}s", stall.as_secs())))
        }
    }
}

/// Tracks a body's progress window by window. Only the time spent waiting for the registry
/// counts: a reader that pauses (its own disk or the content service is slow) is not taken
/// for a stalled registry.
pub struct Watchdog {
    stall: Duration,
    waited: Duration,
    in_window: u64,
}

impl Watchdog {
    /// A watchdog whose first window starts now.
    pub fn new(stall: Duration) -> Watchdog {
        Watchdog { stall, waited: Duration::ZERO, in_window: 0 }
    }

    /// The next chunk of `resp`, or an error once a window ends with too little progress.
    pub async fn chunk(&mut self, resp: &mut Response, what: &str) -> Result<Option<Vec<u8>>> {
        loop {
            let budget = self.stall.saturating_sub(self.waited);
            let start = Instant::now();
            let next = tokio::time::timeout(budget, resp.chunk()).await;
            self.waited += start.elapsed();
            match next {
                Ok(Ok(Some(c))) => {
                    self.in_window += c.len() as u64;
                    self.roll(what)?;
                    return Ok(Some(c.to_vec()));
                }
                Ok(Ok(None)) => return Ok(None),
                Ok(Err(e)) => return Err(Error::unavailable(format!("{what}: {}", describe(&e)))),
                Err(_) => {
                    self.waited = self.waited.max(self.stall);
                    self.roll(what)?;
                }
            }
        }
    }

    /// Starts a new window if the current one is over, failing if it fell short.
    fn roll(&mut self, what: &str) -> Result<()> {
        if self.waited < self.stall {
            return Ok(());
        }
        if self.in_window < MIN_PROGRESS {
            return Err(Error::unavailable(format!(
                "{what}: timed out: {} bytes in {}s, the registry is stalled or too slow",
                self.in_window,
                self.stall.as_secs()
            )));
        }
        self.waited = Duration::ZERO;
        self.in_window = 0;
        Ok(())
    }
}

/// `resp` with its body guarded by a [`Watchdog`]: reading it fails (as a body error) once
/// the registry stalls. Status and headers are kept.
pub fn guard(resp: Response, stall: Duration, what: String) -> Response {
    let status = resp.status();
    let headers = resp.headers().clone();
    let state = Some((resp, Watchdog::new(stall), what));
    let body = futures_util::stream::unfold(state, |state| async move {
        let (mut resp, mut dog, what) = state?;
        match dog.chunk(&mut resp, &what).await {
            Ok(Some(c)) => Some((Ok(c), Some((resp, dog, what)))),
            Ok(None) => None,
            Err(e) => Some((Err(std::io::Error::new(std::io::ErrorKind::TimedOut, e.message)), None)),
        }
    });
    let mut out = http::Response::new(reqwest::Body::wrap_stream(body));
    *out.status_mut() = status;
    *out.headers_mut() = headers;
    Response::from(out)
}
