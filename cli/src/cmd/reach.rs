//! The quick check every command but `config` makes first: is there a berthd at all? Its
//! control socket must exist and accept a connection within about a second; otherwise
//! one line says so, naming the socket, instead of every service's client waiting out its
//! deadline (`berth version` took 50 s with berthd down). A berthd that runs while one of
//! its services restarts passes the check: the service's client then waits for it as
//! before (`--timeout`).

use std::io::ErrorKind;
use std::path::Path;
use std::time::Duration;

use tokio::time::Instant;

/// How long berthd's socket may take to appear or accept (a berthd just (re)starting binds
/// it within milliseconds).
pub const GRACE: Duration = Duration::from_secs(1);

/// Ok once `socket` accepts a connection; the error line otherwise.
pub async fn berthd(socket: &Path) -> anyhow::Result<()> {
    let deadline = Instant::now() + GRACE;
    loop {
        let attempt = tokio::time::timeout(GRACE, tokio::net::UnixStream::connect(socket)).await;
        let err = match attempt {
            Ok(Ok(_conn)) => return Ok(()),
            Ok(Err(e)) => e,
            Err(_) => std::io::Error::new(ErrorKind::TimedOut, "no answer within 1 s"),
        };
        let retry = matches!(err.kind(), ErrorKind::NotFound | ErrorKind::ConnectionRefused);
        if !retry || Instant::now() >= deadline {
            return Err(explain(socket, &err));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
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
        let _live = std::os::unix::net::UnixListener::bind(dir.path().join("live.sock")).expect("bind");
        rt.block_on(berthd(&dir.path().join("live.sock"))).expect("a listening socket passes");
    }
}
