//! berthd's log: every service's output reaches it tagged with the service's name — a
//! `service=<name>` field in plain text, a top-level `"service"` key in JSON lines — and
//! `--log-format json` (or `[log] format = "json"`) makes every line a JSON object.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use berth_ipc::ClientOptions;
use berth_ipc::launcher::{Launcher, ListServices, ServiceState};
use berth_system_tests::{Berth, SERVICES, bin, block_on, pid_alive, signal};
use nix::sys::signal::Signal;

/// Each service logs `shutting down` on SIGTERM without a service field of its own: the
/// launcher must have added it.
const OWN_LINE: &str = "shutting down";

fn json_lines(log: &str) -> Vec<serde_json::Value> {
    log.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON line ({e}): {l:?}\nlog:\n{log}"))
        })
        .collect()
}

fn assert_json_tagged(log: &str) {
    let lines = json_lines(log);
    for line in &lines {
        assert!(line.is_object() && line["level"].is_string() && line["timestamp"].is_string(), "{line}");
    }
    for name in SERVICES {
        assert!(
            lines.iter().any(|l| l["message"] == OWN_LINE && l["service"] == name),
            "no {OWN_LINE:?} line with \"service\":\"{name}\" in\n{log}"
        );
    }
}

/// berthd with `--log-format json` and no config: started by hand, since the flag is the
/// subject; stopped with SIGTERM so every service logs its way out.
#[test]
fn log_format_json_flag_tags_every_service() {
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("state");
    let log_path = dir.path().join("berthd.log");
    let log = std::fs::File::create(&log_path).expect("log");
    let child = Command::new(bin("berthd"))
        .arg("--root")
        .arg(dir.path().join("root"))
        .arg("--state")
        .arg(&state)
        .arg("--log-format")
        .arg("json")
        .env("BERTH_LOG", "info")
        .env_remove("BERTH_LOG_FORMAT")
        .env_remove("BERTH_CONFIG")
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("fd"))
        .stderr(log)
        .spawn()
        .expect("spawn berthd");
    let mut guard = Launched { child, pids: Vec::new() };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        // A client per runtime: block_on's runtime ends with the call.
        let launcher = berth_ipc::Client::<Launcher>::in_state_dir(&state, ClientOptions::default());
        let list = block_on(launcher.call(ListServices)).unwrap_or_default();
        guard.pids.extend(list.iter().filter_map(|s| s.pid));
        if list.len() == SERVICES.len() && list.iter().all(|s| s.state == ServiceState::Running) {
            break;
        }
        assert!(Instant::now() < deadline, "services did not start:\n{}", read(&log_path));
        std::thread::sleep(Duration::from_millis(50));
    }
    let status = guard.stop();
    assert!(status.is_some_and(|s| s.success()), "berthd exit {status:?}");
    assert_json_tagged(&read(&log_path));
}

#[test]
fn log_format_json_from_the_config() {
    let mut berth = Berth::start_with("[log]\nformat = \"json\"\n");
    assert!(berth.stop().is_some_and(|s| s.success()));
    assert_json_tagged(&berth.log());
}

#[test]
fn plain_lines_carry_the_service_name() {
    let mut berth = Berth::start();
    assert!(berth.stop().is_some_and(|s| s.success()));
    let log = berth.log();
    for name in SERVICES {
        let tag = format!(" service={name}");
        assert!(
            log.lines().any(|l| l.contains(&format!(" INFO {OWN_LINE}")) && l.ends_with(&tag)),
            "no {OWN_LINE:?} line ending in {tag:?} in\n{log}"
        );
    }
    assert!(!log.lines().any(|l| l.trim_start().starts_with('{')), "JSON in a plain log:\n{log}");
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// berthd started by hand: stopped and its services killed however the test ends.
struct Launched {
    child: Child,
    pids: Vec<u32>,
}

impl Launched {
    fn stop(&mut self) -> Option<std::process::ExitStatus> {
        signal(self.child.id(), Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        None
    }
}

impl Drop for Launched {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        for pid in &self.pids {
            if pid_alive(*pid) {
                signal(*pid, Signal::SIGKILL);
            }
        }
    }
}
