//! The runtime service's side of a shim: spawning one, calling it over its socket (one
//! JSON line each way), telling whether it still runs and killing it. The `/proc` reads here
//! block: async callers go through [`berth_service_kit::blocking_value`].

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use berth_ipc::runtime::{SHIM_PROTOCOL, ShimRequest, ShimResponse};
use berth_ipc::{Code, Error, Result};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;

use crate::bundle::Bundle;
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
        .map_err(|e| Error::internal_cause("spawn berth-shim", e))?;
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
    let conn = UnixStream::connect(socket).await.map_err(gone)?;
    let mut conn = BufReader::new(conn);
    // Sent with the protocol that introduced the request (at most this build's), so that a
    // shim of an older protocol still answers every request it knows.
    let protocol = req.protocol().min(SHIM_PROTOCOL);
    let versioned = ShimRequest::Versioned { protocol, request: Box::new(req.clone()) };
    match exchange(&mut conn, socket, &versioned).await {
        // A shim from before protocol 1 (it outlived an upgrade of the service): the
        // request again, bare, on the same connection.
        Err(e) if is_unversioned_shim(&e) => exchange(&mut conn, socket, req).await,
        other => other,
    }
}

/// Whether `e` is a pre-protocol-1 shim's answer to `ShimRequest::Versioned`.
pub fn is_unversioned_shim(e: &Error) -> bool {
    e.is(Code::InvalidArgument) && e.message.contains("unknown variant `Versioned`")
}

/// One request line sent, one answer line read.
async fn exchange(
    conn: &mut BufReader<UnixStream>,
    socket: &Path,
    req: &ShimRequest,
) -> Result<ShimResponse> {
    let gone = |e: std::io::Error| Error::unavailable(format!("shim {}: {e}", socket.display()));
    let mut line = serde_json::to_string(req).map_err(|e| Error::internal_cause("shim request", e))?;
    line.push('\n');
    conn.get_mut().write_all(line.as_bytes()).await.map_err(gone)?;
    let mut answer = String::new();
    let n = conn.read_line(&mut answer).await.map_err(gone)?;
    if n == 0 {
        return Err(Error::unavailable(format!("shim {}: closed without answering", socket.display())));
    }
    match serde_json::from_str::<ShimResponse>(answer.trim()) {
        Ok(ShimResponse::Error(e)) => Err(e),
        Ok(resp) => Ok(resp),
        Err(e) => Err(Error::internal_cause("shim answer", e)),
    }
}

/// SIGKILLs the shim `pid` (the caller checked it is one).
pub fn kill_pid(pid: u32) {
    if let Ok(pid) = i32::try_from(pid) {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
    }
}

/// Whether the shim recorded in `bundle` still runs (its pid is a `berth-shim` of this
/// bundle: a reused pid is not).
pub(crate) fn shim_alive(bundle: &Bundle) -> bool {
    let Some(pid) = bundle.read_shim_pid() else { return false };
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let zombie = stat.rsplit(')').next().and_then(|r| r.split_whitespace().next()) == Some("Z");
    let bundle_dir = bundle.dir.as_os_str().as_encoded_bytes();
    !zombie && !bundle_dir.is_empty() && cmdline.windows(bundle_dir.len()).any(|w| w == bundle_dir)
}

/// SIGKILLs every live `berth-shim` serving `bundle` (found by its command line, since a
/// shim still starting has not written `shim.pid` yet).
pub(crate) fn kill_shims_of(bundle: &Bundle) {
    let mut needle = b"--bundle\0".to_vec();
    needle.extend_from_slice(bundle.dir.as_os_str().as_encoded_bytes());
    needle.push(0);
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else { continue };
        let cmdline = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
        let is_shim = cmdline.split(|b| *b == 0).next().is_some_and(|a| a.ends_with(b"berth-shim"));
        if is_shim && cmdline.windows(needle.len()).any(|w| w == needle.as_slice()) {
            kill_pid(pid);
        }
    }
}

#[cfg(test)]
#[path = "shim_client_tests.rs"]
mod tests;
