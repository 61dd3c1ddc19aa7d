//! One socket, two protocols. Every connection to `cri.sock` is told apart by its first
//! bytes: an HTTP/2 client (the kubelet's gRPC, `crictl`) opens with the connection preface
//! `PRI * HTTP/2.0`, which no berth frame begins with; everything else is berth's framing
//! (the launcher's health probes and metrics scrapes, `berth` itself). Each goes to its own
//! server.

use std::time::Duration;

use berth_ipc::Server;
use berth_ipc::cri::Cri as CriProtocol;
use berth_service_kit::ServiceEnv;
use k8s_cri::v1::image_service_server::ImageServiceServer;
use k8s_cri::v1::runtime_service_server::RuntimeServiceServer;
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::Cri;

/// How long a new connection may take to send its first bytes.
const FIRST_BYTES: Duration = Duration::from_secs(10);

/// Largest gRPC message accepted or sent (the kubelet's default is 16 MiB).
const MAX_MESSAGE: usize = 16 << 20;

/// Which protocol a connection speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Grpc,
    Berth,
}

/// Peeks at the first bytes of `stream` (without consuming them).
async fn kind(stream: &UnixStream) -> Option<Kind> {
    let mut buf = [0u8; 3];
    let look = async {
        loop {
            stream.readable().await.ok()?;
            let n = match peek(stream, &mut buf)? {
                0 => return None,
                usize::MAX => continue,
                n => n,
            };
            let grpc_so_far = buf[..n] == b"PRI"[..n];
            if n >= 3 || !grpc_so_far {
                return Some(if grpc_so_far { Kind::Grpc } else { Kind::Berth });
            }
            // Part of a preface: wait for the rest.
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    };
    tokio::time::timeout(FIRST_BYTES, look).await.ok().flatten()
}

/// `recv(MSG_PEEK)` of what is buffered; `None` on error, `Some(0)` at end of stream.
fn peek(stream: &UnixStream, buf: &mut [u8]) -> Option<usize> {
    use std::os::fd::AsRawFd;
    loop {
        let n = nix::sys::socket::recv(
            stream.as_raw_fd(),
            buf,
            nix::sys::socket::MsgFlags::MSG_PEEK | nix::sys::socket::MsgFlags::MSG_DONTWAIT,
        );
        match n {
            Ok(n) => return Some(n),
            Err(nix::errno::Errno::EINTR) => continue,
            Err(nix::errno::Errno::EAGAIN) => return Some(usize::MAX),
            Err(_) => return None,
        }
    }
}

/// Serves `cri` on `listener` until `shutdown`: gRPC and berth framing side by side.
pub async fn serve(
    env: &ServiceEnv,
    cri: Cri,
    listener: UnixListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let (grpc_tx, grpc_rx) = mpsc::channel::<UnixStream>(64);
    let (berth_tx, berth_rx) = mpsc::channel::<UnixStream>(64);
    let berth = Server::<CriProtocol, Cri>::new(cri.clone(), env.server_config());
    let berth = tokio::spawn(berth.serve_streams(berth_rx, shutdown.clone()));

    let runtime = RuntimeServiceServer::new(cri.clone())
        .max_decoding_message_size(MAX_MESSAGE)
        .max_encoding_message_size(MAX_MESSAGE);
    let images = ImageServiceServer::new(cri)
        .max_decoding_message_size(MAX_MESSAGE)
        .max_encoding_message_size(MAX_MESSAGE);
    let routes = tonic::service::Routes::new(runtime).add_service(images).prepare();
    let grpc = tokio::spawn(serve_grpc(routes, grpc_rx, shutdown.clone()));

    berth_service_kit::ready::notify_ready();
    tracing::info!(service = env.name, pid = std::process::id(), "ready");
    while let Some(stream) = berth_ipc::socket::accept(&listener, &shutdown, "cri").await {
        let (grpc_tx, berth_tx) = (grpc_tx.clone(), berth_tx.clone());
        tokio::spawn(async move {
            match kind(&stream).await {
                Some(Kind::Grpc) => {
                    let _ = grpc_tx.send(stream).await;
                }
                Some(Kind::Berth) => {
                    let _ = berth_tx.send(stream).await;
                }
                None => {}
            }
        });
    }
    drop((grpc_tx, berth_tx));
    drop(listener);
    let _ = grpc.await;
    let _ = berth.await;
    tracing::info!(service = env.name, "stopped");
    Ok(())
}

/// Serves gRPC (HTTP/2) on each connection `incoming` hands over, until `shutdown`; then
/// each connection is shut down gracefully (its calls in flight finish, for at most 10 s).
///
/// Not tonic's own server: it answers a call whose `grpc-timeout` passes with CANCELLED,
/// and the CRI (critest, the kubelet) expects DEADLINE_EXCEEDED. Here every call runs under
/// its deadline ([`with_deadline`]).
async fn serve_grpc(
    routes: tonic::service::Routes,
    mut incoming: mpsc::Receiver<UnixStream>,
    shutdown: CancellationToken,
) {
    let tracker = tokio_util::task::TaskTracker::new();
    loop {
        let stream = tokio::select! {
            _ = shutdown.cancelled() => break,
            s = incoming.recv() => match s { Some(s) => s, None => break },
        };
        let routes = routes.clone();
        let shutdown = shutdown.clone();
        tracker.spawn(async move {
            let svc = tower::service_fn(move |req: http::Request<hyper::body::Incoming>| {
                with_deadline(routes.clone(), req)
            });
            let svc = hyper_util::service::TowerToHyperService::new(svc);
            let builder = hyper::server::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new());
            let conn = builder.serve_connection(hyper_util::rt::TokioIo::new(stream), svc);
            tokio::pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => {}
                _ = shutdown.cancelled() => {
                    conn.as_mut().graceful_shutdown();
                    let _ = tokio::time::timeout(Duration::from_secs(10), conn).await;
                }
            }
        });
    }
    tracker.close();
    tracker.wait().await;
}

/// Runs one call, failing it with DEADLINE_EXCEEDED once its `grpc-timeout` has passed.
async fn with_deadline(
    routes: tonic::service::Routes,
    req: http::Request<hyper::body::Incoming>,
) -> Result<http::Response<tonic::body::Body>, std::convert::Infallible> {
    let deadline = req.headers().get("grpc-timeout").and_then(|v| v.to_str().ok()).and_then(grpc_timeout);
    let call = tower::ServiceExt::oneshot(routes, req);
    match deadline {
        None => call.await,
        Some(d) => match tokio::time::timeout(d, call).await {
            Ok(answer) => answer,
            Err(_) => Ok(tonic::Status::deadline_exceeded(format!("deadline of {d:?} exceeded")).into_http()),
        },
    }
}

/// A `grpc-timeout` header value (`<digits><H|M|S|m|u|n>`) as a duration.
fn grpc_timeout(v: &str) -> Option<Duration> {
    let (digits, unit) = v.split_at(v.len().checked_sub(1)?);
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n.saturating_mul(3600)),
        "M" => Duration::from_secs(n.saturating_mul(60)),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::grpc_timeout;
    use std::time::Duration;

    #[test]
    fn grpc_timeouts_parse() {
        assert_eq!(grpc_timeout("1m"), Some(Duration::from_millis(1)));
        assert_eq!(grpc_timeout("2S"), Some(Duration::from_secs(2)));
        assert_eq!(grpc_timeout("120000000u"), Some(Duration::from_secs(120)));
        assert_eq!(grpc_timeout("1H"), Some(Duration::from_secs(3600)));
        assert_eq!(grpc_timeout("x"), None);
        assert_eq!(grpc_timeout(""), None);
    }
}
