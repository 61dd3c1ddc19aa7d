//! A service that crashes at start-up again and again ends up `failed` after the restart
//! limit, while the others keep answering; `berth services start` brings it back once fixed.

use std::time::Duration;

use berth_ipc::launcher::ServiceState;
use berth_system_tests::{Berth, block_on};

#[test]
fn crash_looping_service_is_marked_failed() {
    let fake = tempfile::tempdir().expect("tempdir");
    let crasher = fake.path().join("crasher");
    std::fs::write(&crasher, "#!/bin/sh\necho 'cannot open store' >&2\nexit 3\n").expect("write script");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&crasher, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let toml = format!(
        "[supervisor]\nmax_restarts = 3\nrestart_window_s = 10\n\n[services.content]\nbinary = \"{}\"\n",
        crasher.display()
    );
    let mut berth = Berth::start_with(&toml);
    let list = berth.wait_until("content failed", Duration::from_secs(20), |l| {
        l.iter().any(|s| s.name == "content" && s.state == ServiceState::Failed)
    });
    let content = list.iter().find(|s| s.name == "content").expect("listed");
    assert_eq!(content.restarts, 3, "{content:?}");
    assert_eq!(content.pid, None);
    assert!(content.last_exit.as_deref().is_some_and(|e| e.contains("exit status 3")), "{content:?}");
    assert!(
        berth.log().lines().any(|l| l.contains("cannot open store") && l.ends_with(" service=content")),
        "service output not forwarded with its name"
    );

    // Everyone else runs and answers.
    for s in list.iter().filter(|s| s.name != "content") {
        assert_eq!(s.state, ServiceState::Running, "{s:?}");
    }
    let clients = berth.clients(Duration::from_secs(2));
    block_on(clients.events.health()).expect("events answers");
    block_on(clients.metadata.health()).expect("metadata answers");
    let err = block_on(clients.content.health()).expect_err("failed content cannot answer");
    assert_eq!(err.code, berth_ipc::Code::Unavailable, "{err}");

    // The table shows it too.
    let out = berth.cli(&["services", "ls"]);
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.lines().any(|l| l.starts_with("content") && l.contains("failed")), "{table}");

    // Fix the binary and start it by hand.
    std::fs::write(
        &crasher,
        format!("#!/bin/sh\nexec {} \"$@\"\n", berth_system_tests::bin("berth-content").display()),
    )
    .expect("fix script");
    let out = berth.cli(&["services", "start", "content"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    block_on(clients.content.health()).expect("content answers after a manual start");
}
