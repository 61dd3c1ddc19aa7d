//! A client of `berth-cri`'s streaming server, speaking the protocol by hand as `kubectl`
//! does: an HTTP/1.1 request written on a TCP connection, the `101` read byte by byte (so
//! nothing of the SPDY session is read with it), then a berth-spdy client session and one
//! stream per channel.

use std::io;
use std::time::Duration;

use berth_spdy::{Headers, Options, Role, Session, Stream};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The longest response head read.
const MAX_HEAD: usize = 16 * 1024;
/// How long any one step may take.
pub const STEP: Duration = Duration::from_secs(15);

/// A response head.
#[derive(Debug)]
pub struct Head {
    /// The status code.
    pub status: u16,
    /// The whole head, as text.
    pub text: String,
}

impl Head {
    /// A header's value (the first, names compared without case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.text.lines().skip(1).find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }
}

/// `host:port` and path of an `http://` URL.
fn split_url(url: &str) -> (String, String) {
    let rest = url.strip_prefix("http://").unwrap_or_else(|| panic!("not an http URL: {url}"));
    let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
    (host.to_string(), format!("/{path}"))
}

/// Sends `POST <path>` of `url` with `headers` (name, value pairs; the same name may
/// repeat) and reads the response head up to its blank line, no further: the head and the
/// connection, positioned at what follows it.
pub async fn request(url: &str, headers: &[(&str, &str)]) -> io::Result<(Head, TcpStream)> {
    let (host, path) = split_url(url);
    let mut tcp = tokio::time::timeout(STEP, TcpStream::connect(&host))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, format!("connecting to {host}")))??;
    let mut req = format!("POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Length: 0\r\n");
    for (n, v) in headers {
        req.push_str(&format!("{n}: {v}\r\n"));
    }
    req.push_str("\r\n");
    tcp.write_all(req.as_bytes()).await?;
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if head.len() >= MAX_HEAD {
            return Err(io::Error::other("response head too long"));
        }
        let n = tokio::time::timeout(STEP, tcp.read(&mut byte))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "reading the response head"))??;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("connection closed in the response head: {:?}", String::from_utf8_lossy(&head)),
            ));
        }
        head.push(byte[0]);
    }
    let text = String::from_utf8_lossy(&head).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| io::Error::other(format!("bad status line: {text:?}")))?;
    Ok((Head { status, text }, tcp))
}

/// The headers of an upgrade to SPDY/3.1 offering `protocols` (as one comma list when
/// `comma`, else one header each).
pub fn upgrade_headers<'a>(
    protocols: &[&'a str],
    comma: bool,
    joined: &'a mut String,
) -> Vec<(&'a str, &'a str)> {
    let mut h = vec![("Connection", "Upgrade"), ("Upgrade", "SPDY/3.1")];
    if comma {
        *joined = protocols.join(", ");
        h.push(("X-Stream-Protocol-Version", joined.as_str()));
    } else {
        h.extend(protocols.iter().map(|p| ("X-Stream-Protocol-Version", *p)));
    }
    h
}

/// Upgrades `url` to SPDY/3.1 offering `protocols`: the chosen protocol and a client
/// session. Panics unless the answer is `101` naming one of `protocols`.
pub async fn upgrade(url: &str, protocols: &[&str], comma: bool) -> (String, Session) {
    let mut joined = String::new();
    let headers = upgrade_headers(protocols, comma, &mut joined);
    let (head, tcp) = request(url, &headers).await.unwrap_or_else(|e| panic!("upgrading {url}: {e}"));
    assert_eq!(head.status, 101, "{}", head.text);
    assert!(head.header("upgrade").is_some_and(|u| u.eq_ignore_ascii_case("SPDY/3.1")), "{}", head.text);
    let chosen = head.header("x-stream-protocol-version").unwrap_or_default().to_string();
    assert!(protocols.contains(&chosen.as_str()), "chose {chosen:?}: {}", head.text);
    (chosen, Session::new(tcp, Role::Client, Options::default()))
}

/// The streams of an exec or attach session, opened as `kubectl` opens them.
pub struct Exec {
    /// The session (dropping it drops the connection).
    pub session: Session,
    /// The chosen protocol.
    pub protocol: String,
    /// The status stream.
    pub error: Stream,
    /// Asked for.
    pub stdin: Option<Stream>,
    /// Asked for.
    pub stdout: Option<Stream>,
    /// Asked for (never with a terminal).
    pub stderr: Option<Stream>,
    /// With a terminal.
    pub resize: Option<Stream>,
}

async fn open(session: &Session, kind: &str) -> Stream {
    tokio::time::timeout(STEP, session.open(Headers::new().with("streamtype", kind)))
        .await
        .unwrap_or_else(|_| panic!("opening stream {kind}: timed out"))
        .unwrap_or_else(|e| panic!("opening stream {kind}: {e}"))
}

impl Exec {
    /// Upgrades `url` (v4 channel protocol) and opens error, then stdin, stdout, stderr as
    /// asked, then resize with a terminal.
    pub async fn connect(url: &str, tty: bool, stdin: bool, stdout: bool, stderr: bool) -> Exec {
        let (protocol, session) = upgrade(url, &["v4.channel.k8s.io"], false).await;
        let error = open(&session, "error").await;
        let stdin = if stdin { Some(open(&session, "stdin").await) } else { None };
        let stdout = if stdout { Some(open(&session, "stdout").await) } else { None };
        let stderr = if stderr && !tty { Some(open(&session, "stderr").await) } else { None };
        let resize = if tty { Some(open(&session, "resize").await) } else { None };
        Exec { session, protocol, error, stdin, stdout, stderr, resize }
    }

    /// Reads stdout, stderr and the status to their ends, together (so that no stream's
    /// window stalls another), within `limit`.
    pub async fn collect(&mut self, limit: Duration) -> (Vec<u8>, Vec<u8>, serde_json::Value) {
        let (out, err, status) = tokio::time::timeout(limit, async {
            tokio::join!(
                read_opt(self.stdout.as_mut()),
                read_opt(self.stderr.as_mut()),
                read_all(&mut self.error)
            )
        })
        .await
        .expect("the exec's streams did not end in time");
        let status = serde_json::from_slice(&status)
            .unwrap_or_else(|e| panic!("status {:?}: {e}", String::from_utf8_lossy(&status)));
        (out, err, status)
    }
}

async fn read_opt(s: Option<&mut Stream>) -> Vec<u8> {
    match s {
        Some(s) => read_all(s).await,
        None => Vec::new(),
    }
}

/// Everything the peer sends on `s` until it finishes it.
pub async fn read_all(s: &mut Stream) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(d) = s.read().await {
        out.extend_from_slice(&d);
    }
    out
}

/// Reads `s` until what has come contains `needle`, or `limit` passes: all of it so far.
pub async fn read_until(s: &mut Stream, needle: &[u8], limit: Duration) -> Vec<u8> {
    let mut out = Vec::new();
    let _ = tokio::time::timeout(limit, async {
        while !out.windows(needle.len()).any(|w| w == needle) {
            match s.read().await {
                Some(d) => out.extend_from_slice(&d),
                None => break,
            }
        }
    })
    .await;
    out
}

/// Opens a port-forward pair for `port`, request `id`: the error and data streams.
pub async fn forward_pair(session: &Session, port: u16, id: u32) -> (Stream, Stream) {
    let h = |kind: &str| {
        Headers::new()
            .with("streamtype", kind)
            .with("port", port.to_string())
            .with("requestid", id.to_string())
    };
    let error = tokio::time::timeout(STEP, session.open(h("error")))
        .await
        .expect("opening the error stream: timed out")
        .expect("opening the error stream");
    let data = tokio::time::timeout(STEP, session.open(h("data")))
        .await
        .expect("opening the data stream: timed out")
        .expect("opening the data stream");
    (error, data)
}
