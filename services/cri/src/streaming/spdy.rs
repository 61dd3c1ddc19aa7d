//! Kubernetes' streaming over SPDY/3.1, as the kubelet's streaming server speaks it.
//!
//! The client's HTTP request carries `Upgrade: SPDY/3.1` and, in
//! `X-Stream-Protocol-Version`, the protocols it speaks, best first; the first one berth
//! speaks is chosen and answered in the `101 Switching Protocols`. The client then opens one
//! SPDY stream per channel, named by its `streamType` header:
//!
//! - exec and attach (`v5.channel.k8s.io` … `channel.k8s.io`): `error`, and `stdin`,
//!   `stdout`, `stderr` as the request asked, plus `resize` with a terminal (v3 and later).
//!   `resize` carries JSON `{"Width":W,"Height":H}` objects. When the process has exited the
//!   server writes its status to `error`: v4 and v5 a `metav1.Status` (`Success`, or
//!   `Failure` with reason `NonZeroExitCode` and the code as an `ExitCode` cause), earlier
//!   versions the error text only, then ends every stream and the connection.
//! - port-forward (`portforward.k8s.io`): per forwarded connection a pair of streams, `error`
//!   and `data`, with the same `requestID` and the target `port`. The data stream is joined
//!   to a TCP connection into the pod ([`super::portforward`]); a failure to connect is
//!   written to the error stream.

use std::collections::HashMap;

use berth_spdy::{Options, Role, Session, Stream};
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::sync::mpsc;

use super::exec::{self, Outcome, ResizeParser, Stdio, TermSize};
use super::{Body, Pending, header_list, negotiate, no_protocol, portforward};
use crate::Cri;

/// The `Upgrade` token.
pub const UPGRADE: &str = "SPDY/3.1";
/// Exec and attach protocols, newest first.
pub const EXEC_PROTOCOLS: &[&str] =
    &["v5.channel.k8s.io", "v4.channel.k8s.io", "v3.channel.k8s.io", "v2.channel.k8s.io", "channel.k8s.io"];
/// Port-forward protocols.
pub const PORTFORWARD_PROTOCOLS: &[&str] = &["portforward.k8s.io"];
const PROTOCOL_HEADER: &str = "x-stream-protocol-version";

/// Answers an upgrade request for `what`: `101` and the session in a task of its own, or
/// `403` when no protocol is shared.
pub fn upgrade(cri: &Cri, mut req: Request<Incoming>, what: Pending) -> Response<Body> {
    let offered = header_list(&req, PROTOCOL_HEADER);
    let ours =
        if matches!(what, Pending::PortForward { .. }) { PORTFORWARD_PROTOCOLS } else { EXEC_PROTOCOLS };
    // A client naming no protocol speaks the first one (the kubelet's rule).
    let chosen = if offered.is_empty() {
        None
    } else {
        match negotiate(&offered, ours) {
            Some(p) => Some(p),
            None => return no_protocol(&offered, ours),
        }
    };
    let on_upgrade = hyper::upgrade::on(&mut req);
    let cri = cri.clone();
    let version = chosen.clone().unwrap_or_else(|| ours[ours.len() - 1].to_string());
    tokio::spawn(async move {
        match on_upgrade.await {
            Ok(upgraded) => {
                let session = Session::new(TokioIo::new(upgraded), Role::Server, Options::default());
                match what {
                    Pending::PortForward { pod, netns } => port_forward(session, &pod, netns).await,
                    what => exec_session(&cri, session, what, &version).await,
                }
            }
            Err(e) => tracing::debug!(error = %e, "streaming: upgrade failed"),
        }
    });
    let mut r = Response::new(Body::default());
    *r.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = r.headers_mut();
    h.insert(http::header::CONNECTION, http::HeaderValue::from_static("Upgrade"));
    h.insert(http::header::UPGRADE, http::HeaderValue::from_static(UPGRADE));
    if let Some(p) = chosen.and_then(|p| http::HeaderValue::from_str(&p).ok()) {
        h.insert(PROTOCOL_HEADER, p);
    }
    r
}

/// The protocol's number: 1 for `channel.k8s.io`, N for `vN.channel.k8s.io`.
fn version_number(protocol: &str) -> u32 {
    protocol.strip_prefix('v').and_then(|v| v.split('.').next()).and_then(|n| n.parse().ok()).unwrap_or(1)
}

#[derive(Default)]
struct Channels {
    error: Option<Stream>,
    stdin: Option<Stream>,
    stdout: Option<Stream>,
    stderr: Option<Stream>,
    resize: Option<Stream>,
}

async fn exec_session(cri: &Cri, mut session: Session, what: Pending, protocol: &str) {
    let (tty, stdin, stdout, stderr) = match &what {
        Pending::Exec { tty, stdin, stdout, stderr, .. }
        | Pending::Attach { tty, stdin, stdout, stderr, .. } => (*tty, *stdin, *stdout, *stderr),
        Pending::PortForward { .. } => return,
    };
    let v = version_number(protocol);
    let want_resize = tty && v >= 3;
    let expected =
        1 + usize::from(stdin) + usize::from(stdout) + usize::from(stderr && !tty) + usize::from(want_resize);
    let mut ch = Channels::default();
    let mut got = 0;
    let deadline = tokio::time::Instant::now() + cri.streaming.creation_timeout;
    while got < expected {
        let Ok(Some(mut s)) = tokio::time::timeout_at(deadline, session.accept()).await else {
            tracing::debug!(got, expected, "streaming: the client did not open every stream in time");
            return;
        };
        let kind = s.headers().get("streamtype").unwrap_or_default().to_ascii_lowercase();
        let slot = match kind.as_str() {
            "error" => &mut ch.error,
            "stdin" if stdin => &mut ch.stdin,
            "stdout" if stdout => &mut ch.stdout,
            "stderr" if stderr && !tty => &mut ch.stderr,
            "resize" if want_resize => &mut ch.resize,
            _ => {
                let _ = s.finish().await;
                continue;
            }
        };
        if slot.is_none() {
            got += 1;
        }
        *slot = Some(s);
    }
    let mut writers = Vec::new();
    let mut io = Stdio::default();
    if let Some(s) = ch.stdin.take() {
        let (tx, rx) = mpsc::channel(4);
        io.stdin = Some(rx);
        let (mut rd, _wr) = s.split();
        tokio::spawn(async move {
            while let Some(d) = rd.read().await {
                if tx.send(d).await.is_err() {
                    break;
                }
            }
        });
    }
    for (stream, sink) in [(ch.stdout.take(), &mut io.stdout), (ch.stderr.take(), &mut io.stderr)] {
        if let Some(s) = stream {
            let (tx, mut rx) = mpsc::channel::<Vec<u8>>(4);
            *sink = Some(tx);
            let (_rd, mut wr) = s.split();
            writers.push(tokio::spawn(async move {
                while let Some(d) = rx.recv().await {
                    if wr.write(&d).await.is_err() {
                        return;
                    }
                }
                let _ = wr.finish().await;
            }));
        }
    }
    if let Some(s) = ch.resize.take() {
        let (tx, rx) = mpsc::channel(4);
        io.resize = Some(rx);
        tokio::spawn(resize_reader(s, tx));
    }
    let gone = session.closed();
    let outcome = match &what {
        Pending::Exec { container, cmd, .. } => exec::exec(cri, container, cmd.clone(), tty, io, gone).await,
        Pending::Attach { container, stdin_once, .. } => {
            exec::attach(cri, container, tty, *stdin_once, io, gone).await
        }
        Pending::PortForward { .. } => return,
    };
    // Output first, then the status: the client reads the status as the end.
    for w in writers {
        let _ = tokio::time::timeout(std::time::Duration::from_secs(10), w).await;
    }
    if let Some(mut e) = ch.error.take() {
        let status = status_message(&outcome, v);
        if !status.is_empty() {
            let _ = e.write(status.as_bytes()).await;
        }
        let _ = e.finish().await;
    }
    session.close().await;
}

/// What the error stream says for `outcome` under protocol version `v`.
pub fn status_message(outcome: &Outcome, v: u32) -> String {
    if v >= 4 {
        let status = match outcome {
            Outcome::Exited(0) => serde_json::json!({"metadata": {}, "status": "Success"}),
            Outcome::Exited(code) => serde_json::json!({
                "metadata": {},
                "status": "Failure",
                "message": format!("command terminated with non-zero exit code: exit status {code}"),
                "reason": "NonZeroExitCode",
                "details": {"causes": [{"reason": "ExitCode", "message": code.to_string()}]},
            }),
            Outcome::Failed(why) => serde_json::json!({"metadata": {}, "status": "Failure", "message": why}),
        };
        return status.to_string();
    }
    match outcome {
        Outcome::Exited(0) => String::new(),
        Outcome::Exited(code) => format!("command terminated with non-zero exit code: exit status {code}"),
        Outcome::Failed(why) => why.clone(),
    }
}

/// Reads the resize stream into sizes. Malformed JSON ends the stream; the session goes on.
async fn resize_reader(s: Stream, tx: mpsc::Sender<TermSize>) {
    let (mut rd, _wr) = s.split();
    let mut sizes = ResizeParser::default();
    while let Some(d) = rd.read().await {
        let Some(found) = sizes.push(&d) else { return };
        for s in found {
            if tx.send(s).await.is_err() {
                return;
            }
        }
    }
}

/// Port-forward over a SPDY session (upgraded, or tunnelled through a WebSocket).
pub(super) async fn port_forward(mut session: Session, pod: &str, netns: Option<String>) {
    // Streams by request id until both of a pair have come.
    let mut half: HashMap<String, (Option<Stream>, Option<Stream>)> = HashMap::new();
    let closed = session.closed();
    tokio::pin!(closed);
    loop {
        let s = tokio::select! {
            s = session.accept() => match s { Some(s) => s, None => break },
            () = &mut closed => break,
        };
        let kind = s.headers().get("streamtype").unwrap_or_default().to_ascii_lowercase();
        // Clients too old to send a request id pair an error stream with the next data one.
        let request = match s.headers().get("requestid") {
            Some(r) => r.to_string(),
            None if kind == "data" => s.id().saturating_sub(2).to_string(),
            None => s.id().to_string(),
        };
        let entry = half.entry(request.clone()).or_default();
        match kind.as_str() {
            "error" => entry.0 = Some(s),
            "data" => entry.1 = Some(s),
            _ => continue,
        }
        let complete = matches!(half.get(&request), Some((Some(_), Some(_))));
        if complete && let Some((Some(error), Some(data))) = half.remove(&request) {
            let (pod, netns, gone) = (pod.to_string(), netns.clone(), session.closed());
            tokio::spawn(async move {
                tokio::select! {
                    () = forward(&pod, netns.as_deref(), error, data) => {}
                    () = gone => {}
                }
            });
        }
        if half.len() > 1024 {
            // Halves of pairs that never complete: a misbehaving client. Forget them.
            half.clear();
        }
    }
    session.close().await;
}

async fn forward(pod: &str, netns: Option<&str>, mut error: Stream, data: Stream) {
    let port = data.headers().get("port").and_then(|p| p.parse::<u16>().ok()).filter(|p| *p > 0);
    let Some(port) = port else {
        let raw = data.headers().get("port").unwrap_or_default().to_string();
        let _ = error.write(format!("invalid port {raw:?}: must be 1 to 65535").as_bytes()).await;
        let _ = error.finish().await;
        let (_, mut wr) = data.split();
        let _ = wr.finish().await;
        return;
    };
    match portforward::connect(netns, port).await {
        Ok(tcp) => {
            let (rd, wr) = data.split();
            if let Err(e) = portforward::pump(tcp, rd, wr).await {
                tracing::debug!(pod, port, error = %e, "port-forward connection");
            }
        }
        Err(e) => {
            let msg = format!("error forwarding port {port} to pod {pod}: {e}");
            let _ = error.write(msg.as_bytes()).await;
            let (_, mut wr) = data.split();
            let _ = wr.finish().await;
        }
    }
    let _ = error.finish().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protocol_versions_and_statuses() {
        assert_eq!(version_number("v4.channel.k8s.io"), 4);
        assert_eq!(version_number("channel.k8s.io"), 1);
        assert_eq!(status_message(&Outcome::Exited(0), 4), r#"{"metadata":{},"status":"Success"}"#);
        let v: serde_json::Value =
            serde_json::from_str(&status_message(&Outcome::Exited(3), 5)).expect("json");
        assert_eq!(v["reason"], "NonZeroExitCode");
        assert_eq!(v["details"]["causes"][0]["message"], "3");
        assert_eq!(status_message(&Outcome::Exited(0), 2), "");
        assert!(status_message(&Outcome::Exited(3), 2).contains("exit status 3"));
    }
}
