//! The conformance suite: containerd content-store semantics, written once against the
//! `ContentStore` trait and run on the local store and on the socket proxy alike.

use std::path::Path;
use std::time::{Duration, Instant};

use berth_ipc::Code;
use berth_ipc::Digest;
use berth_ipc::content::store::{ContentStore, ContentWriter};

use super::data;

fn blob_files(blobs: &Path) -> usize {
    std::fs::read_dir(blobs).expect("blobs dir").count()
}

/// Opens `ref`, retrying while a just-released lock is still held (the proxy releases it
/// asynchronously).
async fn open_eventually<S: ContentStore>(s: &S, r: &str) -> S::Writer {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match s.writer(r, None, None).await {
            Ok(w) => return w,
            Err(e) if e.code == Code::Unavailable && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            Err(e) => panic!("open {r}: {e}"),
        }
    }
}

pub async fn run_all<S: ContentStore>(s: &S, blobs: &Path) {
    write_read_list_delete(s).await;
    resume_and_offsets(s).await;
    restart_at_zero(s).await;
    two_writers(s).await;
    mismatch_at_commit(s, blobs).await;
    already_exists(s).await;
    statuses_and_bad_input(s).await;
}

async fn write_read_list_delete<S: ContentStore>(s: &S) {
    let bytes = data(1, 3 << 20);
    let digest = Digest::of(&bytes);
    let mut w = s.writer("basic", Some(digest), Some(bytes.len() as u64)).await.expect("open");
    assert_eq!(w.status().offset, 0);
    let half = bytes.len() / 2;
    assert_eq!(w.write_at(0, bytes[..half].to_vec()).await.expect("write"), half as u64);
    w.write_at(half as u64, bytes[half..].to_vec()).await.expect("write");
    let info = w.commit(Some(bytes.len() as u64), Some(digest)).await.expect("commit");
    assert_eq!((info.digest, info.size), (digest, bytes.len() as u64));
    assert_eq!(s.info(&digest).await.expect("info").size, bytes.len() as u64);
    assert_eq!(s.read(&digest, 0, None).await.expect("read"), bytes);
    assert_eq!(s.read(&digest, 10, Some(5)).await.expect("range"), &bytes[10..15]);
    let err = s.read(&digest, bytes.len() as u64 + 1, None).await.expect_err("past end");
    assert_eq!(err.code, Code::OutOfRange);
    let listed = s.list(&[format!("digest=={digest}")]).await.expect("list");
    assert_eq!(listed.len(), 1);
    assert!(
        s.list(&[format!("size=={}", bytes.len())]).await.expect("list").iter().any(|i| i.digest == digest)
    );
    assert!(s.list(&["size==1".to_string()]).await.expect("list").iter().all(|i| i.digest != digest));
    assert!(s.list(&["digest==nothing".to_string()]).await.expect("list").is_empty());
    assert_eq!(s.list(&["size=\"".to_string()]).await.expect_err("bad filter").code, Code::InvalidArgument);
    let err = s.status("basic").await.expect_err("ingest gone after commit");
    assert_eq!(err.code, Code::NotFound);
    s.delete(&digest).await.expect("delete");
    assert_eq!(s.info(&digest).await.expect_err("gone").code, Code::NotFound);
    assert_eq!(s.delete(&digest).await.expect_err("gone").code, Code::NotFound);
    assert_eq!(s.read(&digest, 0, None).await.expect_err("gone").code, Code::NotFound);
}

async fn resume_and_offsets<S: ContentStore>(s: &S) {
    let bytes = data(2, 100_000);
    let mut w = s.writer("resume", None, None).await.expect("open");
    w.write_at(0, bytes[..40_000].to_vec()).await.expect("write");
    drop(w);
    let mut w = open_eventually(s, "resume").await;
    assert_eq!(w.status().offset, 40_000, "resumes at the end of the data");
    assert_eq!(s.status("resume").await.expect("status").offset, 40_000);
    let err = w.write_at(39_999, bytes[39_999..].to_vec()).await.expect_err("behind");
    assert_eq!(err.code, Code::OutOfRange);
    let err = w.write_at(40_001, bytes[40_001..].to_vec()).await.expect_err("ahead");
    assert_eq!(err.code, Code::OutOfRange);
    w.write_at(40_000, bytes[40_000..].to_vec()).await.expect("write");
    let info = w.commit(Some(100_000), None).await.expect("commit");
    assert_eq!(info.digest, Digest::of(&bytes), "the re-hashed prefix counts");
    s.delete(&info.digest).await.expect("delete");
}

async fn restart_at_zero<S: ContentStore>(s: &S) {
    let mut w = s.writer("restart", None, None).await.expect("open");
    w.write_at(0, b"garbage garbage".to_vec()).await.expect("write");
    w.write_at(0, b"good".to_vec()).await.expect("offset 0 restarts");
    let info = w.commit(None, None).await.expect("commit");
    assert_eq!(info.digest, Digest::of(b"good"));
    assert_eq!(s.read(&info.digest, 0, None).await.expect("read"), b"good");
    s.delete(&info.digest).await.expect("delete");
}

async fn two_writers<S: ContentStore>(s: &S) {
    let mut first = s.writer("contended", None, None).await.expect("open");
    let err = s.writer("contended", None, None).await.err().expect("second writer refused");
    assert_eq!(err.code, Code::Unavailable, "{err}");
    let err = s.abort("contended").await.expect_err("abort of a held ingest");
    assert_eq!(err.code, Code::Unavailable);
    first.write_at(0, b"aaaa".to_vec()).await.expect("write");
    drop(first);
    let mut second = open_eventually(s, "contended").await;
    assert_eq!(second.status().offset, 4);
    second.write_at(4, b"bbbb".to_vec()).await.expect("write");
    let info = second.commit(None, None).await.expect("commit");
    assert_eq!(s.read(&info.digest, 0, None).await.expect("read"), b"aaaabbbb", "no interleaving");
    s.delete(&info.digest).await.expect("delete");
}

async fn mismatch_at_commit<S: ContentStore>(s: &S, blobs: &Path) {
    let before = blob_files(blobs);
    let mut w = s.writer("mismatch", None, None).await.expect("open");
    w.write_at(0, b"12345".to_vec()).await.expect("write");
    let err = w.commit(Some(5), Some(Digest::of(b"other"))).await.expect_err("digest mismatch");
    assert_eq!(err.code, Code::FailedPrecondition, "{err}");
    assert_eq!(blob_files(blobs), before, "nothing entered blobs/");
    let mut w = open_eventually(s, "mismatch").await;
    let err = w.write_at(5, Vec::new()).await.map(|_| ());
    assert!(err.is_ok());
    let err = w.commit(Some(6), None).await.expect_err("size mismatch");
    assert_eq!(err.code, Code::FailedPrecondition);
    assert_eq!(blob_files(blobs), before);
    let w = open_eventually(s, "mismatch").await;
    w.abort().await.expect("abort");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match s.status("mismatch").await {
            Err(e) if e.code == Code::NotFound => break,
            other => assert!(Instant::now() < deadline, "ingest still there: {other:?}"),
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // An expected size the data exceeds is refused at write time.
    let mut w = open_eventually(s, "mismatch").await;
    drop(w.write_at(0, Vec::new()).await);
    drop(w);
    let mut w = s.writer("sized", None, Some(3)).await.expect("open");
    assert_eq!(w.write_at(0, b"1234".to_vec()).await.expect_err("too long").code, Code::OutOfRange);
    w.abort().await.expect("abort");
    s.abort("mismatch").await.ok();
}

async fn already_exists<S: ContentStore>(s: &S) {
    let mut w = s.writer("dup-1", None, None).await.expect("open");
    w.write_at(0, b"same".to_vec()).await.expect("write");
    let info = w.commit(None, None).await.expect("commit");
    let mut w = s.writer("dup-2", None, None).await.expect("open");
    w.write_at(0, b"same".to_vec()).await.expect("write");
    let err = w.commit(None, None).await.expect_err("exists");
    assert_eq!(err.code, Code::AlreadyExists);
    let deadline = Instant::now() + Duration::from_secs(5);
    while s.status("dup-2").await.is_ok() {
        assert!(Instant::now() < deadline, "ingest dropped after AlreadyExists");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let err = s.writer("dup-3", Some(info.digest), None).await.err().expect("exists at open");
    assert_eq!(err.code, Code::AlreadyExists);
    s.delete(&info.digest).await.expect("delete");
}

async fn statuses_and_bad_input<S: ContentStore>(s: &S) {
    let mut a = s.writer("list-a", None, Some(10)).await.expect("open");
    a.write_at(0, b"12".to_vec()).await.expect("write");
    let b = s.writer("list-b", None, None).await.expect("open");
    let all = s.list_statuses(&[]).await.expect("list");
    let refs: Vec<_> = all.iter().map(|s| s.r#ref.as_str()).collect();
    assert!(refs.contains(&"list-a") && refs.contains(&"list-b"), "{refs:?}");
    let only = s.list_statuses(&["ref==list-a".to_string()]).await.expect("list");
    assert_eq!(only.len(), 1);
    assert_eq!((only[0].offset, only[0].total), (2, Some(10)));
    assert_eq!(s.list_statuses(&["ref~=^list-".to_string()]).await.expect("list").len(), 2);
    a.abort().await.expect("abort");
    b.abort().await.expect("abort");
    assert_eq!(s.writer("", None, None).await.err().expect("empty ref").code, Code::InvalidArgument);
    assert_eq!(s.status("nope").await.expect_err("none").code, Code::NotFound);
    assert_eq!(s.abort("nope").await.expect_err("none").code, Code::NotFound);
}
