//! The launcher reports what happens to services as events: `/services/started` for each at
//! boot, then `/services/exited` and `/services/restarted` when one is killed, all durable
//! and readable by a subscriber that replays from seq 1.

use std::time::Duration;

use berth_ipc::events::payload::Payload;
use berth_ipc::events::{Since, Subscribe, SubscribeItem};
use berth_system_tests::{Berth, SERVICES, block_on, signal};
use nix::sys::signal::Signal;

#[test]
fn service_lifecycle_is_published() {
    let mut berth = Berth::start();
    let old = berth.status("content").pid.expect("content runs");
    signal(old, Signal::SIGKILL);
    berth.wait_until("content back", Duration::from_secs(10), |l| {
        l.iter().any(|s| s.name == "content" && s.restarts == 1 && s.pid.is_some())
    });
    let clients = berth.clients(Duration::from_secs(10));
    let topics = block_on(async {
        let sub = Subscribe { filters: vec!["topic~=\"^/services/\"".into()], since: Since::Seq(1) };
        let mut stream = clients.events.stream(sub).await.expect("subscribe");
        let mut seen = Vec::new();
        let wanted = SERVICES.len() + 2;
        while seen.len() < wanted {
            let item = tokio::time::timeout(Duration::from_secs(10), stream.next())
                .await
                .unwrap_or_else(|_| panic!("timed out; saw {seen:#?}"));
            match item {
                Some(Ok(SubscribeItem::Event(env))) => {
                    assert_eq!(env.namespace, "berth.system");
                    let what = match &env.payload {
                        Payload::ServiceStarted(p) => format!("started {}", p.name),
                        Payload::ServiceExited(p) => format!("exited {} {}", p.name, p.status),
                        Payload::ServiceRestarted(p) => format!("restarted {} {}", p.name, p.restarts),
                        other => panic!("filter let through {other:?}"),
                    };
                    seen.push(what);
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => panic!("stream error: {e}"),
                None => panic!("stream ended; saw {seen:#?}"),
            }
        }
        seen
    });
    // The events service starts first, so its own /services/started may only reach the
    // log once it is up; every service's start is there, in start order.
    let started: Vec<_> = topics.iter().filter_map(|t| t.strip_prefix("started ")).collect();
    assert_eq!(started, SERVICES, "{topics:#?}");
    assert!(topics.contains(&"exited content signal 9 (SIGKILL)".to_string()), "{topics:#?}");
    assert!(topics.contains(&"restarted content 1".to_string()), "{topics:#?}");
}
