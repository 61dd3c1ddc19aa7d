//! Telling whoever started us that we are ready: the launcher (a pipe named by
//! `BERTH_READY_FD`) or systemd (`NOTIFY_SOCKET`, Type=notify).

use std::io::Write;
use std::os::unix::net::UnixDatagram;

/// The environment variable naming the pipe fd the launcher reads readiness from.
pub const READY_FD_ENV: &str = "BERTH_READY_FD";

/// Signals readiness on every channel this process was given. Errors are logged, not fatal:
/// a supervisor that stopped listening must not take the service down.
pub fn notify_ready() {
    if let Some(mut pipe) = crate::sys::take_ready_fd()
        && let Err(e) = pipe.write_all(b"READY=1\n")
    {
        tracing::warn!(error = %e, "cannot signal readiness to the launcher");
    }
    if let Err(e) = sd_notify("READY=1") {
        tracing::warn!(error = %e, "cannot signal readiness to systemd");
    }
}

/// Sends `state` to systemd's notify socket, if `NOTIFY_SOCKET` is set.
pub fn sd_notify(state: &str) -> std::io::Result<()> {
    match std::env::var_os("NOTIFY_SOCKET") {
        Some(path) => notify_to(&path, state),
        None => Ok(()),
    }
}

/// Sends `state` to the notify socket at `path` (`@name` is the abstract namespace, as
/// systemd writes it).
fn notify_to(path: &std::ffi::OsStr, state: &str) -> std::io::Result<()> {
    let sock = UnixDatagram::unbound()?;
    let bytes = path.as_encoded_bytes();
    if let Some(name) = bytes.strip_prefix(b"@") {
        use std::os::linux::net::SocketAddrExt;
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
        sock.send_to_addr(state.as_bytes(), &addr)?;
    } else {
        sock.send_to(state.as_bytes(), path)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sd_notify_reaches_the_socket() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("notify");
        let server = UnixDatagram::bind(&path).expect("bind");
        notify_to(path.as_os_str(), "READY=1").expect("send");
        let mut buf = [0u8; 16];
        let n = server.recv(&mut buf).expect("recv");
        assert_eq!(&buf[..n], b"READY=1");
    }
}
