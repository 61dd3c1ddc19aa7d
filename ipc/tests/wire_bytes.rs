//! The exact bytes of a handshake and a `Health` call, as `docs/protocol.md` shows them.
//! The hex dumps below must appear verbatim in the document, so the two cannot drift apart.

use berth_ipc::frame::{HEADER_LEN, Kind, put_frame};
use berth_ipc::protocol::{CommonRequest, CommonResponse, RequestBody, ResponseBody};
use berth_ipc::{Code, Error, Health, Hello, Welcome, codec};

/// A frame as the document prints it: header and payload on separate lines, hex pairs.
fn dump(kind: Kind, id: u64, payload: &[u8]) -> String {
    let mut bytes = Vec::new();
    put_frame(&mut bytes, kind, id, payload);
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<Vec<_>>().join(" ");
    format!("header:  {}\npayload: {}", hex(&bytes[..HEADER_LEN]), hex(&bytes[HEADER_LEN..]))
}

fn check(name: &str, got: String, want: &str) {
    assert_eq!(got, want, "{name}: wire bytes changed");
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/protocol.md"))
        .expect("docs/protocol.md");
    assert!(doc.contains(want), "docs/protocol.md does not show the {name} bytes:\n{want}");
}

#[test]
fn hello_and_welcome() {
    let hello = Hello { protocol: 1, service: "content".into(), client_name: "berth[42]".into() };
    check(
        "Hello",
        dump(Kind::Hello, 0, &codec::encode(&hello).expect("encode")),
        "header:  42 52 54 48 01 01 00 00 00 00 00 00 00 00 00 00 13 00 00 00\n\
         payload: 01 07 63 6f 6e 74 65 6e 74 09 62 65 72 74 68 5b 34 32 5d",
    );
    let welcome = Welcome { protocol: 1, service: "content".into(), version: "0.1.0".into(), pid: 4242 };
    check(
        "Welcome",
        dump(Kind::Welcome, 0, &codec::encode(&welcome).expect("encode")),
        "header:  42 52 54 48 01 02 00 00 00 00 00 00 00 00 00 00 12 00 00 00\n\
         payload: 01 07 63 6f 6e 74 65 6e 74 05 30 2e 31 2e 30 fb 92 10",
    );
}

#[test]
fn health_request_and_response() {
    let req = RequestBody::<()>::Common(CommonRequest::Health);
    check(
        "Health request",
        dump(Kind::Request, 1, &codec::encode(&req).expect("encode")),
        "header:  42 52 54 48 01 03 00 00 01 00 00 00 00 00 00 00 02 00 00 00\n\
         payload: 00 00",
    );
    let health = Health { name: "content".into(), version: "0.1.0".into(), pid: 4242, uptime_ms: 1500 };
    let resp = ResponseBody::<()>::Common(CommonResponse::Health(health));
    check(
        "Health response",
        dump(Kind::Response, 1, &codec::encode(&resp).expect("encode")),
        "header:  42 52 54 48 01 04 00 00 01 00 00 00 00 00 00 00 16 00 00 00\n\
         payload: 00 00 07 63 6f 6e 74 65 6e 74 05 30 2e 31 2e 30 fb 92 10 fb dc 05",
    );
}

#[test]
fn error_and_stream_control_frames() {
    let err = Error::new(Code::NotFound, "blob sha256:ab: not found");
    check(
        "Error",
        dump(Kind::Error, 7, &codec::encode(&err).expect("encode")),
        "header:  42 52 54 48 01 07 00 00 07 00 00 00 00 00 00 00 1b 00 00 00\n\
         payload: 00 19 62 6c 6f 62 20 73 68 61 32 35 36 3a 61 62 3a 20 6e 6f 74 20 66 6f 75 6e 64",
    );
    check(
        "StreamEnd",
        dump(Kind::StreamEnd, 9, &codec::encode(&()).expect("encode")),
        "header:  42 52 54 48 01 06 00 00 09 00 00 00 00 00 00 00 00 00 00 00\n\
         payload: ",
    );
    // A service's own call: `Service` (1), then the variant index in its request enum.
    let list = RequestBody::Service(berth_ipc::Call::into_request(berth_ipc::launcher::ListServices));
    assert_eq!(codec::encode(&list).expect("encode"), [1, 0]);
    // Code indices on the wire follow the declaration order of `Code`.
    for (i, code) in Code::ALL.iter().enumerate() {
        assert_eq!(codec::encode(code).expect("encode"), [i as u8], "{code:?}");
    }
}
