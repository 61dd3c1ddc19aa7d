//! The snapshot service on a temp socket, with blobs in a directory or in a real content
//! service running beside it.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use berth_ipc::snapshot::Snapshot;
use berth_ipc::{Client, ClientOptions};
use berth_service_kit::{Config, ServiceEnv};
use berth_snapshot::Blobs;
use tokio_util::sync::CancellationToken;

/// A service running in this process.
pub struct Running {
    /// Cancels it.
    pub shutdown: CancellationToken,
    /// Its task.
    pub task: tokio::task::JoinHandle<anyhow::Result<()>>,
    /// A client.
    pub client: Client<Snapshot>,
}

impl Running {
    /// Stops the service and waits for it.
    pub async fn stop(self) {
        self.shutdown.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(10), self.task).await;
    }
}

/// The configuration of a service rooted in `dir`.
pub fn config(dir: &Path) -> Config {
    Config { root: dir.join("root"), state: dir.join("state"), group: String::new(), ..Config::default() }
}

/// Starts the snapshot service in `dir` with `blobs` (`None`: the content service's).
pub async fn start(dir: &Path, blobs: Option<Arc<dyn Blobs>>) -> Running {
    let config = config(dir);
    std::fs::create_dir_all(&config.state).expect("state dir");
    let listener = berth_ipc::socket::bind(&config.socket("snapshot"), None).expect("bind");
    let env = ServiceEnv::new("snapshot", config.clone());
    let shutdown = CancellationToken::new();
    let task = match blobs {
        Some(b) => tokio::spawn(berth_snapshot::run_with(env, listener, shutdown.clone(), b)),
        None => tokio::spawn(berth_snapshot::run(env, listener, shutdown.clone())),
    };
    let options = ClientOptions { deadline: Duration::from_secs(5), client_name: "test".into() };
    let client = Client::<Snapshot>::in_state_dir(&config.state, options);
    client.health().await.expect("service answers");
    Running { shutdown, task, client }
}
