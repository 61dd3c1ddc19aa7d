//! Interrupt a 1 GiB ingest at about half by SIGKILLing the content service process;
//! restart it, reopen the ref: the ingest resumes at the offset it reports, completes, and
//! the blob's digest is right.

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use berth_ipc::content::Content;
use berth_ipc::content::proxy::ContentClient;
use berth_ipc::content::store::{ContentStore, ContentWriter};
use berth_ipc::{Client, ClientOptions, Digest};
use sha2::Digest as _;

const TOTAL: u64 = 1 << 30;
const CHUNK: usize = 4 << 20;

/// The test data: a random 1 MiB block, its first 8 bytes xored with the block index.
fn block(base: &[u8], index: u64) -> Vec<u8> {
    let mut b = base.to_vec();
    for (i, x) in index.to_le_bytes().iter().enumerate() {
        b[i] ^= x;
    }
    b
}

fn bytes_at(base: &[u8], offset: u64, len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len);
    let mut pos = offset;
    while out.len() < len {
        let (idx, within) = (pos >> 20, (pos & ((1 << 20) - 1)) as usize);
        let b = block(base, idx);
        let take = (len - out.len()).min(b.len() - within);
        out.extend_from_slice(&b[within..within + take]);
        pos += take as u64;
    }
    out
}

fn spawn(root: &Path, state: &Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_berth-content"))
        .arg("--root")
        .arg(root)
        .arg("--state")
        .arg(state)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn berth-content")
}

struct Killer(Child);

impl Drop for Killer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_midway_then_resume() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (root, state) = (dir.path().join("root"), dir.path().join("state"));
    std::fs::create_dir_all(&state).expect("state");
    let base = common::data(7, 1 << 20);
    let mut hasher = sha2::Sha256::new();
    for i in 0..(TOTAL >> 20) {
        hasher.update(block(&base, i));
    }
    let want = Digest::from_sha256(hasher.finalize().into());

    let mut child = Killer(spawn(&root, &state));
    let options = ClientOptions { deadline: Duration::from_secs(20), client_name: "kill-test".into() };
    let content = ContentClient::new(Client::<Content>::in_state_dir(&state, options));
    content.client().health().await.expect("service up");

    let mut w = content.writer("big-layer", Some(want), Some(TOTAL)).await.expect("open");
    let mut offset = 0u64;
    while offset < TOTAL / 2 {
        w.push(bytes_at(&base, offset, CHUNK)).await.expect("push");
        offset += CHUNK as u64;
    }
    // Kill with chunks still in flight.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.0.id() as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("kill");
    let _ = child.0.wait();
    drop(w);

    let _child2 = Killer(spawn(&root, &state));
    content.client().health().await.expect("service back");
    let status = content.status("big-layer").await.expect("status after the crash");
    assert!(status.offset > 0 && status.offset <= TOTAL / 2, "offset {}", status.offset);
    drop(child);

    let mut w = content.writer("big-layer", Some(want), Some(TOTAL)).await.expect("reopen");
    let resumed = w.status().offset;
    assert_eq!(resumed, status.offset, "reopening resumes where the data ends");
    let mut offset = resumed;
    while offset < TOTAL {
        let len = CHUNK.min((TOTAL - offset) as usize);
        w.push(bytes_at(&base, offset, len)).await.expect("push");
        offset += len as u64;
    }
    let info = w.commit(Some(TOTAL), Some(want)).await.expect("commit");
    assert_eq!((info.digest, info.size), (want, TOTAL));
    let (got, size) = berth_content::store::hash_file(&root.join("content/blobs/sha256").join(want.hex()))
        .expect("hash the blob");
    assert_eq!((got, size), (want, TOTAL), "the blob on disk is right");
    assert!(content.status("big-layer").await.is_err(), "ingest gone");
}
