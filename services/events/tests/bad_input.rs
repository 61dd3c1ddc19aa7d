//! Bad filters, unknown topics, oversized payloads: clear errors, service unaffected.

mod common;

use berth_ipc::Code;
use berth_ipc::events::payload::ContentCreate;
use berth_ipc::events::{NewEvent, Publish, PublishBatch, Since, Subscribe, topics};
use berth_service_kit::config::EventsConfig;
use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_clear_errors_and_the_service_goes_on() {
    let dir = tempfile::tempdir().expect("tempdir");
    let svc = start_in(dir.path(), EventsConfig::default()).await;
    let client = svc.client();

    let req = Subscribe { filters: vec!["topic=/tasks/exit".into()], since: Since::Live };
    let err = match client.stream(req).await.expect("stream starts").next().await {
        Some(Err(e)) => e,
        other => panic!("expected an error, got {other:?}"),
    };
    assert_eq!(err.code, Code::InvalidArgument);
    assert_eq!(err.message, r#"filter "topic=/tasks/exit": expected operator, found '=' at position 5"#);

    let mut unknown = content("default", 1);
    unknown.topic = "/tasks/teleported".into();
    let e = client
        .call(Publish { publisher: "p".into(), counter: 1, event: unknown })
        .await
        .expect_err("unknown");
    assert_eq!((e.code, e.message.as_str()), (Code::InvalidArgument, "topic /tasks/teleported: unknown"));

    let mut mismatched = content("default", 1);
    mismatched.topic = topics::IMAGE_CREATE.into();
    let e = client
        .call(Publish { publisher: "p".into(), counter: 1, event: mismatched })
        .await
        .expect_err("mismatch");
    assert_eq!(e.message, "event /images/create: payload is a ContentCreate (topic /content/create)");

    let big = NewEvent::new("default", ContentCreate { digest: "x".repeat(100_000), size: 0 });
    let batch =
        PublishBatch { publisher: "p".into(), first_counter: 1, events: vec![content("default", 0), big] };
    let e = client.call(batch).await.expect_err("too big");
    assert_eq!(e.code, Code::InvalidArgument);
    assert!(e.message.starts_with("publish batch: event 1: event /content/create: 100"), "{}", e.message);

    let e = client
        .call(Publish { publisher: String::new(), counter: 1, event: content("default", 0) })
        .await
        .expect_err("empty publisher");
    assert_eq!(e.code, Code::InvalidArgument);
    let e = client
        .call(Publish { publisher: "p".into(), counter: 1, event: content("bad namespace", 0) })
        .await
        .expect_err("namespace");
    assert_eq!(e.code, Code::InvalidArgument);

    // Nothing was stored; the service still works.
    let stats = client.call(berth_ipc::events::Stats).await.expect("stats");
    assert_eq!((stats.last, stats.count), (0, 0));
    assert_eq!(publish(&client, "p", 1, vec![content("default", 1)]).await, [1]);
    let (mut s, _, _) = subscribe(&client, &["topic==/content/create"], Since::Seq(1)).await;
    assert_contiguous(&events_until(&mut s, 1).await, 1, 1);
    svc.stop().await;
}
