//! Binding a service socket safely: a stale file left by a killed process is replaced, a
//! live one is not; modes and group ownership follow DESIGN.md.

use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use tokio::net::UnixListener;

/// Binds a listening socket at `path` (a file path, never the abstract namespace).
///
/// If a socket file is already there, a connection is attempted: if someone answers, the
/// bind fails with `AddrInUse`; if not, the file is stale and is removed first. The socket
/// gets mode 0660 and group `group` when one is given, else 0600.
pub fn bind(path: &Path, group: Option<u32>) -> io::Result<UnixListener> {
    let std_listener = bind_std(path, group)?;
    UnixListener::from_std(std_listener)
}

/// [`bind`] for callers outside a runtime (the launcher binds before spawning services).
pub fn bind_std(path: &Path, group: Option<u32>) -> io::Result<std::os::unix::net::UnixListener> {
    match std::fs::symlink_metadata(path) {
        Ok(_) => match std::os::unix::net::UnixStream::connect(path) {
            Ok(_) => {
                return Err(io::Error::new(
                    io::ErrorKind::AddrInUse,
                    format!("{} is served by another process", path.display()),
                ));
            }
            Err(_) => std::fs::remove_file(path)?,
        },
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let listener = std::os::unix::net::UnixListener::bind(path)?;
    listener.set_nonblocking(true)?;
    let mode = if group.is_some() { 0o660 } else { 0o600 };
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
    if let Some(gid) = group {
        nix::unistd::chown(path, None, Some(nix::unistd::Gid::from_raw(gid))).map_err(io::Error::from)?;
    }
    Ok(listener)
}

/// The gid of the named group, if it exists on this host.
pub fn group_id(name: &str) -> Option<u32> {
    nix::unistd::Group::from_name(name).ok().flatten().map(|g| g.gid.as_raw())
}

/// The next connection on `listener`, or `None` once `shutdown` is cancelled. Accept
/// failures (EMFILE and friends) are logged and retried after a short pause instead of
/// spinning; `what` names the socket in that log line.
pub async fn accept(
    listener: &UnixListener,
    shutdown: &tokio_util::sync::CancellationToken,
    what: &str,
) -> Option<tokio::net::UnixStream> {
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => return None,
            a = listener.accept() => a,
        };
        match accepted {
            Ok((stream, _)) => return Some(stream),
            Err(e) => {
                tracing::warn!(socket = what, error = %e, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn stale_socket_replaced_live_one_kept() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("x.sock");
        let first = bind(&path, None).expect("bind");
        let err = bind(&path, None).expect_err("live socket must not be stolen");
        assert_eq!(err.kind(), io::ErrorKind::AddrInUse);
        drop(first); // the file stays behind, like after a SIGKILL
        assert!(path.exists());
        let _second = bind(&path, None).expect("stale socket replaced");
        let mode = std::fs::metadata(&path).expect("stat").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
}
