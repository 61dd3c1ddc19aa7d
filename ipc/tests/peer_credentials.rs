//! SO_PEERCRED across uids: this test binary re-runs its own `peer_helper` test as uid
//! 65534 (nobody) against a service, which must refuse it unless it belongs to the
//! configured group. Needs root; skips otherwise.

mod common;

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use berth_ipc::frame::{HEADER_LEN, Header, Kind, MAX_FRAME_LEN};
use berth_ipc::peer::AccessPolicy;
use berth_ipc::{Error, ServerConfig};
use common::{State, assert_serves, client, hello_bytes, start};

const SOCKET_ENV: &str = "BERTH_IPC_TEST_PEER_SOCKET";
const CLIENT_ENV: &str = "BERTH_IPC_TEST_PEER_CLIENT";
const NOBODY: u32 = 65534;

/// Run as nobody by the tests below: says hello and prints what the service answered.
#[test]
#[ignore = "helper, run as another uid by the peer credential tests"]
fn peer_helper() {
    let Ok(path) = std::env::var(SOCKET_ENV) else { return };
    if std::env::var_os(CLIENT_ENV).is_some() {
        // Through the client library: a refusal must come back at once, not after retries.
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        let started = std::time::Instant::now();
        let got = rt.block_on(client(Path::new(&path), Duration::from_secs(5)).health());
        match got {
            Ok(_) => println!("ANSWER welcome"),
            Err(e) => {
                let when =
                    if started.elapsed() < Duration::from_secs(1) { "at once" } else { "after retries" };
                println!("ANSWER error {:?} {when}", e.code)
            }
        }
        return;
    }
    let mut s = std::os::unix::net::UnixStream::connect(&path).expect("connect as nobody");
    s.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
    let _ = s.write_all(&hello_bytes("test")); // may fail if the service closed already
    let mut head = [0u8; HEADER_LEN];
    s.read_exact(&mut head).expect("an answer frame");
    let header = Header::decode(&head, MAX_FRAME_LEN).expect("a valid header");
    let mut payload = vec![0u8; header.len as usize];
    s.read_exact(&mut payload).expect("payload");
    match header.kind {
        Kind::Welcome => println!("ANSWER welcome"),
        Kind::Error => {
            let err: Error = berth_ipc::codec::decode(&payload).expect("error payload");
            println!("ANSWER error {:?}: {}", err.code, err.message);
        }
        other => println!("ANSWER {other:?}"),
    }
}

/// Runs `peer_helper` as nobody against `socket`; returns its ANSWER line.
fn as_nobody(socket: &Path, with_client: bool) -> String {
    let mut cmd = std::process::Command::new(std::env::current_exe().expect("own exe"));
    if with_client {
        cmd.env(CLIENT_ENV, "1");
    }
    let out = cmd
        .args(["--exact", "peer_helper", "--ignored", "--nocapture", "--test-threads=1"])
        .env(SOCKET_ENV, socket)
        .uid(NOBODY)
        .gid(NOBODY)
        .output()
        .expect("run the helper as nobody");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "helper failed: {stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    // libtest prints `test peer_helper ... ` on the same line as the helper's output.
    let line = stdout.lines().find_map(|l| l.find("ANSWER").map(|at| l[at..].to_string()));
    line.unwrap_or_else(|| panic!("no answer from the helper: {stdout}"))
}

/// A service on a socket nobody can reach (dir 0755, socket 0666), so only SO_PEERCRED decides.
async fn open_service(dir: &Path, access: AccessPolicy) -> (std::path::PathBuf, common::Running) {
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).expect("chmod dir");
    let path = dir.join("test.sock");
    let running =
        start(&path, ServerConfig { access, ..ServerConfig::default() }, Arc::new(State::default()));
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).expect("chmod socket");
    (path, running)
}

fn skip_unless_root() -> bool {
    if !nix::unistd::geteuid().is_root() {
        println!("skip: needs root to run a peer as uid {NOBODY}");
        return true;
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stranger_is_refused_before_any_request() {
    if skip_unless_root() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let (path, running) = open_service(dir.path(), AccessPolicy { group: Some(4242) }).await;
    let p = path.clone();
    let answer = tokio::task::spawn_blocking(move || as_nobody(&p, false)).await.expect("join");
    assert_eq!(
        answer,
        "ANSWER error PermissionDenied: test: uid 65534 is not root and not in the berth group"
    );
    let p = path.clone();
    let answer = tokio::task::spawn_blocking(move || as_nobody(&p, true)).await.expect("join");
    assert_eq!(answer, "ANSWER error PermissionDenied at once", "refused at once, not retried");
    let m = client(&path, Duration::from_secs(5)).metrics().await.expect("metrics");
    assert_eq!(m.connections_refused, 2);
    assert_serves(&path).await;
    running.stop(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn member_of_the_group_is_welcome() {
    if skip_unless_root() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let (path, running) = open_service(dir.path(), AccessPolicy { group: Some(NOBODY) }).await;
    let p = path.clone();
    let answer = tokio::task::spawn_blocking(move || as_nobody(&p, false)).await.expect("join");
    assert_eq!(answer, "ANSWER welcome");
    let p = path.clone();
    let answer = tokio::task::spawn_blocking(move || as_nobody(&p, true)).await.expect("join");
    assert_eq!(answer, "ANSWER welcome");
    running.stop(Duration::from_secs(5)).await;
}
