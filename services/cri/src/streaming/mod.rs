//! The streaming server: where the URLs of `Exec`, `Attach` and `PortForward` point.
//!
//! The kubelet (or `crictl`) asks the CRI for a URL and then upgrades an HTTP request to it
//! into a multiplexed connection: SPDY/3.1 ([`spdy`]) or WebSocket ([`websocket`]). Each URL
//! carries a token that stands for the request it was made for: it works once, and only within
//! `[cri] stream_token_ttl_ms` of being handed out ([`Tokens`]). The server listens on
//! `[cri] stream_address:stream_port` (loopback and a free port by default).
//!
//! - [`exec`] — exec and attach: the process's stdio through the runtime service's exec,
//!   attach, stdin and resize calls (the shim's own pipes and pty), and its exit status.
//! - [`portforward`] — TCP connections into a pod's network namespace.
//! - [`spdy`] — the SPDY/3.1 upgrade and the Kubernetes stream conventions over it.
//! - [`websocket`] — the same over WebSocket (`v5.channel.k8s.io`, SPDY tunnelled for
//!   port-forward).

pub mod exec;
pub mod portforward;
pub mod spdy;
pub mod websocket;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use berth_ipc::{Error, Result};
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::Cri;

/// Tokens not yet used, at most; a client asking for more gets `Unavailable`.
const MAX_PENDING: usize = 4096;
/// Connections served at once.
const MAX_CONNECTIONS: usize = 1024;
/// How long a client may take to send its request's headers.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// What a token stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pending {
    /// A new process in a container.
    Exec {
        /// The container's full id.
        container: String,
        /// The command.
        cmd: Vec<String>,
        /// A terminal (stdout and stderr merged).
        tty: bool,
        /// Streams the client will open.
        stdin: bool,
        /// See `stdin`.
        stdout: bool,
        /// See `stdin`.
        stderr: bool,
    },
    /// A container's init process.
    Attach {
        /// The container's full id.
        container: String,
        /// The container was created with `stdin_once`: the client's end of input ends its
        /// stdin.
        stdin_once: bool,
        /// See [`Pending::Exec`].
        tty: bool,
        /// See [`Pending::Exec`].
        stdin: bool,
        /// See [`Pending::Exec`].
        stdout: bool,
        /// See [`Pending::Exec`].
        stderr: bool,
    },
    /// Connections to ports of a pod.
    PortForward {
        /// The pod's full id.
        pod: String,
        /// Its network namespace file; `None`: the host's network.
        netns: Option<String>,
    },
}

impl Pending {
    fn path(&self) -> &'static str {
        match self {
            Pending::Exec { .. } => "exec",
            Pending::Attach { .. } => "attach",
            Pending::PortForward { .. } => "portforward",
        }
    }
}

/// Handed-out tokens, each usable once before it expires.
#[derive(Default)]
pub struct Tokens {
    map: Mutex<HashMap<String, (Instant, Pending)>>,
}

impl Tokens {
    /// A new token for `what`, valid for `ttl`.
    pub fn insert(&self, what: Pending, ttl: Duration) -> Result<String> {
        let token = crate::records::new_id()?[..32].to_string();
        let now = Instant::now();
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        map.retain(|_, (expires, _)| *expires > now);
        if map.len() >= MAX_PENDING {
            return Err(Error::unavailable(format!(
                "streaming: {MAX_PENDING} URLs handed out and not used yet; try again later"
            )));
        }
        map.insert(token.clone(), (now + ttl, what));
        Ok(token)
    }

    /// What `token` stands for, once: the token is gone afterwards. `None` for a token that
    /// is unknown, used or expired.
    pub fn take(&self, token: &str) -> Option<Pending> {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        let (expires, what) = map.remove(token)?;
        (expires > Instant::now()).then_some(what)
    }
}

/// The streaming server's state, shared with the CRI handlers that hand out URLs.
pub struct Streaming {
    /// Pending requests by token.
    pub tokens: Tokens,
    /// `http://ADDRESS:PORT`, once listening (or why it is not).
    base: OnceLock<std::result::Result<String, String>>,
    ttl: Duration,
    /// How long a client may take to open a session's streams.
    pub creation_timeout: Duration,
}

impl Streaming {
    /// A server with `config`'s limits, not yet listening.
    pub fn new(config: &berth_service_kit::config::CriConfig) -> Self {
        Streaming {
            tokens: Tokens::default(),
            base: OnceLock::new(),
            ttl: Duration::from_millis(config.stream_token_ttl_ms.max(1)),
            creation_timeout: Duration::from_millis(config.stream_creation_timeout_ms.max(1)),
        }
    }

    /// The URL for `what`: a fresh token under this server's address.
    pub fn url(&self, what: Pending) -> Result<String> {
        let base = match self.base.get() {
            Some(Ok(base)) => base,
            Some(Err(why)) => {
                return Err(Error::unavailable(format!("streaming server is not running: {why}")));
            }
            None => return Err(Error::unavailable("streaming server is not listening yet")),
        };
        let path = what.path();
        let token = self.tokens.insert(what, self.ttl)?;
        Ok(format!("{base}/{path}/{token}"))
    }
}

/// Binds `[cri] stream_address:stream_port` and serves until `shutdown`. A bind failure is
/// logged and remembered (the CRI's `Exec` then says why); the rest of the CRI goes on.
pub async fn serve(cri: Cri, config: berth_service_kit::config::CriConfig, shutdown: CancellationToken) {
    let addr = format!("{}:{}", bracket(&config.stream_address), config.stream_port);
    let listener = match TcpListener::bind(&addr).await {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(%addr, error = %e, "streaming server: cannot listen");
            let _ = cri.streaming.base.set(Err(format!("cannot listen on {addr}: {e}")));
            return;
        }
    };
    let local: SocketAddr = match listener.local_addr() {
        Ok(a) => a,
        Err(e) => {
            let _ = cri.streaming.base.set(Err(format!("{addr}: {e}")));
            return;
        }
    };
    let _ = cri.streaming.base.set(Ok(format!("http://{local}")));
    tracing::info!(address = %local, "streaming server listening");
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    loop {
        let (tcp, peer) = tokio::select! {
            _ = shutdown.cancelled() => return,
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e, "streaming server: accept");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Ok(permit) = Arc::clone(&slots).try_acquire_owned() else {
            tracing::warn!(%peer, "streaming server: {MAX_CONNECTIONS} connections open; refusing one");
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let cri = cri.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let cri = cri.clone();
                async move { Ok::<_, std::convert::Infallible>(route(&cri, req)) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .serve_connection(TokioIo::new(tcp), service)
                .with_upgrades();
            if let Err(e) = conn.await {
                tracing::debug!(%peer, error = %e, "streaming connection");
            }
            drop(permit);
        });
    }
}

fn bracket(addr: &str) -> String {
    if addr.contains(':') && !addr.starts_with('[') { format!("[{addr}]") } else { addr.to_string() }
}

/// The body of every answer: a short text.
pub type Body = http_body_util::Full<bytes::Bytes>;

/// A plain-text answer.
pub fn text(status: StatusCode, message: impl Into<String>) -> Response<Body> {
    let mut r = Response::new(Body::from(message.into() + "\n"));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("text/plain; charset=utf-8"));
    r
}

fn route(cri: &Cri, req: Request<Incoming>) -> Response<Body> {
    let path = req.uri().path().trim_matches('/');
    let (kind, token) = path.split_once('/').unwrap_or((path, ""));
    if !matches!(kind, "exec" | "attach" | "portforward") || token.is_empty() || token.contains('/') {
        return text(StatusCode::NOT_FOUND, format!("no such streaming endpoint: {}", req.uri().path()));
    }
    if req.method() != http::Method::GET && req.method() != http::Method::POST {
        return text(StatusCode::METHOD_NOT_ALLOWED, format!("{} is not GET or POST", req.method()));
    }
    let Some(what) = cri.streaming.tokens.take(token) else {
        return text(StatusCode::NOT_FOUND, "unknown, used or expired streaming token");
    };
    if what.path() != kind {
        return text(StatusCode::NOT_FOUND, format!("this token is for /{}, not /{kind}", what.path()));
    }
    let upgrade = header(&req, http::header::UPGRADE).unwrap_or_default();
    if upgrade.eq_ignore_ascii_case(spdy::UPGRADE) {
        return spdy::upgrade(cri, req, what);
    }
    if upgrade.eq_ignore_ascii_case("websocket") {
        return websocket::upgrade(cri, req, what);
    }
    if upgrade.is_empty() {
        return text(
            StatusCode::BAD_REQUEST,
            format!("/{kind} needs a connection upgrade to {} or websocket", spdy::UPGRADE),
        );
    }
    text(
        StatusCode::BAD_REQUEST,
        format!("unsupported upgrade {upgrade:?}: this server speaks {} and websocket", spdy::UPGRADE),
    )
}

/// The first of the client's `offered` protocols (best first) that is one of `ours`.
pub fn negotiate(offered: &[String], ours: &[&str]) -> Option<String> {
    offered.iter().find(|p| ours.contains(&p.as_str())).cloned()
}

/// The `403` the kubelet answers when [`negotiate`] finds nothing in common.
pub fn no_protocol(offered: &[String], ours: &[&str]) -> Response<Body> {
    text(
        StatusCode::FORBIDDEN,
        format!(
            "unable to upgrade: unable to negotiate protocol: client supports {offered:?}, server accepts {ours:?}"
        ),
    )
}

/// A request header as text (the first, if repeated).
pub fn header<B>(req: &Request<B>, name: http::header::HeaderName) -> Option<String> {
    req.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_string)
}

/// Every value of a header that may repeat or hold a comma-separated list, in order.
pub fn header_list<B>(req: &Request<B>, name: &str) -> Vec<String> {
    req.headers()
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
        .collect()
}

impl Cri {
    /// `Exec`: a URL for a new process in a running container.
    pub async fn exec_url(&self, r: k8s_cri::v1::ExecRequest) -> Result<String> {
        check_streams(r.tty, r.stdin, r.stdout, r.stderr)?;
        if r.cmd.is_empty() {
            return Err(Error::invalid("exec: command must not be empty"));
        }
        let container = self.running(&r.container_id).await?.record.id;
        let what = Pending::Exec {
            container,
            cmd: r.cmd,
            tty: r.tty,
            stdin: r.stdin,
            stdout: r.stdout,
            stderr: r.stderr,
        };
        self.streaming.url(what)
    }

    /// `Attach`: a URL for a running container's init process.
    pub async fn attach_url(&self, r: k8s_cri::v1::AttachRequest) -> Result<String> {
        check_streams(r.tty, r.stdin, r.stdout, r.stderr)?;
        let c = self.running(&r.container_id).await?;
        let what = Pending::Attach {
            stdin_once: c.cri.config.stdin_once,
            container: c.record.id,
            tty: r.tty,
            stdin: r.stdin,
            stdout: r.stdout,
            stderr: r.stderr,
        };
        self.streaming.url(what)
    }

    /// `PortForward`: a URL for connections to a ready pod's ports.
    pub async fn port_forward_url(&self, r: k8s_cri::v1::PortForwardRequest) -> Result<String> {
        let pod = self.pod(&r.pod_sandbox_id).await?;
        if pod.state() != k8s_cri::v1::PodSandboxState::SandboxReady {
            return Err(Error::precondition(format!("pod sandbox {}: is not ready", pod.info.id)));
        }
        for p in &r.port {
            if !(1..=65535).contains(p) {
                return Err(Error::invalid(format!(
                    "pod sandbox {}: port {p} is not 1 to 65535",
                    pod.info.id
                )));
            }
        }
        let netns = if pod.info.spec.net_host { None } else { pod.info.netns.clone() };
        if netns.is_none() && !pod.info.spec.net_host {
            return Err(Error::precondition(format!(
                "pod sandbox {}: has no network namespace",
                pod.info.id
            )));
        }
        self.streaming.url(Pending::PortForward { pod: pod.info.id, netns })
    }

    async fn running(&self, id: &str) -> Result<crate::containers::Ctr> {
        let c = self.container(id).await?;
        if c.state() != k8s_cri::v1::ContainerState::ContainerRunning {
            return Err(Error::precondition(format!("container {}: is not running", c.record.id)));
        }
        Ok(c)
    }
}

/// The stream choices the kubelet's streaming server refuses.
fn check_streams(tty: bool, stdin: bool, stdout: bool, stderr: bool) -> Result<()> {
    if !stdin && !stdout && !stderr {
        return Err(Error::invalid("one of stdin, stdout, or stderr must be set"));
    }
    if tty && stderr {
        return Err(Error::invalid("tty and stderr cannot both be true"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_works_once_and_not_after_it_expires() {
        let t = Tokens::default();
        let what = Pending::PortForward { pod: "p".into(), netns: None };
        let a = t.insert(what.clone(), Duration::from_secs(60)).expect("token");
        let b = t.insert(what.clone(), Duration::from_millis(1)).expect("token");
        assert_eq!(a.len(), 32);
        assert_ne!(a, b);
        assert_eq!(t.take(&a), Some(what));
        assert_eq!(t.take(&a), None, "a token works once");
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(t.take(&b), None, "an expired token does not work");
        assert_eq!(t.take("nonsense"), None);
    }
}
