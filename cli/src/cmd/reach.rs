//! The quick check every command but `config` makes first: is there a berth at all? Either
//! berthd's control socket, or (with the systemd units, one per service and no berthd) a
//! service's socket, must accept a connection within about a second; otherwise one line
//! says so, naming berthd's socket, instead of every service's client waiting out its
//! deadline (`berth version` took 50 s with berthd down). A berth whose service is
//! restarting passes the check: that service's client then waits for it as before
//! (`--timeout`).

use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::time::Instant;

/// How long the sockets may take to appear or accept (a berthd just (re)starting binds them
/// within milliseconds).
pub const GRACE: Duration = Duration::from_secs(1);

/// The services' sockets, tried when berthd's does not answer (the systemd units).
const SERVICE_SOCKETS: [&str; 5] =
    ["events.sock", "content.sock", "snapshot.sock", "metadata.sock", "runtime.sock"];

/// Ok once berthd's socket `berthd` (or a service socket beside it) accepts a connection;
/// the error line otherwise.
pub async fn berthd(berthd: &Path) -> anyhow::Result<()> {
    let dir = berthd.parent().unwrap_or(Path::new("."));
    let others: Vec<PathBuf> = SERVICE_SOCKETS.iter().map(|s| dir.join(s)).collect();
    let deadline = Instant::now() + GRACE;
    loop {
        let err = match connect(berthd).await {
            Ok(()) => return Ok(()),
            Err(e) => e,
        };
        for s in &others {
            if connect(s).await.is_ok() {
                return Ok(());
            }
        }
        let retry = matches!(err.kind(), ErrorKind::NotFound | ErrorKind::ConnectionRefused);
        if !retry || Instant::now() >= deadline {
            return Err(explain(berthd, &err));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn connect(socket: &Path) -> std::io::Result<()> {
    match tokio::time::timeout(GRACE, tokio::net::UnixStream::connect(socket)).await {
        Ok(Ok(_conn)) => Ok(()),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(std::io::Error::new(ErrorKind::TimedOut, "no answer within 1 s")),
    }
}

fn explain(socket: &Path, err: &std::io::Error) -> anyhow::Error {
    let at = socket.display();
    let start = "start it (berthd, or systemctl start berthd), or point --state/BERTH_STATE at its state dir";
    match err.kind() {
        ErrorKind::NotFound => anyhow::anyhow!("berthd is not running: no socket {at}; {start}"),
        ErrorKind::ConnectionRefused => {
            anyhow::anyhow!(
                "berthd is not running: {at} refuses connections (left by a berthd that died); {start}"
            )
        }
        ErrorKind::PermissionDenied => {
            anyhow::anyhow!(
                "cannot reach berthd at {at}: permission denied (run as root or in the socket's group)"
            )
        }
        _ => anyhow::anyhow!("cannot reach berthd at {at}: {err}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_and_stale_sockets_are_named() {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("rt");
        let dir = tempfile::tempdir().expect("tempdir");
        let sock = dir.path().join("berthd.sock");
        let started = std::time::Instant::now();
        let e = rt.block_on(berthd(&sock)).expect_err("no socket").to_string();
        assert!(e.contains("berthd is not running: no socket") && e.contains("berthd.sock"), "{e}");
        assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());
        drop(std::os::unix::net::UnixListener::bind(&sock).expect("bind"));
        let e = rt.block_on(berthd(&sock)).expect_err("stale").to_string();
        assert!(e.contains("refuses connections"), "{e}");
        // A service of the systemd units answering, without berthd: on.
        let _metadata =
            std::os::unix::net::UnixListener::bind(dir.path().join("metadata.sock")).expect("bind");
        rt.block_on(berthd(&sock)).expect("a service socket passes");
        let live = tempfile::tempdir().expect("tempdir");
        let _berthd = std::os::unix::net::UnixListener::bind(live.path().join("berthd.sock")).expect("bind");
        rt.block_on(berthd(&live.path().join("berthd.sock"))).expect("a listening berthd passes");
    }
}
