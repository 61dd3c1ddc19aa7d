//! The bodies of berth's libFuzzer targets (`fuzz_targets/*.rs` are one-line wrappers), so
//! each property lives in one place and can be read without the libFuzzer glue. Every
//! function takes arbitrary bytes, must never panic on them, and panics (a crash for the
//! fuzzer) only when an invariant of the code under test is broken. See docs/fuzzing.md.
//!
//! # Layout
//! - this file: frames, request payloads, OCI JSON, references, filters, SPDY frames,
//!   WebSocket frames.
//! - [`jail`] — layer apply into a throw-away directory, checking nothing outside changed.

pub mod jail;

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::LazyLock;

use berth_client::oci;
use berth_client::reference::Reference;
use berth_ipc::codec;
use berth_ipc::filter::{self, Adaptor, Filters};
use berth_ipc::frame::{self, HEADER_LEN, Header, Kind, MAX_FRAME_LEN};
use berth_ipc::protocol::RequestBody;
use berth_ipc::{Hello, Protocol, Welcome};

/// Largest payload the stream half of [`frame`] reads: the header check is done with the
/// real limit, but allocating 16 MiB per input would only slow the fuzzer down.
const STREAM_MAX_LEN: u32 = 1 << 20;

static RT: LazyLock<tokio::runtime::Runtime> = LazyLock::new(|| {
    tokio::runtime::Builder::new_current_thread().build().expect("a current-thread runtime")
});

/// The frame decoder: the first 20 bytes as one header, then the whole input as a
/// connection's byte stream, read frame by frame (`read_frame`) until the first error, with
/// the handshake and error payloads decoded as a peer would.
pub fn frame(data: &[u8]) {
    if let Some(head) = data.first_chunk::<HEADER_LEN>()
        && let Ok(h) = Header::decode(head, MAX_FRAME_LEN)
    {
        assert!(h.len <= MAX_FRAME_LEN, "accepted an oversized length");
        assert_eq!(&Header::encode(h.kind, h.id, h.len), head, "a decoded header re-encodes differently");
    }
    RT.block_on(async {
        let mut r = data;
        while let Ok(f) = frame::read_frame(&mut r, STREAM_MAX_LEN).await {
            assert_eq!(f.payload.len(), f.header.len as usize, "payload length differs from the header");
            match f.header.kind {
                Kind::Hello => drop(codec::decode::<Hello>(&f.payload)),
                Kind::Welcome => drop(codec::decode::<Welcome>(&f.payload)),
                Kind::Error => drop(codec::decode::<berth_ipc::Error>(&f.payload)),
                _ => {}
            }
        }
    });
}

/// A service's request decoder: a `Request` payload decoded exactly as the server does
/// (`codec::decode` with the frame-size limit). A decoded request must name its method and
/// survive an encode/decode round trip unchanged.
pub fn request<P: Protocol>(data: &[u8]) {
    let Ok(body) = codec::decode::<RequestBody<P::Request>>(data) else { return };
    if let RequestBody::Service(req) = &body {
        assert!(!P::method(req).is_empty(), "a request without a method name");
    }
    let bytes = codec::encode(&body).expect("a decoded request encodes");
    let again = codec::decode::<RequestBody<P::Request>>(&bytes).expect("an encoded request decodes");
    assert_eq!(format!("{again:?}"), format!("{body:?}"), "request changed in a round trip");
}

/// Media types the `declared` argument of [`oci::sniff`] is chosen from.
const DECLARED: [&str; 8] = [
    "",
    oci::OCI_INDEX,
    oci::OCI_MANIFEST,
    oci::DOCKER_LIST,
    oci::DOCKER_MANIFEST,
    oci::DOCKER_SCHEMA1[0],
    oci::OCI_CONFIG,
    "text/plain",
];

/// Manifest, index and config parsing and media-type sniffing: the first byte picks the
/// declared media type, the rest is the document. What parses must serialize and parse again.
pub fn oci(data: &[u8]) {
    let Some((sel, doc)) = data.split_first() else { return };
    let declared = DECLARED[usize::from(*sel) % DECLARED.len()];
    if let Ok(mt) = oci::sniff(doc, declared, "fuzz") {
        assert!(oci::is_index(&mt) || oci::is_manifest(&mt), "sniff returned {mt:?}");
    }
    if let Ok(i) = oci::parse_index(doc, "fuzz") {
        let json = serde_json::to_vec(&i).expect("an index serializes");
        oci::parse_index(&json, "fuzz").expect("a serialized index parses");
    }
    if let Ok(m) = oci::parse_manifest(doc, "fuzz") {
        let json = serde_json::to_vec(&m).expect("a manifest serializes");
        oci::parse_manifest(&json, "fuzz").expect("a serialized manifest parses");
    }
    let _ = oci::parse_config(doc, "fuzz");
    let mt = oci::layer_type_by_magic(doc, sel & 1 == 1);
    assert!(oci::is_layer(mt), "sniffed layer type {mt:?} is not a layer");
    if let Ok(s) = std::str::from_utf8(doc)
        && let Ok(p) = oci::Platform::parse(s)
    {
        assert_eq!(oci::Platform::parse(&p.to_string()).ok().as_ref(), Some(&p), "platform round trip");
        let _ = p.matches(&oci::Platform::host());
    }
}

/// Reference parsing: whatever parses is normalized, and the normalized form parses to the
/// same reference (normalizing is idempotent).
pub fn reference(data: &[u8]) {
    let Ok(s) = std::str::from_utf8(data) else { return };
    let Ok(r) = Reference::parse(s) else { return };
    let shown = r.to_string();
    let again =
        Reference::parse(&shown).unwrap_or_else(|e| panic!("{shown:?} (from {s:?}) does not parse: {e}"));
    assert_eq!(again, r, "normalizing {s:?} is not idempotent");
    let _ = (r.repository(), r.registry_host(), r.object());
}

/// An object with a few fields and labels for filters to match against.
struct Object {
    fields: BTreeMap<&'static str, &'static str>,
    labels: BTreeMap<String, String>,
}

impl Adaptor for Object {
    fn field(&self, path: &[String]) -> Option<Cow<'_, str>> {
        match path {
            [f, rest @ ..] if f == "labels" => filter::label_field(&self.labels, rest),
            [f] => self.fields.get(f.as_str()).map(|v| Cow::Borrowed(*v)),
            _ => None,
        }
    }
}

static OBJECT: LazyLock<Object> = LazyLock::new(|| Object {
    fields: BTreeMap::from([
        ("name", "docker.io/library/busybox:latest"),
        ("topic", "/images/create"),
        ("id", "a1"),
    ]),
    labels: BTreeMap::from([
        ("io.berth/gc.root".to_string(), "true".to_string()),
        ("a".to_string(), String::new()),
    ]),
});

/// The filter parser: the input, split at newlines, is a list of filter strings (any one may
/// match), parsed and, when valid, matched against a fixed object.
pub fn filter(data: &[u8]) {
    let s = String::from_utf8_lossy(data);
    let list: Vec<&str> = s.split('\n').collect();
    if let Ok(f) = Filters::parse(&list) {
        let _ = f.matches(&*OBJECT);
        let _ = f.uses_field("labels");
        for one in f.filters() {
            let again = filter::Filter::parse(one.as_str()).expect("a filter's source parses again");
            assert_eq!(again.selectors().len(), one.selectors().len(), "filter re-parse differs");
        }
    }
}

/// The SPDY/3.1 codec of the CRI streaming server: the input as a connection's byte stream,
/// decoded frame by frame (one inflate context, as on a connection) until the first error
/// or incomplete frame. Every decoded frame must re-encode and decode back to itself through
/// a second codec pair, and never claim more bytes than there were.
pub fn spdy(data: &[u8]) {
    use berth_spdy::{Codec, Frame, Limits};
    let limits = Limits { max_data: 1 << 16, max_control: 1 << 16, max_headers: 1 << 16 };
    let mut rx = Codec::new(limits);
    let (mut tx2, mut rx2) = (Codec::new(Limits::default()), Codec::new(Limits::default()));
    let mut at = 0;
    while let Ok(Some((frame, used))) = rx.decode(&data[at..]) {
        assert!(used >= 8 && at + used <= data.len(), "a frame claimed {used} bytes of {}", data.len() - at);
        at += used;
        if matches!(frame, Frame::Unknown { .. }) {
            continue;
        }
        let mut wire = Vec::new();
        tx2.encode(&frame, &mut wire).expect("a decoded frame encodes");
        let (again, n) = rx2.decode(&wire).expect("re-encoded frame decodes").expect("whole");
        assert_eq!(n, wire.len(), "re-encoded frame length");
        assert_eq!(again, frame, "frame changed in a round trip");
    }
}

/// The WebSocket reader of the CRI streaming server, configured as the server configures it
/// (server role, messages and frames at most 1 MiB): the input as what a client sends after
/// the upgrade, read message by message until the first error. No message may pass the
/// limit, and a binary message (a channel byte and data) must survive being read.
pub fn websocket(data: &[u8]) {
    use tungstenite::protocol::{Role, WebSocket, WebSocketConfig};
    const LIMIT: usize = 1 << 20;
    let config = WebSocketConfig::default().max_message_size(Some(LIMIT)).max_frame_size(Some(LIMIT));
    let io = std::io::Cursor::new(data.to_vec());
    let mut ws = WebSocket::from_raw_socket(ReadOnly(io), Role::Server, Some(config));
    for _ in 0..10_000 {
        match ws.read() {
            Ok(tungstenite::Message::Binary(d)) => assert!(d.len() <= LIMIT, "a {} byte message passed", d.len()),
            Ok(tungstenite::Message::Text(t)) => assert!(t.len() <= LIMIT, "a {} byte message passed", t.len()),
            Ok(_) => {}
            Err(_) => return,
        }
    }
}

/// The fuzz input as a socket: reads from it, and accepts (and drops) what the reader writes
/// back (pongs, close replies).
struct ReadOnly(std::io::Cursor<Vec<u8>>);

impl std::io::Read for ReadOnly {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.0.read(buf)
    }
}

impl std::io::Write for ReadOnly {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
