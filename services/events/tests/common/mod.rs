//! Shared by the events service's tests: the service running in-process on a temp socket,
//! and helpers to publish and to collect subscription items.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use berth_ipc::events::payload::{ContentCreate, TaskExit};
use berth_ipc::events::{Envelope, Events, NewEvent, PublishBatch, Since, Subscribe, SubscribeItem};
use berth_ipc::{Client, ClientOptions, Stream};
use berth_service_kit::config::EventsConfig;
use berth_service_kit::{Config, ServiceEnv};
use tokio_util::sync::CancellationToken;

/// An events service running in this process.
pub struct Running {
    pub config: Config,
    pub shutdown: CancellationToken,
    pub task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Running {
    pub fn socket(&self) -> PathBuf {
        self.config.socket("events")
    }

    /// A client on its own connection.
    pub fn client(&self) -> Client<Events> {
        let options = ClientOptions { deadline: Duration::from_secs(5), client_name: "test".into() };
        Client::<Events>::new(self.socket(), options)
    }

    pub async fn stop(self) {
        self.shutdown.cancel();
        let r = tokio::time::timeout(Duration::from_secs(10), self.task).await;
        assert!(matches!(r, Ok(Ok(Ok(())))), "service stops cleanly: {r:?}");
    }
}

pub fn config(dir: &Path, events: EventsConfig) -> Config {
    Config {
        root: dir.join("root"),
        state: dir.join("state"),
        group: String::new(),
        events,
        ..Config::default()
    }
}

/// Starts the service with `events` settings in `dir` (reusing its data if any).
pub async fn start_in(dir: &Path, events: EventsConfig) -> Running {
    let config = config(dir, events);
    std::fs::create_dir_all(&config.state).expect("state dir");
    let listener = berth_ipc::socket::bind(&config.socket("events"), None).expect("bind");
    let env = ServiceEnv::new("events", config.clone());
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(berth_events::run(env, listener, shutdown.clone()));
    let running = Running { config, shutdown, task };
    if let Err(e) = running.client().health().await {
        let ended = tokio::time::timeout(Duration::from_secs(1), running.task).await;
        panic!("service does not answer: {e}; the service: {ended:?}");
    }
    running
}

/// A content event numbered `i` in namespace `ns`.
pub fn content(ns: &str, i: u64) -> NewEvent {
    NewEvent::new(ns, ContentCreate { digest: format!("sha256:{i:064x}"), size: i })
}

/// A task-exit event numbered `i` in namespace `ns`.
pub fn exit(ns: &str, i: u64) -> NewEvent {
    NewEvent::new(
        ns,
        TaskExit { container_id: format!("c{i}"), id: format!("c{i}"), pid: 1, exit_status: 0, exited_at: i },
    )
}

/// Publishes `events` as one batch from `publisher` starting at `counter`; returns seqs.
pub async fn publish(
    client: &Client<Events>,
    publisher: &str,
    counter: u64,
    events: Vec<NewEvent>,
) -> Vec<u64> {
    let req = PublishBatch { publisher: publisher.into(), first_counter: counter, events };
    client.call(req).await.expect("publish").seqs
}

/// Subscribes and returns the stream after its `Ready` item (oldest, last).
pub async fn subscribe(
    client: &Client<Events>,
    filters: &[&str],
    since: Since,
) -> (Stream<Subscribe>, u64, u64) {
    let req = Subscribe { filters: filters.iter().map(|s| s.to_string()).collect(), since };
    let mut stream = client.stream(req).await.expect("subscribe");
    match next(&mut stream).await {
        SubscribeItem::Ready { oldest, last } => (stream, oldest, last),
        other => panic!("expected Ready first, got {other:?}"),
    }
}

/// The next item, failing the test after 10 s.
pub async fn next(stream: &mut Stream<Subscribe>) -> SubscribeItem {
    let item = tokio::time::timeout(Duration::from_secs(10), stream.next()).await.expect("item within 10 s");
    item.expect("stream not ended").expect("item ok")
}

/// Reads events until one with seq `last` (inclusive) has been seen or is passed.
pub async fn events_until(stream: &mut Stream<Subscribe>, last: u64) -> Vec<Envelope> {
    let mut out: Vec<Envelope> = Vec::new();
    while out.last().is_none_or(|e| e.seq < last) {
        match next(stream).await {
            SubscribeItem::Event(e) => out.push(e),
            other => panic!("unexpected {other:?}"),
        }
    }
    out
}

/// Asserts seqs are exactly `from..=to`.
pub fn assert_contiguous(events: &[Envelope], from: u64, to: u64) {
    let seqs: Vec<u64> = events.iter().map(|e| e.seq).collect();
    let want: Vec<u64> = (from..=to).collect();
    assert_eq!(seqs.len(), want.len(), "count of seqs {from}..={to}");
    assert_eq!(seqs, want, "contiguous seqs");
}
