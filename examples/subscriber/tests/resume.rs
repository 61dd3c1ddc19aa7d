//! The example subscriber resumes after it stops and after the service restarts, seeing
//! every matching event exactly once.

use std::path::Path;
use std::time::Duration;

use berth_example_subscriber::{Options, follow, read_position};
use berth_ipc::events::payload::ContentCreate;
use berth_ipc::events::{Events, NewEvent, PublishBatch};
use berth_ipc::{Client, ClientOptions};
use berth_service_kit::{Config, ServiceEnv};
use tokio_util::sync::CancellationToken;

async fn start(dir: &Path) -> (CancellationToken, tokio::task::JoinHandle<anyhow::Result<()>>) {
    let config = Config {
        root: dir.join("root"),
        state: dir.join("state"),
        group: String::new(),
        ..Config::default()
    };
    std::fs::create_dir_all(&config.state).expect("state");
    let listener = berth_ipc::socket::bind(&config.socket("events"), None).expect("bind");
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(berth_events::run(ServiceEnv::new("events", config), listener, shutdown.clone()));
    (shutdown, task)
}

async fn publish(dir: &Path, counter: u64, n: u64) {
    let client = Client::<Events>::new(dir.join("state/events.sock"), ClientOptions::default());
    let events = (0..n)
        .map(|i| NewEvent::new("default", ContentCreate { digest: "d".into(), size: counter + i }))
        .collect();
    client
        .call(PublishBatch { publisher: "test".into(), first_counter: counter, events })
        .await
        .expect("publish");
}

async fn collect(opts: &Options, n: u64) -> Vec<u64> {
    let mut seen = Vec::new();
    let opts = Options { limit: Some(n), ..opts.clone() };
    tokio::time::timeout(Duration::from_secs(20), follow(&opts, |e| seen.push(e.seq)))
        .await
        .expect("in time")
        .expect("follow");
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resumes_after_its_own_restart_and_the_services() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (stop, task) = start(dir.path()).await;
    publish(dir.path(), 1, 10).await;
    let opts = Options {
        socket: dir.path().join("state/events.sock"),
        position: dir.path().join("pos"),
        filters: vec!["topic==/content/create".into()],
        limit: None,
    };
    assert_eq!(collect(&opts, 4).await, vec![1, 2, 3, 4]);
    assert_eq!(read_position(&opts.position).expect("pos"), 4);
    // The program "restarts": it continues at 5.
    assert_eq!(collect(&opts, 6).await, vec![5, 6, 7, 8, 9, 10]);

    // The service restarts while the subscriber waits for more.
    let waiting = {
        let opts = opts.clone();
        tokio::spawn(async move { collect(&opts, 5).await })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.cancel();
    task.await.expect("join").expect("clean stop");
    let (stop, task) = start(dir.path()).await;
    publish(dir.path(), 11, 5).await;
    assert_eq!(waiting.await.expect("subscriber"), vec![11, 12, 13, 14, 15]);
    assert_eq!(read_position(&opts.position).expect("pos"), 15);
    stop.cancel();
    task.await.expect("join").expect("clean stop");
}
