//! A fault storm must not leave services down: deaths of a process that had become ready
//! never count toward `failed`, and a service that is `failed` (it crashed at start-up too
//! often) is tried again on the slow schedule (`supervisor.failed_retry_s`), visible in
//! `services ls`, metrics and events, and recovers without an operator once the cause goes.

use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use berth_ipc::events::payload::Payload;
use berth_ipc::events::{Since, Subscribe, SubscribeItem};
use berth_ipc::launcher::ServiceState;
use berth_system_tests::{Berth, block_on, signal};
use nix::sys::signal::Signal;

#[test]
fn kills_of_a_serving_process_never_mark_it_failed() {
    // Limit 2 failed starts in 60 s; kill a working content service six times in a row.
    let mut berth = Berth::start_with("[supervisor]\nmax_restarts = 2\nrestart_window_s = 60\n");
    for round in 1..=6u32 {
        let st = berth.wait_until("content running", Duration::from_secs(20), |l| {
            l.iter()
                .any(|s| s.name == "content" && s.state == ServiceState::Running && s.restarts == round - 1)
        });
        let pid = st.iter().find(|s| s.name == "content").and_then(|s| s.pid).expect("content pid");
        signal(pid, Signal::SIGKILL);
    }
    let list = berth.wait_until("content back after six kills", Duration::from_secs(20), |l| {
        l.iter().any(|s| s.name == "content" && s.state == ServiceState::Running && s.restarts == 6)
    });
    let content = list.iter().find(|s| s.name == "content").expect("listed");
    assert_eq!(content.next_retry_ms, None, "{content:?}");
    let clients = berth.clients(Duration::from_secs(5));
    block_on(clients.content.health()).expect("content answers after six kills");
}

#[test]
fn failed_service_is_retried_slowly_and_recovers_once_the_cause_goes() {
    let fake = tempfile::tempdir().expect("tempdir");
    let cause = fake.path().join("broken");
    std::fs::write(&cause, "").expect("write cause");
    let wrapper = fake.path().join("content");
    let script = format!(
        "#!/bin/sh\nif [ -e {} ]; then echo 'store unavailable' >&2; exit 3; fi\nexec {} \"$@\"\n",
        cause.display(),
        berth_system_tests::bin("berth-content").display()
    );
    std::fs::write(&wrapper, script).expect("write wrapper");
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let toml = format!(
        "[supervisor]\nmax_restarts = 2\nrestart_window_s = 60\nfailed_retry_s = 2\n\n\
         [services.content]\nbinary = \"{}\"\n",
        wrapper.display()
    );
    let mut berth = Berth::start_with(&toml);
    let list = berth.wait_until("content failed", Duration::from_secs(20), |l| {
        l.iter().any(|s| s.name == "content" && s.state == ServiceState::Failed)
    });
    let content = list.iter().find(|s| s.name == "content").expect("listed");
    let next = content.next_retry_ms.expect("a failed service has a next retry");
    assert!(next <= 2000, "{content:?}");

    // Visible in the table and in metrics.
    let out = berth.cli(&["services", "ls"]);
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.contains("NEXT RETRY"), "{table}");
    assert!(
        table.lines().any(|l| l.starts_with("content") && l.contains("failed") && l.contains("in ")),
        "{table}"
    );
    let clients = berth.clients(Duration::from_secs(2));
    let metrics = block_on(clients.launcher.call(berth_ipc::launcher::ScrapeMetrics)).expect("metrics");
    assert!(metrics.contains("berth_service_next_retry_seconds{service=\"content\"}"), "{metrics}");

    // While the cause is there, it keeps failing on the slow schedule: still failed after
    // two more retries, each announced.
    let retried = block_on(retries(&clients, 2));
    assert_eq!(retried, vec![1, 2]);
    // The second retry's attempt may still be starting when its event arrives: it must end
    // failed again.
    berth.wait_until("content failed again", Duration::from_secs(10), |l| {
        l.iter().any(|s| s.name == "content" && s.state == ServiceState::Failed)
    });

    // Remove the cause: the next retry brings it back, with nobody acting.
    std::fs::remove_file(&cause).expect("remove cause");
    let t = Instant::now();
    let list = berth.wait_until("content recovered", Duration::from_secs(15), |l| {
        l.iter().any(|s| s.name == "content" && s.state == ServiceState::Running)
    });
    let content = list.iter().find(|s| s.name == "content").expect("listed");
    assert_eq!(content.next_retry_ms, None, "{content:?}");
    assert!(t.elapsed() < Duration::from_secs(5), "took {:?}", t.elapsed());
    block_on(clients.content.health()).expect("content answers after recovering");
}

/// Waits for the first `n` `/services/retrying` events of content; their attempt numbers.
async fn retries(clients: &berth_client::Services, n: usize) -> Vec<u32> {
    let sub = Subscribe { filters: vec!["topic==\"/services/retrying\"".into()], since: Since::Seq(1) };
    let mut stream = clients.events.stream(sub).await.expect("subscribe");
    let mut seen = Vec::new();
    while seen.len() < n {
        let item = tokio::time::timeout(Duration::from_secs(10), stream.next())
            .await
            .unwrap_or_else(|_| panic!("timed out; saw {seen:?}"));
        match item {
            Some(Ok(SubscribeItem::Event(env))) => match env.payload {
                Payload::ServiceRetrying(p) if p.name == "content" => seen.push(p.attempt),
                other => panic!("filter let through {other:?}"),
            },
            Some(Ok(_)) => {}
            Some(Err(e)) => panic!("stream error: {e}"),
            None => panic!("stream ended; saw {seen:?}"),
        }
    }
    seen
}
