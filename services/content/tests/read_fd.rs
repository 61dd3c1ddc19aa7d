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
