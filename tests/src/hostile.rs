//! Helpers for the hostile-input tests: raw tar layers with any entry (`..`, absolute names,
//! links anywhere, device nodes), OCI images built from raw parts, a fake registry speaking
//! just enough HTTP/1.1 to misbehave, and the checks that a refused input left nothing behind.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use berth_ipc::Digest;
use serde_json::{Value, json};

use crate::Berth;
use crate::dist::{berth_ok, image_digest};

/// A layer tar built entry by entry, names taken verbatim (no checks, unlike `tar::Builder`).
#[derive(Default)]
pub struct RawTar {
    out: Vec<u8>,
}

impl RawTar {
    /// An empty tar.
    pub fn new() -> RawTar {
        RawTar::default()
    }

    fn entry(mut self, name: &[u8], kind: tar::EntryType, link: &[u8], data: &[u8], mode: u32) -> RawTar {
        let mut h = tar::Header::new_gnu();
        {
            let old = h.as_old_mut();
            old.name[..name.len()].copy_from_slice(name);
            old.linkname[..link.len()].copy_from_slice(link);
        }
        h.set_entry_type(kind);
        h.set_size(data.len() as u64);
        h.set_mode(mode);
        h.set_mtime(1);
        h.set_uid(0);
        h.set_gid(0);
        h.set_cksum();
        self.out.extend_from_slice(h.as_bytes());
        self.out.extend_from_slice(data);
        self.out.resize(self.out.len().div_ceil(512) * 512, 0);
        self
    }

    /// A regular file.
    pub fn file(self, name: &str, data: &[u8]) -> RawTar {
        self.entry(name.as_bytes(), tar::EntryType::Regular, b"", data, 0o644)
    }

    /// A regular file with a mode.
    pub fn file_mode(self, name: &str, data: &[u8], mode: u32) -> RawTar {
        self.entry(name.as_bytes(), tar::EntryType::Regular, b"", data, mode)
    }

    /// A directory.
    pub fn dir(self, name: &str) -> RawTar {
        self.entry(name.as_bytes(), tar::EntryType::Directory, b"", b"", 0o755)
    }

    /// A symlink.
    pub fn symlink(self, name: &str, target: &str) -> RawTar {
        self.entry(name.as_bytes(), tar::EntryType::Symlink, target.as_bytes(), b"", 0o777)
    }

    /// A hardlink with a mode.
    pub fn hardlink(self, name: &str, target: &str, mode: u32) -> RawTar {
        self.entry(name.as_bytes(), tar::EntryType::Link, target.as_bytes(), b"", mode)
    }

    /// A device node or fifo.
    pub fn node(mut self, name: &str, kind: tar::EntryType, major: u32, minor: u32) -> RawTar {
        self = self.entry(name.as_bytes(), kind, b"", b"", 0o666);
        let at = self.out.len() - 512;
        let mut h = tar::Header::new_gnu();
        h.as_mut_bytes().copy_from_slice(&self.out[at..]);
        h.set_device_major(major).expect("major");
        h.set_device_minor(minor).expect("minor");
        h.set_cksum();
        self.out[at..].copy_from_slice(h.as_bytes());
        self
    }

    /// The tar's bytes, with its end marker.
    pub fn finish(mut self) -> Vec<u8> {
        self.out.extend_from_slice(&[0u8; 1024]);
        self.out
    }
}

/// An image made of raw parts: uncompressed layers and a config whose `config` section is
/// given; digests are computed.
#[derive(Clone)]
pub struct RawImage {
    /// Layer bytes (uncompressed tars), base first.
    pub layers: Vec<Vec<u8>>,
    /// The config document.
    pub config: Vec<u8>,
    /// The manifest document.
    pub manifest: Vec<u8>,
}

impl RawImage {
    /// An image of `layers` whose config's `config` section is `exec` (and `extra` merged
    /// at the top level).
    pub fn new(layers: Vec<Vec<u8>>, exec: Value, extra: Value) -> RawImage {
        let host = berth_client::oci::Platform::host();
        let diff_ids: Vec<String> = layers.iter().map(|l| Digest::of(l).to_string()).collect();
        let mut config = json!({
            "architecture": host.architecture, "os": host.os, "config": exec,
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
        });
        if let (Some(c), Some(e)) = (config.as_object_mut(), extra.as_object()) {
            c.extend(e.clone());
        }
        let config = config.to_string().into_bytes();
        let descs: Vec<Value> = layers
            .iter()
            .map(|l| json!({"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": Digest::of(l).to_string(), "size": l.len()}))
            .collect();
        let manifest = json!({
            "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": Digest::of(&config).to_string(), "size": config.len()},
            "layers": descs,
        })
        .to_string()
        .into_bytes();
        RawImage { layers, config, manifest }
    }

    /// A one-layer image with a busybox-less command (`/bin/sh` from the host's busybox).
    pub fn layer(layer: Vec<u8>) -> RawImage {
        RawImage::new(vec![layer], json!({"Cmd": ["/bin/true"]}), json!({}))
    }

    /// The manifest's digest.
    pub fn digest(&self) -> Digest {
        Digest::of(&self.manifest)
    }

    /// Every blob by digest: config, layers, manifest.
    pub fn blobs(&self) -> Vec<(Digest, Vec<u8>)> {
        let mut out = vec![(Digest::of(&self.config), self.config.clone())];
        out.extend(self.layers.iter().map(|l| (Digest::of(l), l.clone())));
        out.push((self.digest(), self.manifest.clone()));
        out
    }

    /// An OCI layout tar at `out` naming this image `name`; `extra` members (name, bytes)
    /// are appended verbatim.
    pub fn layout_tar(&self, name: &str, extra: &[(&str, &[u8])], out: &std::path::Path) {
        let index = json!({"schemaVersion": 2, "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": self.digest().to_string(), "size": self.manifest.len(),
            "annotations": {"io.containerd.image.name": name},
        }]});
        let mut t = RawTar::new().file("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#);
        t = t.file("index.json", index.to_string().as_bytes());
        for (d, b) in self.blobs() {
            t = t.file(&format!("blobs/sha256/{}", d.hex()), &b);
        }
        for (n, b) in extra {
            t = t.file(n, b);
        }
        std::fs::write(out, t.finish()).expect("write layout tar");
    }
}

/// One request the fake registry saw.
#[derive(Debug, Clone)]
pub struct Seen {
    /// `GET`, `HEAD`…
    pub method: String,
    /// The path and query.
    pub path: String,
    /// Headers, names lowercased.
    pub headers: Vec<(String, String)>,
}

impl Seen {
    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

/// How the fake registry answers one request.
pub enum Reply {
    /// A whole response.
    Full(u16, Vec<(String, String)>, Vec<u8>),
    /// Headers promising `declared` bytes, then `body`, then the connection closes.
    Truncated(u64, Vec<u8>),
    /// The status line and headers sent one byte a second.
    TrickleHeaders,
    /// Headers at once, then the body one byte a second.
    TrickleBody(Vec<u8>),
}

impl Reply {
    /// 200 with `body`.
    pub fn ok(body: &[u8]) -> Reply {
        Reply::Full(200, Vec::new(), body.to_vec())
    }

    /// `status` with one header and an empty body.
    pub fn status(status: u16, header: Option<(&str, &str)>) -> Reply {
        Reply::Full(
            status,
            header.map(|(k, v)| (k.to_string(), v.to_string())).into_iter().collect(),
            Vec::new(),
        )
    }
}

/// A fake registry on 127.0.0.1: every request is recorded and answered by the handler.
pub struct FakeRegistry {
    /// `127.0.0.1:PORT`.
    pub addr: String,
    /// Every request so far.
    pub seen: Arc<Mutex<Vec<Seen>>>,
    stop: Arc<AtomicBool>,
}

type Handler = dyn Fn(&Seen) -> Reply + Send + Sync;

impl FakeRegistry {
    /// Starts serving with `handler`.
    pub fn start(handler: impl Fn(&Seen) -> Reply + Send + Sync + 'static) -> FakeRegistry {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr").to_string();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let handler: Arc<Handler> = Arc::new(handler);
        let (s, st) = (seen.clone(), stop.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if st.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(conn) = conn else { continue };
                let (s, st, h) = (s.clone(), st.clone(), handler.clone());
                std::thread::spawn(move || serve(conn, &s, &st, &*h));
            }
        });
        FakeRegistry { addr, seen, stop }
    }

    /// The requests seen so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().expect("lock").clone()
    }
}

impl Drop for FakeRegistry {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(&self.addr);
    }
}

fn serve(conn: TcpStream, seen: &Mutex<Vec<Seen>>, stop: &AtomicBool, handler: &Handler) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(30)));
    let Ok(read) = conn.try_clone() else { return };
    let mut reader = BufReader::new(read);
    let mut w = conn;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let mut parts = line.split_whitespace();
        let (method, path) = (parts.next().unwrap_or("").to_string(), parts.next().unwrap_or("").to_string());
        let mut headers = Vec::new();
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
            }
        }
        let len: u64 = headers
            .iter()
            .find(|(k, _)| k == "content-length")
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(0);
        let _ = std::io::copy(&mut (&mut reader).take(len), &mut std::io::sink());
        let req = Seen { method, path, headers };
        seen.lock().expect("lock").push(req.clone());
        let head_only = req.method == "HEAD";
        let keep = match handler(&req) {
            Reply::Full(status, hs, body) => {
                let mut head = format!("HTTP/1.1 {status} X\r\nContent-Length: {}\r\n", body.len());
                for (k, v) in hs {
                    head.push_str(&format!("{k}: {v}\r\n"));
                }
                head.push_str("\r\n");
                let ok = w.write_all(head.as_bytes()).is_ok() && (head_only || w.write_all(&body).is_ok());
                ok && w.flush().is_ok()
            }
            Reply::Truncated(declared, body) => {
                let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {declared}\r\n\r\n");
                let _ = w.write_all(head.as_bytes());
                let _ = w.write_all(&body);
                let _ = w.flush();
                false
            }
            Reply::TrickleHeaders => {
                let head = b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nX-Padding: ".iter();
                for b in head.chain(std::iter::repeat(&b'x')) {
                    if stop.load(Ordering::SeqCst) || w.write_all(&[*b]).is_err() || w.flush().is_err() {
                        break;
                    }
                    std::thread::sleep(Duration::from_secs(1));
                }
                false
            }
            Reply::TrickleBody(body) => {
                let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len());
                let _ = w.write_all(head.as_bytes());
                for b in &body {
                    if stop.load(Ordering::SeqCst) || w.write_all(&[*b]).is_err() || w.flush().is_err() {
                        break;
                    }
                    std::thread::sleep(Duration::from_secs(1));
                }
                false
            }
        };
        if !keep {
            let _ = w.shutdown(std::net::Shutdown::Both);
            return;
        }
    }
}

/// The answers of a well-behaved registry for `img` (manifest by any tag or digest, blobs by
/// digest), or `None` for anything else.
pub fn serve_image(img: &RawImage, req: &Seen) -> Option<Reply> {
    let path = req.path.split('?').next().unwrap_or("");
    if path == "/v2/" {
        return Some(Reply::ok(b"{}"));
    }
    if path.contains("/manifests/") {
        let mt = ("Content-Type".to_string(), "application/vnd.oci.image.manifest.v1+json".to_string());
        let dcd = ("Docker-Content-Digest".to_string(), img.digest().to_string());
        return Some(Reply::Full(200, vec![mt, dcd], img.manifest.clone()));
    }
    let (_, digest) = path.split_once("/blobs/")?;
    img.blobs().into_iter().find(|(d, _)| d.to_string() == digest).map(|(_, b)| Reply::ok(&b))
}

/// Asserts the state a refused `name` must leave in namespace `ns`: no image record, content
/// check clean, and after a GC no lease, no snapshot in the making and none of the chain of
/// `layers` (uncompressed layer tars, base first) committed.
pub fn assert_clean(berth: &Berth, ns: &str, name: &str, layers: &[Vec<u8>]) {
    assert_eq!(image_digest(berth, ns, name), None, "{name}: an image record was left");
    berth_ok(berth, &["content", "check"]);
    berth_ok(berth, &["-n", ns, "gc"]);
    let leases = berth_ok(berth, &["-n", ns, "leases", "ls", "-q"]);
    assert!(leases.trim().is_empty(), "{name}: leases left: {leases}");
    let diff_ids: Vec<Digest> = layers.iter().map(|l| Digest::of(l)).collect();
    let chain: Vec<String> = berth_ipc::digest::chain_ids(&diff_ids).iter().map(Digest::to_string).collect();
    let snaps = berth_ok(berth, &["-n", ns, "--format", "json", "snapshots", "ls"]);
    let snaps: Value = serde_json::from_str(&snaps).expect("snapshots json");
    for s in snaps.as_array().into_iter().flatten() {
        let key = s["name"].as_str().unwrap_or_default();
        assert!(s["kind"] == "committed", "{name}: snapshot {key} left {}", s["kind"]);
        assert!(!chain.iter().any(|c| c == key), "{name}: snapshot {key} of the refused image committed");
    }
}

/// Runs `berth ARGS…` with a deadline; returns (success, stderr), or panics if it is still
/// running after `limit` (a hang is a failure, not a stuck test run).
pub fn berth_bounded(berth: &Berth, args: &[&str], limit: Duration) -> (bool, String) {
    let log = berth.dir.path().join(format!("bounded-{}.err", crate::dist::free_port()));
    let err = std::fs::File::create(&log).expect("stderr file");
    let mut child = std::process::Command::new(crate::bin("berth"))
        .arg("--state")
        .arg(&berth.state)
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(err)
        .spawn()
        .expect("spawn berth");
    let start = std::time::Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("berth {args:?} still running after {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    (status.success(), std::fs::read_to_string(&log).unwrap_or_default())
}
