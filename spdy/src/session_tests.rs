use std::time::Duration;

use tokio::time::timeout;

use super::*;

fn pair(options: Options) -> (Session, Session) {
    let (a, b) = tokio::io::duplex(256 * 1024);
    (Session::new(a, Role::Client, options), Session::new(b, Role::Server, options))
}

async fn within<T>(f: impl std::future::Future<Output = T>) -> T {
    timeout(Duration::from_secs(10), f).await.expect("in time")
}

#[tokio::test]
async fn streams_carry_data_both_ways_and_finish() {
    let (client, mut server) = pair(Options::default());
    let echo = tokio::spawn(async move {
        let mut s = server.accept().await.expect("a stream");
        assert_eq!(s.headers().get("streamtype"), Some("stdin"));
        let mut got = Vec::new();
        while let Some(d) = s.read().await {
            got.extend_from_slice(&d);
        }
        s.write(&got).await.expect("echo");
        s.finish().await.expect("fin");
        server
    });
    let mut s = within(client.open(Headers::new().with("streamType", "stdin"))).await.expect("open");
    let big: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    s.write(&big).await.expect("write");
    s.finish().await.expect("fin");
    let mut back = Vec::new();
    while let Some(d) = within(s.read()).await {
        back.extend_from_slice(&d);
    }
    assert_eq!(back, big);
    let server = within(echo).await.expect("server task");
    server.close().await;
    // The client sees the connection end.
    assert!(within(client.open(Headers::new())).await.is_err());
}

#[tokio::test]
async fn many_streams_at_once_and_refusal_past_the_limit() {
    let (client, mut server) = pair(Options { max_streams: 3, ..Options::default() });
    let mut held = Vec::new();
    for i in 0..3 {
        held.push(within(client.open(Headers::new().with("n", i.to_string()))).await.expect("open"));
    }
    let mut accepted = Vec::new();
    for _ in 0..3 {
        accepted.push(within(server.accept()).await.expect("stream"));
    }
    let ids: Vec<u32> = accepted.iter().map(Stream::id).collect();
    assert_eq!(ids, [1, 3, 5]);
    // A fourth is refused with RST_STREAM, and the opener is told.
    let e = within(client.open(Headers::new())).await.err().expect("refused");
    assert!(e.to_string().contains("status 3"), "{e}");
    // Finishing one frees a place.
    held[0].finish().await.expect("fin");
    assert_eq!(within(accepted[0].read()).await, None);
    within(client.open(Headers::new())).await.expect("a place again");
}

#[tokio::test]
async fn a_vanished_peer_ends_every_stream() {
    let (client, mut server) = pair(Options::default());
    let _s = within(client.open(Headers::new())).await.expect("open");
    let mut on_server = within(server.accept()).await.expect("stream");
    let closed = server.closed();
    drop(client);
    within(closed).await;
    assert_eq!(within(on_server.read()).await, None);
    assert!(within(server.accept()).await.is_none());
    assert!(on_server.write(b"x").await.is_err() || server.end_reason().is_some());
}

#[tokio::test]
async fn a_slow_reader_pushes_back_instead_of_buffering() {
    let (a, b) = tokio::io::duplex(8 * 1024);
    let client = Session::new(a, Role::Client, Options::default());
    let mut server = Session::new(b, Role::Server, Options::default());
    let mut s = within(client.open(Headers::new())).await.expect("open");
    let _unread = within(server.accept()).await.expect("stream");
    // The server's stream holds INBOX_FRAMES frames and its connection reader then waits;
    // the duplex pipe fills, the client's writer waits, the outbox fills, and write blocks.
    let chunk = vec![7u8; MAX_SEND];
    let mut sent = 0usize;
    let blocked = loop {
        match timeout(Duration::from_millis(300), s.write(&chunk)).await {
            Ok(r) => {
                r.expect("write");
                sent += chunk.len();
                assert!(sent < 64 << 20, "64 MiB accepted without the reader reading");
            }
            Err(_) => break sent,
        }
    };
    let bound = (INBOX_FRAMES + OUTBOX_FRAMES + 4) * MAX_SEND;
    assert!(blocked <= bound, "{blocked} bytes buffered, bound {bound}");
}

#[tokio::test]
async fn the_server_answers_pings_and_bad_frames_end_the_connection() {
    let (mut raw, b) = tokio::io::duplex(64 * 1024);
    let mut server = Session::new(b, Role::Server, Options::default());
    let mut enc = Encoder::new();
    let mut out = Vec::new();
    enc.encode(&Frame::Ping { id: 1 }, &mut out).expect("ping");
    raw.write_all(&out).await.expect("send");
    let mut back = [0u8; 12];
    within(raw.read_exact(&mut back)).await.expect("pong");
    assert_eq!(back, [0x80, 3, 0, 6, 0, 0, 0, 4, 0, 0, 0, 1]);
    // A SPDY/2 frame: protocol error, GOAWAY, connection over.
    raw.write_all(&[0x80, 2, 0, 6, 0, 0, 0, 4, 0, 0, 0, 3]).await.expect("send");
    let mut goaway = [0u8; 16];
    within(raw.read_exact(&mut goaway)).await.expect("goaway");
    assert_eq!(&goaway[..4], [0x80, 3, 0, 7]);
    assert!(within(server.accept()).await.is_none());
    assert!(server.end_reason().expect("ended").contains("version 2"), "{:?}", server.end_reason());
}

#[tokio::test]
async fn consumed_data_is_given_back_in_window_updates_of_32_kib_not_per_frame() {
    let (mut raw, b) = tokio::io::duplex(256 * 1024);
    let mut server = Session::new(b, Role::Server, Options::default());
    let mut enc = Encoder::new();
    let mut out = Vec::new();
    let syn =
        Frame::SynStream { stream_id: 1, associated_to: 0, priority: 0, flags: 0, headers: Headers::new() };
    enc.encode(&syn, &mut out).expect("syn");
    for _ in 0..10 {
        enc.encode(&Frame::Data { stream_id: 1, flags: 0, data: vec![1; 8 * 1024] }, &mut out).expect("data");
    }
    raw.write_all(&out).await.expect("send");
    let mut s = within(server.accept()).await.expect("stream");
    let mut got = 0;
    while got < 80 * 1024 {
        got += within(s.read()).await.expect("data").len();
    }
    // SYN_REPLY, then the updates: 80 KiB consumed is two of 32 KiB for the stream and two
    // for the connection, with 16 KiB still owed.
    let mut dec = Decoder::new(Limits::default());
    let mut buf = Vec::new();
    let mut updates = Vec::new();
    while updates.len() < 4 {
        let mut chunk = [0u8; 256];
        let n = within(raw.read(&mut chunk)).await.expect("read");
        buf.extend_from_slice(&chunk[..n]);
        while let Some((f, used)) = dec.decode(&buf).expect("decode") {
            buf.drain(..used);
            if let Frame::WindowUpdate { stream_id, delta } = f {
                updates.push((stream_id, delta));
            }
        }
    }
    updates.sort_unstable();
    assert_eq!(updates, [(0, 32 * 1024), (0, 32 * 1024), (1, 32 * 1024), (1, 32 * 1024)]);
    let extra = timeout(Duration::from_millis(200), raw.read(&mut [0u8; 64])).await;
    assert!(extra.is_err(), "no update for the 16 KiB still owed: {extra:?}");
}
