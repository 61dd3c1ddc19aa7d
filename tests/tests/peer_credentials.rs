//! A connection from a non-root uid outside the berth group is refused by the service
//! itself (SO_PEERCRED), even when file permissions would let it connect.

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::process::Command;

use berth_system_tests::{Berth, bin};

#[test]
fn stranger_uid_is_refused() {
    if !nix::unistd::geteuid().is_root() {
        println!("skipped: needs root to run a client as another uid");
        return;
    }
    let berth = Berth::start();
    // Open the file-system path so that only the peer check stands in the way.
    std::fs::set_permissions(berth.dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod dir");
    std::fs::set_permissions(berth.state.join("events.sock"), std::fs::Permissions::from_mode(0o666))
        .expect("chmod socket");
    let berth_bin = bin("berth");
    let mut dir = berth_bin.parent();
    while let Some(d) = dir {
        let mode = std::fs::metadata(d).map(|m| m.permissions().mode()).unwrap_or(0);
        if mode & 0o001 == 0 {
            println!("skipped: {} is not traversable by other users", d.display());
            return;
        }
        dir = d.parent();
    }
    let out = Command::new(&berth_bin)
        .arg("--state")
        .arg(&berth.state)
        .args(["--timeout", "2", "version"])
        .uid(65534)
        .gid(65534)
        .output()
        .expect("run berth as nobody");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "a stranger was served: {stdout}");
    let events_line = stdout.lines().find(|l| l.starts_with("events")).expect("events row");
    assert!(events_line.contains("not root and not in the berth group"), "{stdout}\n{stderr}");
    // Sockets it cannot even open (0600) fail at the file system.
    let content_line = stdout.lines().find(|l| l.starts_with("content")).expect("content row");
    assert!(content_line.to_lowercase().contains("permission denied"), "{stdout}");
}
