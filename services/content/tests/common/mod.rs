//! Shared by the content service's tests: a service running in-process on a temp socket,
//! and the conformance suite generic over `ContentStore`.

#![allow(dead_code)]

pub mod suite;

use std::path::{Path, PathBuf};
use std::time::Duration;

use berth_ipc::content::Content;
use berth_ipc::content::proxy::ContentClient;
use berth_ipc::{Client, ClientOptions};
use berth_service_kit::{Config, ServiceEnv};
use tokio_util::sync::CancellationToken;

/// A content service running in this process.
pub struct Running {
    pub dir: tempfile::TempDir,
    pub shutdown: CancellationToken,
    pub task: tokio::task::JoinHandle<anyhow::Result<()>>,
    pub client: ContentClient,
}

impl Running {
    pub fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }

    pub fn state(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    pub fn blobs(&self) -> PathBuf {
        self.root().join("content/blobs/sha256")
    }

    pub async fn stop(self) {
        self.shutdown.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(10), self.task).await;
    }
}

pub fn config(dir: &Path) -> Config {
    Config { root: dir.join("root"), state: dir.join("state"), group: String::new(), ..Config::default() }
}

pub async fn start() -> Running {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = config(dir.path());
    std::fs::create_dir_all(&config.state).expect("state dir");
    let listener = berth_ipc::socket::bind(&config.socket("content"), None).expect("bind");
    let env = ServiceEnv::new("content", config.clone());
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(berth_content::run(env, listener, shutdown.clone()));
    let options = ClientOptions { deadline: Duration::from_secs(5), client_name: "test".into() };
    let client = ContentClient::new(Client::<Content>::in_state_dir(&config.state, options));
    client.client().health().await.expect("service answers");
    Running { dir, shutdown, task, client }
}

/// Deterministic pseudo-random bytes (xorshift), distinct per seed.
pub fn data(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}
