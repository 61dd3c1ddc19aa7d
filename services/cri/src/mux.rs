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

    let incoming = tokio_stream::wrappers::ReceiverStream::new(grpc_rx).map_ok();
    let runtime = RuntimeServiceServer::new(cri.clone())
        .max_decoding_message_size(MAX_MESSAGE)
        .max_encoding_message_size(MAX_MESSAGE);
    let images = ImageServiceServer::new(cri)
        .max_decoding_message_size(MAX_MESSAGE)
        .max_encoding_message_size(MAX_MESSAGE);
    let stop = shutdown.clone();
    let grpc = tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(runtime)
            .add_service(images)
            .serve_with_incoming_shutdown(incoming, async move { stop.cancelled().await }),
    );

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
    if let Ok(Err(e)) = grpc.await {
        tracing::warn!(error = %e, "gRPC server ended with an error");
    }
    let _ = berth.await;
    tracing::info!(service = env.name, "stopped");
    Ok(())
}

/// A stream of accepted connections as tonic takes them.
trait MapOk: Sized {
    fn map_ok(self) -> futures_util::stream::Map<Self, fn(UnixStream) -> std::io::Result<UnixStream>>;
}

impl MapOk for tokio_stream::wrappers::ReceiverStream<UnixStream> {
    fn map_ok(self) -> futures_util::stream::Map<Self, fn(UnixStream) -> std::io::Result<UnixStream>> {
        futures_util::StreamExt::map(self, Ok)
    }
}
