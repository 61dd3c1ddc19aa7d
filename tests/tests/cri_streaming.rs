//! `berth-cri`'s streaming server, driven as `kubectl` drives the kubelet's: URLs from the
//! CRI's `Exec`, `Attach` and `PortForward`, an HTTP/1.1 upgrade to SPDY/3.1 written by
//! hand, then the Kubernetes stream conventions over a berth-spdy client session.
//!
//! - exec without a terminal: stdout and stderr apart, the exit code in a `metav1.Status`
//!   (runc and crun), a command that cannot start; stdin copied through `cat`, 200 KB and
//!   its end; 3 MB of output, all before the status;
//! - exec with a terminal: a resize reaches the pty (`stty size`), Ctrl-D ends it;
//! - attach to a container's init: what is written to its stdin comes back; the client
//!   ending its input or vanishing leaves the container and its stdin for the next attach,
//!   unless it was created with `stdin_once`, when the init gets the end of input;
//! - port-forward into a loopback-only pod: an HTTP request to a server on the pod's
//!   127.0.0.1, and "error forwarding port" for a port nothing listens on;
//! - tokens and bad requests: a URL works once, unknown tokens are 404, no `Upgrade` is 400,
//!   an unknown protocol 403; the RPC refuses tty with stderr and a container not running;
//! - a client that vanishes: its exec is killed;
//! - `berth-cri` SIGKILLed: a URL from before is dead, a new one works.

mod runtime_support;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use berth_ipc::launcher::ServiceState;
use berth_system_tests::cri::{CriClient, block_on};
use berth_system_tests::dist::Registry;
use berth_system_tests::streaming::{self, Exec, forward_pair, read_all, read_until, upgrade};
use berth_system_tests::{Berth, processes_with, signal};
use k8s_cri::v1 as cri;
use nix::sys::signal::Signal;
use runtime_support::{can_run, import_busybox};

const LIMIT: Duration = Duration::from_secs(20);

fn pod_config(name: &str) -> cri::PodSandboxConfig {
    cri::PodSandboxConfig {
        metadata: Some(cri::PodSandboxMetadata {
            name: name.into(),
            uid: format!("uid-strm-{name}"),
            namespace: "default".into(),
            attempt: 0,
        }),
        hostname: format!("strm-{name}"),
        ..Default::default()
    }
}

/// A container's stdin.
#[derive(Clone, Copy, PartialEq)]
enum Stdin {
    None,
    /// Open for every attach.
    Open,
    /// Closed when the first attach ends its input.
    Once,
}

/// Runs pod `name` with `handler` and in it a container running `cmd`, started when
/// `start`: the pod's id and the container's.
async fn pod_with(
    c: &mut CriClient,
    image: &str,
    name: &str,
    handler: &str,
    cmd: &[&str],
    stdin: Stdin,
    start: bool,
) -> (String, String) {
    let run = cri::RunPodSandboxRequest { config: Some(pod_config(name)), runtime_handler: handler.into() };
    let pod = c.rt.run_pod_sandbox(run).await.expect("run pod").into_inner().pod_sandbox_id;
    let config = cri::ContainerConfig {
        metadata: Some(cri::ContainerMetadata { name: "main".into(), attempt: 0 }),
        image: Some(cri::ImageSpec { image: image.into(), ..Default::default() }),
        command: cmd.iter().map(|s| s.to_string()).collect(),
        stdin: stdin != Stdin::None,
        stdin_once: stdin == Stdin::Once,
        labels: HashMap::new(),
        ..Default::default()
    };
    let create = cri::CreateContainerRequest {
        pod_sandbox_id: pod.clone(),
        config: Some(config),
        sandbox_config: Some(pod_config(name)),
    };
    let id = c.rt.create_container(create).await.expect("create").into_inner().container_id;
    if start {
        c.rt.start_container(cri::StartContainerRequest { container_id: id.clone() }).await.expect("start");
    }
    (pod, id)
}

async fn exec_url(c: &mut CriClient, id: &str, cmd: &[&str], tty: bool, stdin: bool, stderr: bool) -> String {
    let req = cri::ExecRequest {
        container_id: id.into(),
        cmd: cmd.iter().map(|s| s.to_string()).collect(),
        tty,
        stdin,
        stdout: true,
        stderr,
    };
    c.rt.exec(req).await.expect("exec").into_inner().url
}

fn exit_code(status: &serde_json::Value) -> Option<&str> {
    status["details"]["causes"][0]["message"].as_str()
}

/// Exec without a terminal: the output streams apart and the exit status.
async fn exec_non_tty(c: &mut CriClient, id: &str, handler: &str) {
    let url = exec_url(c, id, &["sh", "-c", "echo out; echo err >&2; exit 3"], false, false, true).await;
    let mut e = Exec::connect(&url, false, false, true, true).await;
    assert_eq!(e.protocol, "v4.channel.k8s.io");
    let (out, err, status) = e.collect(LIMIT).await;
    assert_eq!(String::from_utf8_lossy(&out), "out\n", "{handler}");
    assert_eq!(String::from_utf8_lossy(&err), "err\n", "{handler}");
    assert_eq!(status["status"], "Failure", "{handler}: {status}");
    assert_eq!(status["reason"], "NonZeroExitCode", "{handler}: {status}");
    assert_eq!(exit_code(&status), Some("3"), "{handler}: {status}");

    let url = exec_url(c, id, &["sh", "-c", "echo fine"], false, false, true).await;
    let mut e = Exec::connect(&url, false, false, true, true).await;
    let (out, err, status) = e.collect(LIMIT).await;
    assert_eq!((out.as_slice(), err.as_slice()), (&b"fine\n"[..], &b""[..]), "{handler}");
    assert_eq!(status, serde_json::json!({"metadata": {}, "status": "Success"}), "{handler}");

    // A command that cannot start: a Failure naming it, no output.
    let url = exec_url(c, id, &["/no/such/binary-strm"], false, false, true).await;
    let mut e = Exec::connect(&url, false, false, true, true).await;
    let (out, _, status) = e.collect(LIMIT).await;
    assert!(out.is_empty(), "{handler}: {out:?}");
    assert_eq!(status["status"], "Failure", "{handler}: {status}");
    let message = status["message"].as_str().unwrap_or_default();
    assert!(message.contains("/no/such/binary-strm"), "{handler}: {status}");
}

#[test]
fn exec_attach_and_port_forward_over_spdy() {
    if !can_run("runc") || !can_run("crun") {
        return;
    }
    let mut berth = Berth::start();
    let reg = Registry::start(None);
    import_busybox(&berth, "strmsrc", serde_json::json!({"Cmd": ["sh"], "User": "0"}));
    let (image, mut c) = CriClient::pulled(&berth, &reg, "strmsrc", "1");
    let sleeper = ["sh", "-c", "while :; do sleep 0.2; done"];
    let (pod, id) = block_on(pod_with(&mut c, &image, "exec", "runc", &sleeper, Stdin::None, true));
    let (crun_pod, crun_id) =
        block_on(pod_with(&mut c, &image, "exec-crun", "crun", &sleeper, Stdin::None, true));

    // 1. Exec without a terminal, on both runtimes.
    block_on(exec_non_tty(&mut c, &id, "runc"));
    block_on(exec_non_tty(&mut c, &crun_id, "crun"));

    // 2. Stdin through cat, all of it, then its end ends cat.
    block_on(async {
        let url = exec_url(&mut c, &id, &["cat"], false, true, false).await;
        let mut e = Exec::connect(&url, false, true, true, false).await;
        let data: Vec<u8> = (0..200 * 1024u32).map(|i| (i % 251) as u8).collect();
        let mut stdin = e.stdin.take().expect("stdin");
        let input = data.clone();
        let writer = tokio::spawn(async move {
            stdin.write(&input).await.expect("write stdin");
            stdin.finish().await.expect("finish stdin");
            stdin
        });
        let (out, _, status) = e.collect(LIMIT).await;
        drop(writer.await.expect("writer"));
        assert_eq!(out.len(), data.len(), "bytes back from cat");
        assert!(out == data, "cat gave back other bytes");
        assert_eq!(status["status"], "Success", "{status}");

        // Output far past any one window or frame, all of it before the status.
        let url = exec_url(&mut c, &id, &["head", "-c", "3000000", "/dev/zero"], false, false, false).await;
        let mut e = Exec::connect(&url, false, false, true, false).await;
        let (out, _, status) = e.collect(LIMIT).await;
        assert_eq!(out.len(), 3_000_000, "bytes of head -c");
        assert!(out.iter().all(|b| *b == 0));
        assert_eq!(status["status"], "Success", "{status}");
    });

    // 2b. The same over WebSocket (v5.channel.k8s.io): a channel byte per message, v5's
    // close of stdin, the status on channel 3, then a normal closure.
    block_on(async {
        use futures_util::{SinkExt, StreamExt};
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        use tokio_tungstenite::tungstenite::{Bytes, Message};
        let url = exec_url(&mut c, &id, &["sh", "-c", "cat; echo err >&2; exit 3"], false, true, true).await;
        let mut req = url.replacen("http://", "ws://", 1).into_client_request().expect("request");
        req.headers_mut().insert("Sec-WebSocket-Protocol", "v5.channel.k8s.io".parse().expect("header"));
        let addr = url.trim_start_matches("http://").split('/').next().expect("host:port").to_string();
        let tcp = tokio::net::TcpStream::connect(&addr).await.expect("connect");
        let (mut ws, resp) = tokio_tungstenite::client_async(req, tcp).await.expect("WebSocket upgrade");
        assert_eq!(
            resp.headers().get("sec-websocket-protocol").and_then(|v| v.to_str().ok()),
            Some("v5.channel.k8s.io")
        );
        ws.send(Message::Binary(Bytes::from_static(b"\x00hello over ws\n"))).await.expect("stdin");
        ws.send(Message::Binary(Bytes::from_static(b"\xff\x00"))).await.expect("close stdin");
        let (mut out, mut err, mut status) = (Vec::new(), Vec::new(), Vec::new());
        let read = async {
            while let Some(Ok(m)) = ws.next().await {
                match m {
                    Message::Binary(d) => match d.split_first() {
                        Some((1, rest)) => out.extend_from_slice(rest),
                        Some((2, rest)) => err.extend_from_slice(rest),
                        Some((3, rest)) => status.extend_from_slice(rest),
                        _ => {}
                    },
                    Message::Close(_) => break,
                    _ => {}
                }
            }
        };
        tokio::time::timeout(LIMIT, read).await.expect("the session ends in time");
        assert_eq!(String::from_utf8_lossy(&out), "hello over ws\n");
        assert_eq!(String::from_utf8_lossy(&err), "err\n");
        let status: serde_json::Value = serde_json::from_slice(&status).expect("status JSON");
        assert_eq!(status["reason"], "NonZeroExitCode", "{status}");
        assert_eq!(status["details"]["causes"][0]["message"], "3", "{status}");
    });

    // 3. A terminal: the size sent on the resize stream is the pty's.
    block_on(async {
        let url =
            exec_url(&mut c, &id, &["sh", "-c", "while read x; do stty size; done"], true, true, false).await;
        let mut e = Exec::connect(&url, true, true, true, false).await;
        assert!(e.stderr.is_none());
        let mut resize = e.resize.take().expect("resize");
        resize.write(br#"{"Width":100,"Height":40}"#).await.expect("resize");
        let mut stdin = e.stdin.take().expect("stdin");
        let mut stdout = e.stdout.take().expect("stdout");
        // The resize and the input travel apart: ask again until the size has arrived.
        let deadline = Instant::now() + LIMIT;
        let mut seen = Vec::new();
        loop {
            stdin.write(b"\n").await.expect("stdin");
            seen.extend(read_until(&mut stdout, b"40 100", Duration::from_millis(300)).await);
            if seen.windows(6).any(|w| w == b"40 100") {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "no \"40 100\" from stty: {:?}",
                String::from_utf8_lossy(&seen)
            );
        }
        // Ctrl-D: end of input on the terminal, so the loop ends.
        stdin.write(b"\x04").await.expect("stdin");
        let (rest, status) = tokio::time::timeout(LIMIT, async {
            tokio::join!(read_all(&mut stdout), read_all(&mut e.error))
        })
        .await
        .expect("the terminal exec did not end");
        let status: serde_json::Value = serde_json::from_slice(&status).expect("status");
        assert_eq!(status["status"], "Success", "{status}; output {:?}", String::from_utf8_lossy(&rest));
    });

    // 4. Attach to an init reading its stdin (stdin_once unset): what is written comes back;
    // the client ending its stdin, or vanishing, leaves the container running with its stdin
    // open for the next attach.
    block_on(async {
        let (apod, aid) = pod_with(&mut c, &image, "attach", "runc", &["cat"], Stdin::Open, true).await;
        for (word, vanish) in [("first-word\n", false), ("second-word\n", true)] {
            let req = cri::AttachRequest {
                container_id: aid.clone(),
                stdin: true,
                tty: false,
                stdout: true,
                stderr: true,
            };
            let url = c.rt.attach(req).await.expect("attach").into_inner().url;
            assert!(url.contains("/attach/"), "{url}");
            let mut e = Exec::connect(&url, false, true, true, true).await;
            let mut stdin = e.stdin.take().expect("stdin");
            stdin.write(word.as_bytes()).await.expect("stdin");
            let mut stdout = e.stdout.take().expect("stdout");
            let seen = read_until(&mut stdout, word.as_bytes(), LIMIT).await;
            assert!(
                seen.windows(word.len()).any(|w| w == word.as_bytes()),
                "attach stdout: {:?}",
                String::from_utf8_lossy(&seen)
            );
            if !vanish {
                stdin.finish().await.expect("finish stdin");
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
            drop((stdin, stdout, e));
            tokio::time::sleep(Duration::from_millis(500)).await;
            let st = c
                .rt
                .container_status(cri::ContainerStatusRequest { container_id: aid.clone(), verbose: false });
            let st = st.await.expect("status").into_inner().status.expect("status");
            assert_eq!(
                st.state,
                cri::ContainerState::ContainerRunning as i32,
                "after an attach {}: {st:?}",
                if vanish { "vanished" } else { "ended its stdin" }
            );
        }
        remove_pod(&mut c, &apod).await;

        // With stdin_once the attach's end of input is the init's: cat ends, and the status
        // says so.
        let (opod, oid) = pod_with(&mut c, &image, "attach-once", "runc", &["cat"], Stdin::Once, true).await;
        let req = cri::AttachRequest {
            container_id: oid.clone(),
            stdin: true,
            tty: false,
            stdout: true,
            stderr: false,
        };
        let url = c.rt.attach(req).await.expect("attach").into_inner().url;
        let mut e = Exec::connect(&url, false, true, true, false).await;
        let mut stdin = e.stdin.take().expect("stdin");
        stdin.write(b"only-word\n").await.expect("stdin");
        stdin.finish().await.expect("finish stdin");
        let (out, _, status) = e.collect(LIMIT).await;
        assert!(
            String::from_utf8_lossy(&out).ends_with("only-word\n"),
            "{:?}",
            String::from_utf8_lossy(&out)
        );
        assert_eq!(status["status"], "Success", "{status}");
        let st =
            c.rt.container_status(cri::ContainerStatusRequest { container_id: oid.clone(), verbose: false });
        let st = st.await.expect("status").into_inner().status.expect("status");
        assert_eq!(st.state, cri::ContainerState::ContainerExited as i32, "{st:?}");
        remove_pod(&mut c, &opod).await;
    });

    // 5. Port-forward into a loopback-only pod.
    block_on(async {
        let script = "mkdir -p /tmp/www && echo hello-from-the-pod > /tmp/www/index.html && \
                      exec httpd -f -p 127.0.0.1:8080 -h /tmp/www";
        let (ppod, _) =
            pod_with(&mut c, &image, "pf", "runc", &["sh", "-c", script], Stdin::None, true).await;
        let req = cri::PortForwardRequest { pod_sandbox_id: ppod.clone(), port: vec![8080] };
        let url = c.rt.port_forward(req).await.expect("port forward").into_inner().url;
        let (proto, session) = upgrade(&url, &["portforward.k8s.io"], true).await;
        assert_eq!(proto, "portforward.k8s.io");
        // httpd may not listen yet: a fresh pair per try.
        let deadline = Instant::now() + LIMIT;
        let mut request = 0;
        let answer = loop {
            request += 1;
            let (mut error, mut data) = forward_pair(&session, 8080, request).await;
            data.write(b"GET /index.html HTTP/1.0\r\n\r\n").await.expect("data");
            let (answer, err) = tokio::time::timeout(LIMIT, async {
                tokio::join!(read_all(&mut data), read_all(&mut error))
            })
            .await
            .expect("the forwarded connection did not end");
            if !answer.is_empty() {
                assert!(err.is_empty(), "{}", String::from_utf8_lossy(&err));
                break String::from_utf8_lossy(&answer).into_owned();
            }
            assert!(Instant::now() < deadline, "no answer from httpd: {}", String::from_utf8_lossy(&err));
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        assert!(answer.starts_with("HTTP/1.") && answer.contains(" 200 "), "{answer}");
        assert!(answer.ends_with("hello-from-the-pod\n"), "{answer}");
        // Two connections at once on the session, each its own pair by request id.
        let (mut e1, mut d1) = forward_pair(&session, 8080, 100).await;
        let (mut e2, mut d2) = forward_pair(&session, 8080, 101).await;
        d2.write(b"GET /index.html HTTP/1.0\r\n\r\n").await.expect("data");
        // This client ends its side at once: the pod's answer must still come back.
        d2.finish().await.expect("finish data");
        d1.write(b"GET /missing.html HTTP/1.0\r\n\r\n").await.expect("data");
        let (a1, a2, r1, r2) = tokio::time::timeout(LIMIT, async {
            tokio::join!(read_all(&mut d1), read_all(&mut d2), read_all(&mut e1), read_all(&mut e2))
        })
        .await
        .expect("two forwarded connections did not end");
        let (a1, a2) = (String::from_utf8_lossy(&a1), String::from_utf8_lossy(&a2));
        assert!(r1.is_empty() && r2.is_empty(), "{r1:?} {r2:?}");
        assert!(a1.starts_with("HTTP/1.1 404 ") && !a1.contains("hello-from-the-pod"), "missing: {a1}");
        assert!(a2.ends_with("hello-from-the-pod\n"), "GET: {a2}");
        // Nothing listens on 8099.
        let (mut error, mut data) = forward_pair(&session, 8099, request + 1).await;
        let (answer, err) =
            tokio::time::timeout(LIMIT, async { tokio::join!(read_all(&mut data), read_all(&mut error)) })
                .await
                .expect("the failed forward did not end");
        let err = String::from_utf8_lossy(&err);
        assert!(answer.is_empty(), "{answer:?}");
        assert!(err.contains("error forwarding port 8099"), "{err}");
        drop(session);
        remove_pod(&mut c, &ppod).await;
    });

    // 6. Tokens and bad requests.
    block_on(async {
        let url = exec_url(&mut c, &id, &["true"], false, false, false).await;
        let mut e = Exec::connect(&url, false, false, true, false).await;
        let (_, _, status) = e.collect(LIMIT).await;
        assert_eq!(status["status"], "Success", "{status}");
        drop(e);
        let mut j = String::new();
        let up = streaming::upgrade_headers(&["v4.channel.k8s.io"], false, &mut j);
        let (head, _) = streaming::request(&url, &up).await.expect("second use");
        assert_eq!(head.status, 404, "a URL used twice: {}", head.text);

        let token = url.rsplit('/').next().expect("token");
        let unknown = url.replace(token, &"0".repeat(token.len()));
        let (head, _) = streaming::request(&unknown, &up).await.expect("unknown token");
        assert_eq!(head.status, 404, "an unknown token: {}", head.text);

        // An exec token under /attach/ is not found (and is spent).
        let url = exec_url(&mut c, &id, &["true"], false, false, false).await;
        let (head, _) = streaming::request(&url.replace("/exec/", "/attach/"), &up).await.expect("attach");
        assert_eq!(head.status, 404, "an exec token under /attach/: {}", head.text);

        // Offered as one comma list, unknown first: the first known one is chosen.
        let url = exec_url(&mut c, &id, &["echo", "listed"], false, false, false).await;
        let (proto, session) =
            upgrade(&url, &["v9.bogus", "v4.channel.k8s.io", "v3.channel.k8s.io"], true).await;
        assert_eq!(proto, "v4.channel.k8s.io");
        drop(session);

        let url = exec_url(&mut c, &id, &["true"], false, false, false).await;
        let (head, _) = streaming::request(&url, &[("Connection", "close")]).await.expect("no upgrade");
        assert_eq!(head.status, 400, "no Upgrade: {}", head.text);

        let url = exec_url(&mut c, &id, &["true"], false, false, false).await;
        let bogus = streaming::upgrade_headers(&["v9.bogus"], false, &mut j);
        let (head, _) = streaming::request(&url, &bogus).await.expect("bogus protocol");
        assert_eq!(head.status, 403, "an unknown protocol: {}", head.text);

        let req = cri::ExecRequest {
            container_id: id.clone(),
            cmd: vec!["true".into()],
            tty: true,
            stdin: false,
            stdout: true,
            stderr: true,
        };
        let e = c.rt.exec(req).await.expect_err("tty with stderr");
        assert_eq!(e.code(), tonic::Code::InvalidArgument, "{e:?}");
        let (npod, created) =
            pod_with(&mut c, &image, "notrunning", "runc", &["true"], Stdin::None, false).await;
        let req = cri::ExecRequest {
            container_id: created.clone(),
            cmd: vec!["true".into()],
            tty: false,
            stdin: false,
            stdout: true,
            stderr: false,
        };
        let e = c.rt.exec(req).await.expect_err("a container not running");
        assert_eq!(e.code(), tonic::Code::FailedPrecondition, "{e:?}");
        remove_pod(&mut c, &npod).await;
    });

    // 7. A client that vanishes: the server kills its exec (runc without a terminal, crun
    // with one).
    for (ctr, arg, tty) in [(&id, "9137", false), (&crun_id, "9138", true)] {
        block_on(async {
            let url = exec_url(&mut c, ctr, &["sleep", arg], tty, tty, false).await;
            let e = Exec::connect(&url, tty, tty, true, false).await;
            let needle = format!("sleep\0{arg}");
            let deadline = Instant::now() + LIMIT;
            while processes_with(&needle).is_empty() {
                assert!(Instant::now() < deadline, "the exec never started");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            drop(e);
            let deadline = Instant::now() + LIMIT;
            while !processes_with(&needle).is_empty() {
                assert!(
                    Instant::now() < deadline,
                    "the exec outlived its client: {:?}",
                    processes_with(&needle)
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        });
    }

    // 8. berth-cri SIGKILLed: a URL from before it died is dead; a new one works.
    let stale = block_on(exec_url(&mut c, &id, &["true"], false, false, false));
    let before = berth.status("cri");
    signal(before.pid.expect("pid"), Signal::SIGKILL);
    berth.wait_until("cri back", Duration::from_secs(15), |l| {
        l.iter().any(|s| {
            s.name == "cri" && s.state == ServiceState::Running && s.pid.is_some() && s.pid != before.pid
        })
    });
    let mut c = block_on(CriClient::of(&berth));
    block_on(async {
        let mut j = String::new();
        let up = streaming::upgrade_headers(&["v4.channel.k8s.io"], false, &mut j);
        match streaming::request(&stale, &up).await {
            Ok((head, _)) => assert_eq!(head.status, 404, "a URL from before the kill: {}", head.text),
            Err(e) => eprintln!("the old address is gone: {e}"),
        }
        let deadline = Instant::now() + LIMIT;
        let url = loop {
            match c
                .rt
                .exec(cri::ExecRequest {
                    container_id: id.clone(),
                    cmd: vec!["echo".into(), "again".into()],
                    tty: false,
                    stdin: false,
                    stdout: true,
                    stderr: false,
                })
                .await
            {
                Ok(r) => break r.into_inner().url,
                Err(e) => {
                    assert!(Instant::now() < deadline, "no Exec after the restart: {e:?}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        };
        let mut e = Exec::connect(&url, false, false, true, false).await;
        let (out, _, status) = e.collect(LIMIT).await;
        assert_eq!(out, b"again\n");
        assert_eq!(status["status"], "Success", "{status}");
        remove_pod(&mut c, &pod).await;
        remove_pod(&mut c, &crun_pod).await;
    });
    drop(reg);
    berth.teardown();
}

async fn remove_pod(c: &mut CriClient, pod: &str) {
    let stop = cri::StopPodSandboxRequest { pod_sandbox_id: pod.into() };
    c.rt.stop_pod_sandbox(stop).await.expect("stop pod");
    let rm = cri::RemovePodSandboxRequest { pod_sandbox_id: pod.into() };
    c.rt.remove_pod_sandbox(rm).await.expect("remove pod");
}
