//! [`super::call`] against shims of either protocol: a shim from before protocol 1 is a
//! listener that knows only the requests of its time (a request enum without `Versioned`,
//! so its refusal is serde's own), answering as the old shim did.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixListener;

use berth_ipc::runtime::{SHIM_PROTOCOL, ShimRequest, ShimResponse, ShimState, TaskStatus};
use berth_ipc::{Code, Error};

/// The requests an old shim knew (a subset is enough: serde names the unknown variant).
#[derive(serde::Deserialize)]
enum OldRequest {
    State,
    Ps,
}

fn state() -> ShimResponse {
    ShimResponse::State(ShimState { pid: 7, status: TaskStatus::Running, exit: None, shim_pid: 8 })
}

/// Serves one connection on `listener` as the old shim's loop did; answers every line it read.
fn old_shim(listener: UnixListener) -> std::thread::JoinHandle<Vec<String>> {
    std::thread::spawn(move || {
        let (conn, _) = listener.accept().expect("accept");
        let mut write = conn.try_clone().expect("clone");
        let mut seen = Vec::new();
        for line in BufReader::new(conn).lines() {
            let line = line.expect("line");
            let resp = match serde_json::from_str::<OldRequest>(&line) {
                Ok(OldRequest::State) => state(),
                Ok(OldRequest::Ps) => ShimResponse::Pids(vec![1]),
                Err(e) => ShimResponse::Error(Error::invalid(format!("shim request: {e}"))),
            };
            seen.push(line);
            writeln!(write, "{}", serde_json::to_string(&resp).expect("json")).expect("answer");
        }
        seen
    })
}

#[tokio::test]
async fn a_shim_from_before_protocol_1_is_asked_again_bare_on_the_same_connection() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sock = dir.path().join("sock");
    let shim = old_shim(UnixListener::bind(&sock).expect("bind"));
    let answer = super::call(&sock, &ShimRequest::State).await.expect("old shim answers");
    assert_eq!(answer, state());
    let seen = shim.join().expect("shim thread");
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert!(seen[0].starts_with(r#"{"Versioned":{"protocol":1,"#), "first line is versioned: {}", seen[0]);
    assert_eq!(seen[1], r#""State""#);
}

#[tokio::test]
async fn a_current_shim_is_asked_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sock = dir.path().join("sock");
    let listener = UnixListener::bind(&sock).expect("bind");
    let shim = std::thread::spawn(move || {
        let (conn, _) = listener.accept().expect("accept");
        let mut write = conn.try_clone().expect("clone");
        let mut line = String::new();
        BufReader::new(conn).read_line(&mut line).expect("line");
        let req: ShimRequest = serde_json::from_str(&line).expect("a request");
        writeln!(write, "{}", serde_json::to_string(&ShimResponse::Pids(vec![3])).expect("json"))
            .expect("answer");
        req
    });
    let answer = super::call(&sock, &ShimRequest::Ps).await.expect("answer");
    assert_eq!(answer, ShimResponse::Pids(vec![3]));
    let req = shim.join().expect("shim thread");
    // Sent with the protocol that introduced it: a protocol-1 shim answers it still.
    assert_eq!(req, ShimRequest::Versioned { protocol: 1, request: Box::new(ShimRequest::Ps) });
}

#[test]
fn a_request_is_sent_with_the_protocol_that_introduced_it() {
    assert_eq!(ShimRequest::State.protocol(), 1);
    assert_eq!(ShimRequest::Kill { exec_id: None, signal: 9, all: false }.protocol(), 1);
    assert_eq!(ShimRequest::ReopenLog.protocol(), 2);
    assert!(ShimRequest::ReopenLog.protocol() <= SHIM_PROTOCOL);
    assert_eq!(serde_json::to_string(&ShimRequest::ReopenLog).expect("json"), r#""ReopenLog""#);
}

#[test]
fn only_the_old_shims_refusal_of_versioned_counts_as_an_old_shim() {
    let old = serde_json::from_str::<OldRequest>(r#"{"Versioned":{"protocol":1,"request":"State"}}"#)
        .err()
        .map(|e| Error::invalid(format!("shim request: {e}")))
        .expect("old shims refuse it");
    assert!(super::is_unversioned_shim(&old), "{old}");
    assert!(!super::is_unversioned_shim(&Error::invalid("shim request: unknown variant `Bogus`")));
    assert!(!super::is_unversioned_shim(&Error::new(
        Code::FailedPrecondition,
        "unknown variant `Versioned`"
    )));
}
