//! The runtime service's side of a shim: spawning one and calling it over its socket (one
//! JSON line each way).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use berth_ipc::runtime::{ShimRequest, ShimResponse};
use berth_ipc::{Error, Result};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;

use crate::shim::ShimArgs;

/// The `berth-shim` binary: next to this executable, else on `PATH`.
pub fn shim_binary() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|d| d.join("berth-shim")))
        .filter(|p| p.exists())
        .unwrap_or_else(|| PathBuf::from("berth-shim"))
}

/// Spawns a shim and waits for its ready line: the init pid, or the create error.
pub async fn spawn(args: &ShimArgs) -> Result<u32> {
    let mut child = tokio::process::Command::new(shim_binary())
        .args(args.to_args())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| Error::internal(format!("spawn berth-shim: {e}")))?;
    let stdout = child.stdout.take().ok_or_else(|| Error::internal("berth-shim: no stdout"))?;
    let mut line = String::new();
    let mut reader = BufReader::new(stdout);
    let read = reader.read_line(&mut line);
    let _ = tokio::time::timeout(Duration::from_secs(60), read)
        .await
        .map_err(|_| Error::internal("berth-shim: no answer within 60 s"))?;
    let _ = child.wait().await;
    match serde_json::from_str::<ShimResponse>(line.trim()) {
        Ok(ShimResponse::Pid(pid)) => Ok(pid),
        Ok(ShimResponse::Error(e)) => Err(e),
        _ => Err(Error::internal(format!("berth-shim: bad ready line {:?}", line.trim()))),
    }
}

/// How long a shim may take to answer `req`; `None` for the calls that block by design.
/// A shim that is stopped or stuck must not hold up its caller forever: the runtime
/// service's adoption, or a `tasks ls` of every task, waited on one such shim for good.
fn answer_deadline(req: &ShimRequest) -> Option<Duration> {
    match req {
        ShimRequest::Wait { .. } | ShimRequest::Stdin { .. } => None,
        ShimRequest::State => Some(Duration::from_secs(5)),
        _ => Some(Duration::from_secs(60)),
    }
}

/// One call to the shim at `socket`. `Unavailable` when the shim is gone or does not
/// answer within its deadline ([`answer_deadline`]).
pub async fn call(socket: &Path, req: &ShimRequest) -> Result<ShimResponse> {
    let Some(deadline) = answer_deadline(req) else { return call_once(socket, req).await };
    match tokio::time::timeout(deadline, call_once(socket, req)).await {
        Ok(answer) => answer,
        Err(_) => Err(Error::unavailable(format!(
            "shim {}: no answer within {} s",
            socket.display(),
            deadline.as_secs()
        ))),
    }
}

async fn call_once(socket: &Path, req: &ShimRequest) -> Result<ShimResponse> {
    let gone = |e: std::io::Error| Error::unavailable(format!("shim {}: {e}", socket.display()));
    let mut conn = UnixStream::connect(socket).await.map_err(gone)?;
    let mut line = serde_json::to_string(req).map_err(|e| Error::internal(e.to_string()))?;
    line.push('\n');
    conn.write_all(line.as_bytes()).await.map_err(gone)?;
    let mut answer = String::new();
    let n = BufReader::new(conn).read_line(&mut answer).await.map_err(gone)?;
    if n == 0 {
        return Err(Error::unavailable(format!("shim {}: closed without answering", socket.display())));
    }
    match serde_json::from_str::<ShimResponse>(answer.trim()) {
        Ok(ShimResponse::Error(e)) => Err(e),
        Ok(resp) => Ok(resp),
        Err(e) => Err(Error::internal(format!("shim answer: {e}"))),
    }
}

/// SIGKILLs the shim `pid` (the caller checked it is one).
pub fn kill_pid(pid: u32) {
    if let Ok(pid) = i32::try_from(pid) {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
    }
}
