//! Connections into a pod: a TCP connection to `127.0.0.1:PORT` made inside the pod's
//! network namespace (or the host's, for a host-network pod), then bytes copied both ways.

use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long a connection into the pod may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest piece read from the pod's side at once.
const CHUNK: usize = 32 * 1024;

/// A connection to `port` on the pod's loopback. The connect runs on a thread of its own
/// that enters the pod's network namespace and then ends, so no thread the service keeps is
/// ever in a pod's namespace; the socket stays in the namespace it was made in.
pub async fn connect(netns: Option<&str>, port: u16) -> io::Result<TcpStream> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let Some(netns) = netns else {
        return tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr)).await.map_err(|_| {
            io::Error::new(io::ErrorKind::TimedOut, format!("connecting to {addr}: timed out"))
        })?;
    };
    let ns = std::fs::File::open(netns)
        .map_err(|e| io::Error::new(e.kind(), format!("network namespace {netns}: {e}")))?;
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new().name("berth-cri-portfwd".into()).spawn(move || {
        let r = nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWNET)
            .map_err(|e| io::Error::other(format!("entering the pod's network namespace: {e}")))
            .and_then(|()| std::net::TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT));
        let _ = tx.send(r);
    })?;
    let std = rx.await.map_err(|_| io::Error::other("the connecting thread died"))??;
    std.set_nonblocking(true)?;
    TcpStream::from_std(std)
}

/// Copies between `tcp` and a client's stream until the pod's side has ended (or writing to
/// it failed): what the client sends goes to the pod (its end of input shuts the socket's
/// write side), what the pod sends goes to `to_client`, and its end finishes the stream and
/// the pair, whether or not the client has ended its side — `kubectl` waits for the error
/// stream's end once the pod's side is done, and only then closes its local connection.
pub async fn pump(
    tcp: TcpStream,
    mut from_client: berth_spdy::StreamReader,
    mut to_client: berth_spdy::StreamWriter,
) -> io::Result<()> {
    let (mut rd, mut wr) = tcp.into_split();
    let up = async {
        while let Some(data) = from_client.read().await {
            wr.write_all(&data).await?;
        }
        wr.shutdown().await?;
        // The pod's answer may still come: the pair ends with it.
        std::future::pending::<io::Result<()>>().await
    };
    let down = async {
        let mut buf = vec![0u8; CHUNK];
        loop {
            let n = rd.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            to_client.write(&buf[..n]).await?;
        }
        to_client.finish().await
    };
    tokio::select! {
        r = up => r,
        r = down => r,
    }
}
