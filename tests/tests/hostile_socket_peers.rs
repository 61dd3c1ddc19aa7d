//! Hostile socket peers against a whole berth: a peer attaching ten fds to one message on
//! `content-fd.sock` leaves the content service's fd count unchanged, and a client that asks
//! `content.sock` for many blobs and never reads the answers is dropped while other clients
//! are served, with the service's memory bounded.

use std::io::{IoSlice, Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use berth_ipc::content::readfd::{FdRequest, ReadFdRequest, SOCKET_NAME};
use berth_ipc::frame::{self, Kind};
use berth_ipc::{Digest, codec};
use berth_system_tests::Berth;
use nix::sys::socket::{ControlMessage, MsgFlags, sendmsg};

fn ok(berth: &Berth, args: &[&str], input: &[u8]) -> String {
    let out = berth.cli_with_input(args, input);
    assert!(out.status.success(), "berth {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn fd_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).expect("the service's fd dir").count()
}

/// `VmHWM` (peak) and `VmRSS` of `pid`, in KiB.
fn memory_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    };
    (field("VmHWM:"), field("VmRSS:"))
}

fn request_frame(id: u64, payload: &[u8]) -> Vec<u8> {
    let mut buf = Vec::new();
    frame::put_frame(&mut buf, Kind::Request, id, payload);
    buf
}

fn content_pid(berth: &mut Berth) -> u32 {
    berth.status("content").pid.expect("content runs")
}

/// Waits until `pid` holds `want` fds (connections end asynchronously); returns the last count.
fn settle_fds(pid: u32, want: usize) -> usize {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let n = fd_count(pid);
        if n <= want || Instant::now() > deadline {
            return n;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn ten_fds_in_one_message_leak_nothing() {
    let mut berth = Berth::start();
    let digest = ok(&berth, &["content", "ingest", "fds-blob", "--stream"], b"ten fds");
    let digest = Digest::parse(&digest).expect("digest");
    let pid = content_pid(&mut berth);
    let socket = berth.state.join(SOCKET_NAME);
    let files: Vec<std::fs::File> =
        (0..10).map(|_| std::fs::File::open("/dev/null").expect("null")).collect();
    let raw: Vec<RawFd> = files.iter().map(AsRawFd::as_raw_fd).collect();
    let exchange = || {
        let mut s = UnixStream::connect(&socket).expect("connect content-fd.sock");
        s.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
        let req = FdRequest::Read(ReadFdRequest { digest });
        let req = request_frame(1, &codec::encode(&req).expect("encode"));
        let cmsgs = [ControlMessage::ScmRights(&raw)];
        sendmsg::<()>(s.as_raw_fd(), &[IoSlice::new(&req)], &cmsgs, MsgFlags::empty(), None)
            .expect("sendmsg");
        // Reading without a control buffer discards the fd the reply carries.
        let mut reply = Vec::new();
        let _ = s.read_to_end(&mut reply);
        reply
    };
    // One exchange first, so whatever the service opens once (lazily) is in the baseline.
    assert!(!exchange().is_empty(), "the service answers a request that carries ten fds");
    let before = settle_fds(pid, 0);
    for _ in 0..20 {
        exchange();
    }
    let after = settle_fds(pid, before);
    assert_eq!(after, before, "content's fd count after 20 messages of ten fds each (was {before})");
    berth.stop();
}

#[test]
fn a_client_that_never_reads_is_dropped() {
    let toml = "[ipc]\nwrite_timeout_ms = 1000\nmax_queued_bytes = 16777216\n";
    let mut berth = Berth::start_with(toml);
    let blob: Vec<u8> = (0..(1u32 << 20)).map(|i| (i % 251) as u8).collect();
    let digest = ok(&berth, &["content", "ingest", "big-blob", "--stream"], &blob);
    let digest = Digest::parse(&digest).expect("digest");
    let pid = content_pid(&mut berth);
    let (peak_before, rss_before) = memory_kib(pid);

    let mut s = UnixStream::connect(berth.state.join("content.sock")).expect("connect content.sock");
    let hello = berth_ipc::Hello {
        protocol: u32::from(frame::PROTOCOL_VERSION),
        service: "content".into(),
        client_name: "never-reads".into(),
    };
    let mut buf = Vec::new();
    frame::put_frame(&mut buf, Kind::Hello, 0, &codec::encode(&hello).expect("hello"));
    s.write_all(&buf).expect("hello");
    // 4000 reads of a 1 MiB blob: 4 GiB of answers if the service kept them all.
    let read = berth_ipc::content::Read { digest, offset: 0, length: None };
    let body = berth_ipc::protocol::RequestBody::Service(berth_ipc::content::ContentRequest::Read(read));
    let body = codec::encode(&body).expect("encode");
    let mut writer = s.try_clone().expect("clone");
    writer.set_write_timeout(Some(Duration::from_secs(20))).expect("write timeout");
    let sender = std::thread::spawn(move || {
        for id in 1..=4000u64 {
            if writer.write_all(&request_frame(id, &body)).is_err() {
                return id;
            }
        }
        4001
    });
    // Meanwhile another client is served.
    std::thread::sleep(Duration::from_millis(500));
    let shown = digest.to_string();
    for how in [&["--stream"][..], &[][..]] {
        let args = [&["content", "get", shown.as_str()][..], how].concat();
        let got = berth.cli(&args);
        assert!(got.status.success(), "another client is served: {}", String::from_utf8_lossy(&got.stderr));
        assert!(got.stdout == blob, "another client gets the blob whole ({} bytes)", got.stdout.len());
    }
    // The service drops the connection once its write deadline passes.
    std::thread::sleep(Duration::from_secs(3));
    s.set_read_timeout(Some(Duration::from_secs(10))).expect("read timeout");
    let mut sink = Vec::new();
    let started = Instant::now();
    let ended = s.read_to_end(&mut sink);
    assert!(
        !matches!(&ended, Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
        "the service still holds the connection of a client that never reads"
    );
    let stopped_at = sender.join().expect("sender");
    let (peak_after, rss_after) = memory_kib(pid);
    eprintln!(
        "content VmHWM {peak_before} -> {peak_after} KiB, VmRSS {rss_before} -> {rss_after} KiB; \
         {} bytes drained in {:?} after the deadline; sender stopped at request {stopped_at}",
        sink.len(),
        started.elapsed()
    );
    assert!(sink.len() < 1 << 30, "the service sent {} bytes after its deadline", sink.len());
    assert!(
        // Budget 16 MiB; before content reserved its chunks, 559 reads pinned about 330 MiB.
        peak_after.saturating_sub(peak_before) < 128 << 10,
        "content's peak RSS grew by {} KiB",
        peak_after.saturating_sub(peak_before)
    );
    berth.stop();
}

#[test]
fn idle_connections_close_but_subscriptions_stay() {
    use berth_ipc::events::{Since, Subscribe, SubscribeItem};
    let mut berth = Berth::start_with("[ipc]\nidle_timeout_ms = 500\n");
    // A connection that says hello and then nothing is closed after the idle timeout.
    let mut s = UnixStream::connect(berth.state.join("content.sock")).expect("connect content.sock");
    let hello = berth_ipc::Hello {
        protocol: u32::from(frame::PROTOCOL_VERSION),
        service: "content".into(),
        client_name: "idle".into(),
    };
    let mut buf = Vec::new();
    frame::put_frame(&mut buf, Kind::Hello, 0, &codec::encode(&hello).expect("hello"));
    s.write_all(&buf).expect("hello");
    s.set_read_timeout(Some(Duration::from_secs(10))).expect("read timeout");
    let started = Instant::now();
    let mut got = Vec::new();
    let ended = s.read_to_end(&mut got);
    let waited = started.elapsed();
    assert!(ended.is_ok(), "an idle connection is still open after {waited:?}: {ended:?}");
    assert!(waited >= Duration::from_millis(400), "closed after {waited:?}, before the idle timeout");
    assert!(String::from_utf8_lossy(&got).contains("connection idle, closed"), "{got:?}");

    // A subscription silent for many idle timeouts still delivers the next event.
    let clients = berth.clients(Duration::from_secs(10));
    let pid = content_pid(&mut berth);
    // One runtime for the whole subscription: the client's connection lives in it.
    let seen = berth_system_tests::block_on(async {
        let sub = Subscribe { filters: vec!["topic~=\"^/services/\"".into()], since: Since::Live };
        let mut stream = clients.events.stream(sub).await.expect("subscribe");
        let first =
            tokio::time::timeout(Duration::from_secs(10), stream.next()).await.expect("ready in time");
        assert!(matches!(first, Some(Ok(SubscribeItem::Ready { .. }))), "{first:?}");
        tokio::time::sleep(Duration::from_secs(3)).await;
        berth_system_tests::signal(pid, nix::sys::signal::Signal::SIGKILL);
        let item = tokio::time::timeout(Duration::from_secs(10), stream.next()).await;
        format!("{item:?}")
    });
    assert!(seen.contains("ServiceExited"), "the idle subscription got no event: {seen}");
    // Every service still serves after idle closes of its long-lived connections.
    berth.wait_until("content back", Duration::from_secs(10), |l| {
        l.iter().any(|s| s.name == "content" && s.pid.is_some_and(|p| p != pid))
    });
    assert!(berth.cli(&["content", "ls"]).status.success(), "content ls after idle closes");
    berth.stop();
}
