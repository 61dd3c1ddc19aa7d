//! A commit publishes `/content/create` and a delete `/content/delete`, through the events
//! service running beside content in the same state dir.

mod common;

use std::time::Duration;

use berth_ipc::content::Content;
use berth_ipc::content::proxy::ContentClient;
use berth_ipc::content::store::{ContentStore, ContentWriter};
use berth_ipc::events::payload::{ContentCreate, ContentDelete};
use berth_ipc::events::{Events, Payload, Since, Subscribe, SubscribeItem};
use berth_ipc::{Client, ClientOptions};
use berth_service_kit::ServiceEnv;
use tokio_util::sync::CancellationToken;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commit_and_delete_are_published() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = common::config(dir.path());
    std::fs::create_dir_all(&config.state).expect("state");
    let shutdown = CancellationToken::new();
    let mut tasks = Vec::new();
    for name in ["events", "content"] {
        let listener = berth_ipc::socket::bind(&config.socket(name), None).expect("bind");
        let env = ServiceEnv::new(name, config.clone());
        tasks.push(match name {
            "events" => tokio::spawn(berth_events::run(env, listener, shutdown.clone())),
            _ => tokio::spawn(berth_content::run(env, listener, shutdown.clone())),
        });
    }
    let options = ClientOptions { deadline: Duration::from_secs(5), client_name: "test".into() };
    let content = ContentClient::new(Client::<Content>::in_state_dir(&config.state, options.clone()));
    let events = Client::<Events>::in_state_dir(&config.state, options);

    let mut w = content.writer("evented", None, None).await.expect("open");
    w.write_at(0, b"event me".to_vec()).await.expect("write");
    let info = w.commit(None, None).await.expect("commit");
    content.delete(&info.digest).await.expect("delete");

    let sub = Subscribe { filters: vec!["topic~=^/content/".into()], since: Since::Seq(1) };
    let mut stream = events.stream(sub).await.expect("subscribe");
    let mut got = Vec::new();
    while got.len() < 2 {
        let item = tokio::time::timeout(Duration::from_secs(10), stream.next()).await;
        match item.expect("events arrive").expect("stream open").expect("item") {
            SubscribeItem::Event(env) => got.push(env.payload),
            SubscribeItem::Ready { .. } => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    let digest = info.digest.to_string();
    assert_eq!(got[0], Payload::from(ContentCreate { digest: digest.clone(), size: 8 }));
    assert_eq!(got[1], Payload::from(ContentDelete { digest }));
    drop(stream);
    shutdown.cancel();
    for t in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(10), t).await;
    }
}
