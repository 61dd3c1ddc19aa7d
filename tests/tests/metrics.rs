//! berthd's metrics: the Prometheus endpoint scraped with a plain TCP stream, and `berth
//! metrics`. Counters move with calls and errors, a killed service's restart counter goes
//! up, GC passes and the event log show, a running container's cgroup figures appear, and
//! a bad `[metrics] address` stops berthd with a clear error.

mod runtime_support;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use berth_ipc::launcher::ServiceState;
use berth_system_tests::{Berth, bin, signal};
use nix::sys::signal::Signal;
use runtime_support::{can_run, import_busybox, show, teardown};

/// A free TCP port on 127.0.0.1 (bound then released).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

/// Sends `request` and returns the status code, the headers and the body.
fn http(port: u16, request: &str) -> (u16, String, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect to the metrics endpoint");
    s.set_read_timeout(Some(Duration::from_secs(20))).expect("timeout");
    s.write_all(request.as_bytes()).expect("send");
    let mut raw = String::new();
    s.read_to_string(&mut raw).expect("read the response");
    let (head, body) = raw.split_once("\r\n\r\n").expect("a head and a body");
    let status = head.split(' ').nth(1).and_then(|c| c.parse().ok()).expect("status code");
    (status, head.to_string(), body.to_string())
}

fn scrape(port: u16) -> String {
    let (status, head, body) = http(port, "GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n");
    assert_eq!(status, 200, "{head}\n{body}");
    assert!(head.contains("Content-Type: text/plain; version=0.0.4"), "{head}");
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("Content-Length: "))
        .and_then(|v| v.trim().parse().ok())
        .expect("content length");
    assert_eq!(length, body.len());
    body
}

/// Checks `text` against the exposition format and returns every sample, keyed by
/// `name{labels}`, and the families declared.
fn parse(text: &str) -> (BTreeMap<String, f64>, BTreeSet<String>) {
    let mut samples = BTreeMap::new();
    let mut typed = BTreeMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("TYPE name kind");
            assert!(["counter", "gauge", "histogram"].contains(&kind), "{line}");
            assert!(
                typed.insert(name.to_string(), kind.to_string()).is_none(),
                "family declared twice: {line}"
            );
            continue;
        }
        if line.starts_with("# HELP ") {
            continue;
        }
        assert!(!line.starts_with('#') && !line.is_empty(), "stray line {line:?}");
        let (key, value) = line.rsplit_once(' ').expect("sample: name value");
        let name = key.split('{').next().expect("name");
        assert!(name.starts_with("berth_"), "{line}");
        assert!(name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'), "{line}");
        let labels = &key[name.len()..];
        if !labels.is_empty() {
            assert!(labels.starts_with('{') && labels.ends_with('}'), "{line}");
            for pair in labels[1..labels.len() - 1].split("\",") {
                let (k, v) = pair.split_once("=\"").expect("label k=\"v\"");
                assert!(k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'), "{line}");
                assert!(!v.contains('\n'), "{line}");
            }
        }
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s).filter(|f| typed.get(*f).is_some_and(|k| k == "histogram")))
            .unwrap_or(name);
        assert!(typed.contains_key(family), "sample before its TYPE: {line}");
        let v: f64 = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v.parse().unwrap_or_else(|_| panic!("bad value in {line:?}")),
        };
        assert!(samples.insert(key.to_string(), v).is_none(), "sample twice: {line}");
    }
    (samples, typed.into_keys().collect())
}

fn get(samples: &BTreeMap<String, f64>, key: &str) -> f64 {
    *samples
        .get(key)
        .unwrap_or_else(|| panic!("no sample {key}; have {:#?}", samples.keys().collect::<Vec<_>>()))
}

#[test]
fn endpoint_counts_calls_errors_restarts_gc_and_tasks() {
    let port = free_port();
    let mut berth = Berth::start_with(&format!("[metrics]\naddress = \"127.0.0.1:{port}\"\n"));
    // The launcher's service events reach the event log through its retrying publisher,
    // so they may land a moment after berthd answers.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let (before, families) = loop {
        let (samples, families) = parse(&scrape(port));
        let published = samples.get("berth_events_last_seq").is_some_and(|&s| s >= 5.0);
        if published || std::time::Instant::now() > deadline {
            break (samples, families);
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    for f in [
        "berth_launcher_uptime_seconds",
        "berth_service_state",
        "berth_service_restarts_total",
        "berth_service_up",
        "berth_requests_total",
        "berth_request_errors_total",
        "berth_request_duration_seconds",
        "berth_events_log_length",
        "berth_events_last_seq",
        "berth_gc_runs_total",
        "berth_gc_last_duration_seconds",
        "berth_scrape_duration_seconds",
    ] {
        assert!(families.contains(f), "family {f} missing: {families:?}");
    }
    for name in berth_system_tests::SERVICES.iter().chain(&["berthd"]) {
        assert_eq!(get(&before, &format!("berth_service_up{{service=\"{name}\"}}")), 1.0, "{name}");
    }
    assert_eq!(get(&before, "berth_service_state{service=\"content\",state=\"running\"}"), 1.0);
    assert!(get(&before, "berth_events_last_seq") >= 5.0, "the launcher published service events");

    // Three lease listings and one failed image removal.
    for _ in 0..3 {
        let o = berth.cli(&["leases", "ls"]);
        assert!(o.status.success(), "{}", show(&o));
    }
    let o = berth.cli(&["images", "rm", "no-such-image"]);
    assert!(!o.status.success(), "{}", show(&o));
    let o = berth.cli(&["gc"]);
    assert!(o.status.success(), "{}", show(&o));
    let (after, _) = parse(&scrape(port));
    let ns = "{service=\"metadata\",method=\"ListLeases\"}";
    let count = |m: &BTreeMap<String, f64>, k: &str| m.get(k).copied().unwrap_or(0.0);
    assert_eq!(
        count(&after, &format!("berth_requests_total{ns}"))
            - count(&before, &format!("berth_requests_total{ns}")),
        3.0
    );
    assert_eq!(
        get(&after, &format!("berth_request_duration_seconds_count{ns}")),
        get(&after, &format!("berth_requests_total{ns}"))
    );
    let errors: f64 = after
        .iter()
        .filter(|(k, _)| k.starts_with("berth_request_errors_total{service=\"metadata\""))
        .map(|(_, v)| v)
        .sum();
    assert!(errors >= 1.0, "the failed removal was counted as an error");
    assert_eq!(get(&after, "berth_gc_runs_total"), get(&before, "berth_gc_runs_total") + 1.0);
    assert!(get(&after, "berth_gc_last_duration_seconds") > 0.0);

    // A killed service: its restart counter goes up.
    let pid = berth.status("snapshot").pid.expect("snapshot runs");
    signal(pid, Signal::SIGKILL);
    berth.wait_until("snapshot restarted", Duration::from_secs(10), |l| {
        l.iter().any(|s| s.name == "snapshot" && s.state == ServiceState::Running && s.pid != Some(pid))
    });
    let (restarted, _) = parse(&scrape(port));
    let key = "berth_service_restarts_total{service=\"snapshot\"}";
    assert_eq!(get(&restarted, key), get(&before, key) + 1.0);
    assert!(get(&restarted, "berth_service_last_restart_seconds{service=\"snapshot\"}") > 0.0);

    // Not /metrics, not GET, not HTTP.
    assert_eq!(http(port, "GET / HTTP/1.1\r\n\r\n").0, 404);
    assert_eq!(http(port, "POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n").0, 405);
    assert_eq!(http(port, "hello\r\n\r\n").0, 400);
    let huge = format!("GET /metrics HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(10_000));
    assert_eq!(http(port, &huge).0, 431);
    let (status, _, body) = http(port, "HEAD /metrics HTTP/1.1\r\n\r\n");
    assert_eq!((status, body.as_str()), (200, ""));

    // `berth metrics` prints the same families in the same format.
    let o = berth.cli(&["metrics"]);
    assert!(o.status.success(), "{}", show(&o));
    let (cli_samples, cli_families) = parse(&String::from_utf8(o.stdout).expect("utf-8"));
    let (_, http_families) = parse(&scrape(port));
    assert_eq!(cli_families, http_families);
    assert!(cli_samples.contains_key(&format!("berth_requests_total{ns}")));

    // A running container's cgroup figures.
    if can_run("runc") {
        import_busybox(&berth, "tiny", serde_json::json!({"Cmd": ["sh"]}));
        let o = berth.cli(&["run", "-d", "tiny", "busy", "sh", "-c", "while :; do :; done"]);
        assert!(o.status.success(), "{}", show(&o));
        std::thread::sleep(Duration::from_millis(300));
        let (tasks, _) = parse(&scrape(port));
        let l = "{namespace=\"default\",container=\"busy\"}";
        assert!(get(&tasks, &format!("berth_task_pids{l}")) >= 1.0);
        assert!(get(&tasks, &format!("berth_task_cpu_seconds_total{l}")) > 0.0);
        assert!(get(&tasks, &format!("berth_task_memory_bytes{l}")) > 0.0);
        let o = berth.cli(&["tasks", "kill", "-s", "SIGKILL", "busy"]);
        assert!(o.status.success(), "{}", show(&o));
        teardown(&berth);
    }
}

#[test]
fn berth_metrics_works_without_the_endpoint() {
    let berth = Berth::start();
    let o = berth.cli(&["metrics"]);
    assert!(o.status.success(), "{}", show(&o));
    let (samples, _) = parse(&String::from_utf8(o.stdout).expect("utf-8"));
    assert_eq!(get(&samples, "berth_service_up{service=\"runtime\"}"), 1.0);
    assert!(get(&samples, "berth_launcher_uptime_seconds") > 0.0);
}

/// Runs berthd with `toml` until it exits (it must, within 10 s) and returns its status and
/// stderr.
fn berthd_fails_with(toml: &str) -> (std::process::ExitStatus, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("berth.toml");
    std::fs::write(&config, toml).expect("config");
    let mut child = std::process::Command::new(bin("berthd"))
        .arg("--root")
        .arg(dir.path().join("root"))
        .arg("--state")
        .arg(dir.path().join("state"))
        .arg("--config")
        .arg(&config)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn berthd");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while child.try_wait().expect("wait").is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("berthd kept running with {toml:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().expect("output");
    (out.status, String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn bad_metrics_address_is_a_clear_error() {
    let (status, err) = berthd_fails_with("[metrics]\naddress = \"localhost\"\n");
    assert!(!status.success());
    assert!(err.contains("[metrics] address \"localhost\": not an IP:PORT address"), "{err}");
    assert!(err.contains("berth.toml"), "names the file: {err}");

    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("addr").port();
    let (status, err) = berthd_fails_with(&format!("[metrics]\naddress = \"127.0.0.1:{port}\"\n"));
    assert!(!status.success());
    assert!(err.contains(&format!("bind the metrics endpoint 127.0.0.1:{port}")), "{err}");
}
