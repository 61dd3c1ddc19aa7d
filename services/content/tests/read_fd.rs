//! ReadFd: a peer gets an open read-only fd of a blob over `content-fd.sock` and reads the
//! exact bytes through it; unknown blobs are `NotFound` with no fd.

mod common;

use std::io::Read;
use std::os::unix::fs::FileExt;

use berth_ipc::content::store::{ContentStore, ContentWriter};
use berth_ipc::{Code, Digest};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_reads_exact_bytes_through_the_fd() {
    let svc = common::start().await;
    let bytes = common::data(11, 5 << 20 | 123);
    let mut w = svc.client.writer("fd-blob", None, None).await.expect("open");
    w.write_at(0, bytes.clone()).await.expect("write");
    let info = w.commit(None, None).await.expect("commit");

    let mut blob = svc.client.read_fd(&info.digest).await.expect("read fd");
    assert_eq!(blob.size, bytes.len() as u64);
    let mut got = Vec::new();
    blob.file.read_to_end(&mut got).expect("read through the fd");
    assert_eq!(got, bytes);
    let mut one = [0u8; 1];
    assert!(blob.file.write_at(b"x", 0).is_err(), "the fd is read-only");
    blob.file.read_at(&mut one, 7).expect("pread");
    assert_eq!(one[0], bytes[7]);

    let err = svc.client.read_fd(&Digest::of(b"absent")).await.expect_err("unknown blob");
    assert_eq!(err.code, Code::NotFound, "{err}");
    svc.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_appends_from_a_passed_fd() {
    use std::io::{Seek, SeekFrom, Write};
    use std::os::fd::AsFd;
    let svc = common::start().await;
    let head = common::data(21, 10_000);
    let body = common::data(22, 9 << 20 | 77);
    let tail = common::data(23, 3_000);

    let mut w = svc.client.writer("append-fd", None, None).await.expect("open");
    w.push(head.clone()).await.expect("push");
    // A regular file, read from its current position.
    let mut file = tempfile::tempfile().expect("tempfile");
    file.write_all(b"skip me").expect("write");
    file.write_all(&body).expect("write");
    file.seek(SeekFrom::Start(7)).expect("seek");
    let end = w.append_from(file.as_fd()).await.expect("append from file");
    assert_eq!(end, (head.len() + body.len()) as u64);
    // A pipe, written by another thread.
    let (rd, wr) = std::io::pipe().expect("pipe");
    let t = tail.clone();
    let writer_thread = std::thread::spawn(move || {
        let mut wr = wr;
        wr.write_all(&t).expect("write pipe");
    });
    w.append_from(rd.as_fd()).await.expect("append from pipe");
    writer_thread.join().expect("join");
    let info = w.commit(None, None).await.expect("commit");
    let all = [head, body, tail].concat();
    assert_eq!(info.digest, Digest::of(&all));
    assert_eq!(svc.client.read(&info.digest, 0, None).await.expect("read"), all);
    svc.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_pipe_does_not_keep_the_lock_after_the_writer_leaves() {
    use std::io::Write;
    use std::os::fd::AsFd;
    use std::time::{Duration, Instant};
    let svc = common::start().await;
    let (rd, mut wr) = std::io::pipe().expect("pipe");
    wr.write_all(&common::data(31, 60_000)).expect("write pipe"); // fits the pipe; stays open
    let mut w = svc.client.writer("stalled", None, None).await.expect("open");
    let appending = tokio::time::timeout(Duration::from_millis(500), w.append_from(rd.as_fd())).await;
    assert!(appending.is_err(), "the append waits for more bytes");
    drop(w); // the writer leaves while the service still waits on the pipe
    let deadline = Instant::now() + Duration::from_secs(5);
    let again = loop {
        match svc.client.writer("stalled", None, None).await {
            Ok(w) => break w,
            Err(e) if e.code == Code::Unavailable && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => panic!("lock not released: {e}"),
        }
    };
    assert!(again.status().offset <= 60_000);
    again.abort().await.expect("abort");
    drop(wr);
    svc.stop().await;
}
