//! The byte-by-byte subscription described in docs/events.md, done with a raw socket and
//! the exact bytes the document gives, so the document cannot drift from the code.

mod common;

use std::time::Duration;

use berth_ipc::events::Since;
use berth_service_kit::config::EventsConfig;
use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

fn frame(kind: u8, id: u64, payload: &[u8]) -> Vec<u8> {
    let mut f = b"BRTH".to_vec();
    f.extend([1, kind, 0, 0]);
    f.extend(id.to_le_bytes());
    f.extend((payload.len() as u32).to_le_bytes());
    f.extend(payload);
    f
}

async fn read_frame(s: &mut UnixStream) -> (u8, u64, Vec<u8>) {
    let mut h = [0u8; 20];
    tokio::time::timeout(Duration::from_secs(5), s.read_exact(&mut h))
        .await
        .expect("in time")
        .expect("header");
    assert_eq!(&h[..5], b"BRTH\x01");
    let id = u64::from_le_bytes(h[8..16].try_into().expect("8 bytes"));
    let len = u32::from_le_bytes(h[16..20].try_into().expect("4 bytes"));
    let mut p = vec![0; len as usize];
    s.read_exact(&mut p).await.expect("payload");
    (h[5], id, p)
}

fn hex(s: &str) -> Vec<u8> {
    s.split_whitespace().map(|b| u8::from_str_radix(b, 16).expect("hex")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn documented_bytes_subscribe_and_receive() {
    let dir = tempfile::tempdir().expect("tempdir");
    let svc = start_in(dir.path(), EventsConfig::default()).await;
    let client = svc.client();
    publish(&client, "p", 1, vec![content("default", 1), exit("default", 2)]).await;

    let mut s = UnixStream::connect(svc.socket()).await.expect("connect");
    s.write_all(&frame(1, 0, &hex("01 06 65 76 65 6e 74 73 01 78"))).await.expect("hello");
    let (kind, _, welcome) = read_frame(&mut s).await;
    assert_eq!(kind, 2, "welcome");
    assert_eq!(&welcome[..8], &hex("01 06 65 76 65 6e 74 73")[..]);

    let sub = hex("01 02 01 12 74 6f 70 69 63 3d 3d 2f 74 61 73 6b 73 2f 65 78 69 74 01 01");
    s.write_all(&frame(3, 1, &sub)).await.expect("subscribe");
    let (kind, id, ready) = read_frame(&mut s).await;
    assert_eq!((kind, id), (5, 1));
    assert_eq!(ready, [1, 2, 0, 1, 2], "Ready {{ oldest: 1, last: 2 }}");
    let (kind, _, ev) = read_frame(&mut s).await;
    assert_eq!(kind, 5);
    // 01 02 | 01 Event | seq 2 | timestamp (varint) | "default" | "/tasks/exit" | 16 TaskExit ...
    assert_eq!(&ev[..4], [1, 2, 1, 2]);
    let ts_len = match ev[4] {
        251 => 3,
        252 => 5,
        253 => 9,
        _ => 1,
    };
    let rest = &ev[4 + ts_len..];
    let mut want = vec![7];
    want.extend(b"default");
    want.push(11);
    want.extend(b"/tasks/exit");
    want.push(16);
    assert_eq!(&rest[..want.len()], &want[..]);

    // Live: a new matching event arrives; Cancel ends the stream with StreamEnd.
    publish(&client, "p", 3, vec![exit("default", 3)]).await;
    let (_, _, live) = read_frame(&mut s).await;
    assert_eq!(&live[..4], [1, 2, 1, 3]);
    s.write_all(&frame(8, 1, &[])).await.expect("cancel");
    let (kind, id, _) = read_frame(&mut s).await;
    assert_eq!((kind, id), (6, 1), "stream end");

    // A bad filter: an Error frame with code 2 (InvalidArgument).
    let bad = hex("01 02 01 03 61 3d 62 00");
    s.write_all(&frame(3, 2, &bad)).await.expect("bad subscribe");
    let (kind, id, err) = read_frame(&mut s).await;
    assert_eq!((kind, id, err[0]), (7, 2, 2));
    let _ = Since::Live;
    svc.stop().await;
}
