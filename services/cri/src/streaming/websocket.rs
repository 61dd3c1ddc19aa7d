//! Kubernetes' streaming over WebSocket, the transport the kubelet and kubectl are moving
//! to (containerd 1.6 answers it with "403 bad handshake").
//!
//! - exec and attach (`v5.channel.k8s.io`, `v4.channel.k8s.io`): every binary message is one
//!   channel byte and data: 0 stdin, 1 stdout, 2 stderr, 3 error, 4 resize (JSON sizes as
//!   over SPDY). In v5 the client ends its stdin with the message `[255, 0]`. When the process
//!   has exited the server writes the status to channel 3 and closes the connection (normal
//!   closure), which is every channel's end.
//! - port-forward (`SPDY/3.1+portforward.k8s.io`): SPDY tunnelled through the WebSocket, its
//!   bytes in binary messages; the SPDY side is [`super::spdy`]'s port-forward as is.
//!
//! Messages and frames past 1 MiB are refused by the WebSocket layer (the connection ends);
//! pings are answered by it.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig, frame::coding::CloseCode};
use tokio_tungstenite::tungstenite::{Bytes, Message};
use tokio_util::sync::CancellationToken;

use super::exec::{self, Outcome, ResizeParser, Stdio};
use super::{Body, Pending, header, header_list, negotiate, no_protocol, text};
use crate::Cri;

/// Exec and attach subprotocols, newest first.
pub const EXEC_PROTOCOLS: &[&str] = &["v5.channel.k8s.io", "v4.channel.k8s.io"];
/// Port-forward: SPDY through the WebSocket.
pub const PORTFORWARD_PROTOCOLS: &[&str] = &["SPDY/3.1+portforward.k8s.io"];
const MAX_MESSAGE: usize = 1 << 20;
const STDIN: u8 = 0;
const STDOUT: u8 = 1;
const STDERR: u8 = 2;
const ERROR: u8 = 3;
const RESIZE: u8 = 4;
/// v5: `[CLOSE, channel]` ends that channel's input.
const CLOSE: u8 = 255;

/// Answers a WebSocket upgrade request for `what`.
pub fn upgrade(cri: &Cri, mut req: Request<Incoming>, what: Pending) -> Response<Body> {
    let Some(key) = header(&req, http::header::SEC_WEBSOCKET_KEY) else {
        return text(StatusCode::BAD_REQUEST, "WebSocket upgrade without Sec-WebSocket-Key");
    };
    if header(&req, http::header::SEC_WEBSOCKET_VERSION).as_deref() != Some("13") {
        return text(StatusCode::BAD_REQUEST, "WebSocket version must be 13");
    }
    let offered = header_list(&req, "sec-websocket-protocol");
    let ours =
        if matches!(what, Pending::PortForward { .. }) { PORTFORWARD_PROTOCOLS } else { EXEC_PROTOCOLS };
    let Some(chosen) = negotiate(&offered, ours) else { return no_protocol(&offered, ours) };
    let on_upgrade = hyper::upgrade::on(&mut req);
    let cri = cri.clone();
    let v5 = chosen.starts_with("v5.");
    tokio::spawn(async move {
        let upgraded = match on_upgrade.await {
            Ok(u) => u,
            Err(e) => return tracing::debug!(error = %e, "streaming: WebSocket upgrade failed"),
        };
        let config =
            WebSocketConfig::default().max_message_size(Some(MAX_MESSAGE)).max_frame_size(Some(MAX_MESSAGE));
        let ws = WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, Some(config)).await;
        match what {
            Pending::PortForward { pod, netns } => tunnel(ws, &pod, netns).await,
            what => exec_session(&cri, ws, what, v5).await,
        }
    });
    let mut r = Response::new(Body::default());
    *r.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = r.headers_mut();
    h.insert(http::header::CONNECTION, http::HeaderValue::from_static("Upgrade"));
    h.insert(http::header::UPGRADE, http::HeaderValue::from_static("websocket"));
    let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes());
    if let Ok(v) = http::HeaderValue::from_str(&accept) {
        h.insert(http::header::SEC_WEBSOCKET_ACCEPT, v);
    }
    if let Ok(v) = http::HeaderValue::from_str(&chosen) {
        h.insert(http::header::SEC_WEBSOCKET_PROTOCOL, v);
    }
    r
}

type Ws = WebSocketStream<TokioIo<hyper::upgrade::Upgraded>>;

async fn exec_session(cri: &Cri, ws: Ws, what: Pending, v5: bool) {
    let (tty, stdin, stdout, stderr) = match &what {
        Pending::Exec { tty, stdin, stdout, stderr, .. }
        | Pending::Attach { tty, stdin, stdout, stderr, .. } => (*tty, *stdin, *stdout, *stderr),
        Pending::PortForward { .. } => return,
    };
    let (mut sink, mut source) = ws.split();
    let (out, mut out_rx) = mpsc::channel::<Message>(16);
    let writer = tokio::spawn(async move {
        while let Some(m) = out_rx.recv().await {
            let close = matches!(m, Message::Close(_));
            if sink.send(m).await.is_err() || close {
                break;
            }
        }
        let _ = sink.close().await;
    });
    let gone = CancellationToken::new();
    let mut io = Stdio::default();
    let (stdin_tx, stdin_rx) = mpsc::channel::<Vec<u8>>(4);
    let (resize_tx, resize_rx) = mpsc::channel(4);
    if stdin {
        io.stdin = Some(stdin_rx);
    }
    if tty {
        io.resize = Some(resize_rx);
    }
    let mut forwarders = Vec::new();
    for (wanted, channel, sink) in
        [(stdout, STDOUT, &mut io.stdout), (stderr && !tty, STDERR, &mut io.stderr)]
    {
        if !wanted {
            continue;
        }
        let (tx, mut rx) = mpsc::channel::<Vec<u8>>(4);
        *sink = Some(tx);
        let out = out.clone();
        forwarders.push(tokio::spawn(async move {
            while let Some(d) = rx.recv().await {
                let mut m = Vec::with_capacity(d.len() + 1);
                m.push(channel);
                m.extend_from_slice(&d);
                if out.send(Message::Binary(Bytes::from(m))).await.is_err() {
                    return;
                }
            }
        }));
    }
    // What the client sends: stdin, resizes, v5's close of stdin; its close or a broken
    // connection is the client gone.
    let reader = {
        let gone = gone.clone();
        tokio::spawn(async move {
            let mut stdin_tx = Some(stdin_tx);
            let mut sizes = ResizeParser::default();
            while let Some(msg) = source.next().await {
                let Ok(msg) = msg else { break };
                let data = match msg {
                    Message::Binary(d) => d,
                    Message::Text(t) => Bytes::from(t.as_str().as_bytes().to_vec()),
                    Message::Close(_) => break,
                    _ => continue,
                };
                let Some((&channel, body)) = data.split_first() else { continue };
                match channel {
                    STDIN => {
                        if let Some(tx) = &stdin_tx
                            && !body.is_empty()
                            && tx.send(body.to_vec()).await.is_err()
                        {
                            stdin_tx = None;
                        }
                    }
                    RESIZE => match sizes.push(body) {
                        Some(found) => {
                            for s in found {
                                let _ = resize_tx.send(s).await;
                            }
                        }
                        None => sizes = ResizeParser::default(),
                    },
                    CLOSE if v5 && body.first() == Some(&STDIN) => stdin_tx = None,
                    _ => {}
                }
            }
            gone.cancel();
        })
    };
    let gone_wait = gone.clone();
    let gone_fut = async move { gone_wait.cancelled().await };
    let outcome = match &what {
        Pending::Exec { container, cmd, .. } => {
            exec::exec(cri, container, cmd.clone(), tty, io, gone_fut).await
        }
        Pending::Attach { container, stdin_once, .. } => {
            exec::attach(cri, container, tty, *stdin_once, io, gone_fut).await
        }
        Pending::PortForward { .. } => return,
    };
    for f in forwarders {
        let _ = tokio::time::timeout(Duration::from_secs(10), f).await;
    }
    let status = super::spdy::status_message(&outcome, 4);
    let mut m = vec![ERROR];
    m.extend_from_slice(status.as_bytes());
    let _ = out.send(Message::Binary(Bytes::from(m))).await;
    let _ = out.send(Message::Close(Some(CloseFrame { code: CloseCode::Normal, reason: "".into() }))).await;
    drop(out);
    let _ = tokio::time::timeout(Duration::from_secs(10), writer).await;
    reader.abort();
    if matches!(outcome, Outcome::Failed(_)) {
        tracing::debug!(?outcome, "WebSocket exec");
    }
}

/// SPDY through the WebSocket: a pipe whose far end is bridged to binary messages, and the
/// SPDY port-forward server on its near end.
async fn tunnel(ws: Ws, pod: &str, netns: Option<String>) {
    let (near, far) = tokio::io::duplex(256 * 1024);
    let (mut far_rd, mut far_wr) = tokio::io::split(far);
    let (mut sink, mut source) = ws.split();
    let up = tokio::spawn(async move {
        while let Some(Ok(msg)) = source.next().await {
            match msg {
                Message::Binary(d) if far_wr.write_all(&d).await.is_err() => break,
                Message::Close(_) => break,
                _ => {}
            }
        }
        let _ = far_wr.shutdown().await;
    });
    let down = tokio::spawn(async move {
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            match far_rd.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if sink.send(Message::Binary(Bytes::copy_from_slice(&buf[..n]))).await.is_err() {
                        break;
                    }
                }
            }
        }
        let _ =
            sink.send(Message::Close(Some(CloseFrame { code: CloseCode::Normal, reason: "".into() }))).await;
        let _ = sink.close().await;
    });
    let session = berth_spdy::Session::new(near, berth_spdy::Role::Server, berth_spdy::Options::default());
    super::spdy::port_forward(session, pod, netns).await;
    let _ = tokio::time::timeout(Duration::from_secs(10), down).await;
    up.abort();
}
