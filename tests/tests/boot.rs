//! Boot berthd on a temp root: every service answers, `berth services ls` shows five running,
//! the CLI's outputs are what a user expects, and SIGTERM stops everything cleanly.

use std::time::Duration;

use berth_ipc::launcher::ServiceState;
use berth_system_tests::{Berth, SERVICES, block_on, pid_alive};

#[test]
fn boot_answer_and_stop() {
    let mut berth = Berth::start();
    let list = berth.list();
    let names: Vec<_> = list.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, SERVICES);
    assert!(list.iter().all(|s| s.state == ServiceState::Running && s.pid.is_some()), "{list:#?}");

    // Every service answers Health itself, with the pid the launcher reports.
    let clients = berth.clients(Duration::from_secs(5));
    for (name, health) in block_on(clients.health_all()) {
        let health = health.unwrap_or_else(|e| panic!("{name} health: {e}"));
        assert_eq!(health.name, name);
        let listed = list.iter().find(|s| s.name == name).and_then(|s| s.pid);
        assert_eq!(Some(health.pid), listed, "{name}");
    }

    // `berth services ls --format json`: an array of objects with the documented fields.
    let out = berth.cli(&["services", "ls", "--format", "json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let arr = json.as_array().expect("array");
    assert_eq!(arr.len(), SERVICES.len());
    for obj in arr {
        for key in ["name", "pid", "state", "restarts", "uptime_s", "last_exit"] {
            assert!(obj.get(key).is_some(), "missing {key} in {obj}");
        }
        assert_eq!(obj["state"], "running");
    }

    // The table form and `berth version`.
    let out = berth.cli(&["services", "ls"]);
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.starts_with("NAME"), "{table}");
    assert_eq!(table.matches("running").count(), SERVICES.len(), "{table}");
    let out = berth.cli(&["version"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let version = String::from_utf8_lossy(&out.stdout);
    for name in SERVICES {
        assert!(version.contains(name), "{version}");
    }

    // Sockets and dirs have the documented modes.
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &std::path::Path| std::fs::metadata(p).expect("stat").permissions().mode() & 0o777;
    assert_eq!(mode(&berth.state), 0o711);
    assert_eq!(mode(&berth.root), 0o700);
    for name in SERVICES.iter().chain(&["berthd"]) {
        let m = mode(&berth.state.join(format!("{name}.sock")));
        assert!(m == 0o600 || m == 0o660, "{name}.sock mode {m:o}");
    }

    // SIGTERM: services stop in reverse order, sockets are removed, nothing lingers.
    let pids: Vec<u32> = list.iter().filter_map(|s| s.pid).collect();
    let status = berth.stop().expect("berthd exit status");
    assert!(status.success(), "berthd exited with {status}");
    for pid in pids {
        assert!(!pid_alive(pid), "service pid {pid} outlived berthd");
    }
    for name in SERVICES {
        assert!(!berth.state.join(format!("{name}.sock")).exists(), "{name}.sock left behind");
    }
    let log = berth.log();
    let order: Vec<usize> = SERVICES
        .iter()
        .map(|n| {
            log.find(&format!("stopping service=\"{n}\""))
                .unwrap_or_else(|| panic!("{n} not stopped:\n{log}"))
        })
        .collect();
    assert!(order.windows(2).all(|w| w[0] > w[1]), "not stopped in reverse order:\n{log}");
}

#[test]
fn config_default_is_printed() {
    let out = std::process::Command::new(berth_system_tests::bin("berthd"))
        .args(["config", "default"])
        .output()
        .expect("run berthd");
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("[supervisor]") && text.contains("max_restarts = 5"), "{text}");
    let out = std::process::Command::new(berth_system_tests::bin("berth"))
        .args(["config", "default"])
        .output()
        .expect("run berth");
    assert_eq!(String::from_utf8_lossy(&out.stdout), text);
}
