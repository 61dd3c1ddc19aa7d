//! Starting one service process: its binary and flags, the inherited listening socket
//! (fd 3, `BERTH_LISTEN_FD`) and readiness pipe (fd 4, `BERTH_READY_FD`), the launcher's
//! log format, and its output forwarded to the launcher's log tagged with its name
//! ([`crate::logs`]).

use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use berth_service_kit::Config;
use berth_service_kit::logging::LogFormat;
use tokio::io::AsyncReadExt;
use tokio::process::{Child, Command};

/// A started service process.
pub struct Started {
    /// The process.
    pub child: Child,
    /// Its pid.
    pub pid: u32,
    /// The read end of its readiness pipe.
    pub ready: OwnedFd,
}

/// The binary that runs service `name`: the configured override, else `berth-<name>` next to
/// the launcher's own executable, else `berth-<name>` on `PATH`.
pub fn binary(config: &Config, name: &str) -> PathBuf {
    if let Some(b) = config.services.get(name).and_then(|o| o.binary.clone()) {
        return b;
    }
    let file = format!("berth-{name}");
    if let Some(dir) = std::env::current_exe().ok().as_deref().and_then(Path::parent) {
        let beside = dir.join(&file);
        if beside.exists() {
            return beside;
        }
    }
    PathBuf::from(file)
}

/// Spawns service `name` with `listener` as its socket, logging in `log_format`.
pub fn spawn(
    config: &Config,
    config_file: Option<&Path>,
    log_format: LogFormat,
    name: &str,
    listener: &UnixListener,
) -> std::io::Result<Started> {
    let (ready_read, ready_write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
    let mut std_cmd = std::process::Command::new(binary(config, name));
    std_cmd
        .arg("--root")
        .arg(&config.root)
        .arg("--state")
        .arg(&config.state)
        .arg("--log-format")
        .arg(log_format.as_str())
        .env(berth_service_kit::boot::LISTEN_FD_ENV, "3")
        .env(berth_service_kit::ready::READY_FD_ENV, "4")
        .env_remove("LISTEN_FDS")
        .env_remove("LISTEN_PID")
        .env_remove("NOTIFY_SOCKET")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(file) = config_file {
        std_cmd.arg("--config").arg(file);
    }
    if let Some(o) = config.services.get(name) {
        std_cmd.args(&o.args);
    }
    crate::sys::prepare_child(&mut std_cmd, vec![listener.as_raw_fd(), ready_write.as_raw_fd()]);
    let mut cmd = Command::from(std_cmd);
    cmd.kill_on_drop(false);
    let mut child = cmd.spawn()?;
    drop(ready_write);
    let pid = child.id().unwrap_or(0);
    if let Some(out) = child.stdout.take() {
        tokio::spawn(crate::logs::forward(log_format, name.to_string(), out));
    }
    if let Some(err) = child.stderr.take() {
        tokio::spawn(crate::logs::forward(log_format, name.to_string(), err));
    }
    Ok(Started { child, pid, ready: ready_read })
}

/// Waits until the service writes `READY=1` to its pipe. Errors: the pipe closed first (the
/// process died or closed it) or `timeout` passed.
pub async fn wait_ready(ready: OwnedFd, timeout: Duration) -> Result<(), String> {
    let wait = async {
        let mut pipe = tokio::net::unix::pipe::Receiver::from_owned_fd(ready).map_err(|e| e.to_string())?;
        let mut got = Vec::new();
        let mut buf = [0u8; 64];
        loop {
            let n = pipe.read(&mut buf).await.map_err(|e| e.to_string())?;
            if n == 0 {
                return Err("exited before it was ready".to_string());
            }
            got.extend_from_slice(&buf[..n]);
            if got.windows(7).any(|w| w == b"READY=1") {
                return Ok(());
            }
            if got.len() > 4096 {
                return Err("sent garbage on its readiness pipe".to_string());
            }
        }
    };
    match tokio::time::timeout(timeout, wait).await {
        Ok(r) => r,
        Err(_) => Err(format!("not ready within {timeout:?}")),
    }
}

/// Describes how a process ended: `exit status 1`, `signal 9 (SIGKILL)`.
pub fn describe_exit(status: &std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    if let Some(code) = status.code() {
        return format!("exit status {code}");
    }
    match status.signal() {
        Some(sig) => match nix::sys::signal::Signal::try_from(sig) {
            Ok(s) => format!("signal {sig} ({})", s.as_str()),
            Err(_) => format!("signal {sig}"),
        },
        None => "unknown".to_string(),
    }
}
