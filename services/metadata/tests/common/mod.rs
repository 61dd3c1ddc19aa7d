//! Starting the metadata service in-process on a temp root, and small builders.

#![allow(dead_code)] // each test file uses its own subset

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use berth_ipc::digest::Digest;
use berth_ipc::metadata::*;
use berth_ipc::{Client, ClientOptions, Code};
use berth_service_kit::{Config, ServiceEnv};
use tokio_util::sync::CancellationToken;

/// A running metadata service and its temp dirs.
pub struct Running {
    pub client: Client<Metadata>,
    pub shutdown: CancellationToken,
    pub task: tokio::task::JoinHandle<anyhow::Result<()>>,
    pub root: PathBuf,
    pub state: PathBuf,
    pub dir: tempfile::TempDir,
}

/// A configuration rooted in a fresh temp dir.
pub fn config(dir: &tempfile::TempDir) -> Config {
    let mut config =
        Config { root: dir.path().join("root"), state: dir.path().join("state"), ..Config::default() };
    config.metadata.gc_mutations = 0;
    config.metadata.gc_interval_s = 0;
    config
}

/// Starts the service with `config` (built from [`config`]).
pub async fn start_with(dir: tempfile::TempDir, config: Config) -> Running {
    std::fs::create_dir_all(&config.state).expect("state dir");
    let listener = berth_ipc::socket::bind(&config.socket("metadata"), None).expect("bind");
    let shutdown = CancellationToken::new();
    let env = ServiceEnv::new("metadata", config.clone());
    let task = tokio::spawn(berth_metadata::run(env, listener, shutdown.clone()));
    let options = ClientOptions { deadline: Duration::from_secs(5), client_name: "test".into() };
    let client = Client::<Metadata>::in_state_dir(&config.state, options);
    Running { client, shutdown, task, root: config.root, state: config.state, dir }
}

/// Starts the service on a fresh temp root.
pub async fn start() -> Running {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = config(&dir);
    start_with(dir, config).await
}

impl Running {
    /// Stops the service and waits for it.
    pub async fn stop(self) -> tempfile::TempDir {
        self.shutdown.cancel();
        self.task.await.expect("join").expect("service ran cleanly");
        self.dir
    }
}

pub fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<BTreeMap<_, _>>()
}

pub fn image(name: &str, blob: &[u8]) -> Image {
    Image {
        name: name.to_string(),
        target: Descriptor {
            media_type: "application/vnd.oci.image.manifest.v1+json".into(),
            digest: Digest::of(blob),
            size: blob.len() as u64,
        },
        labels: Labels::new(),
        created: 0,
        updated: 0,
    }
}

pub fn container(id: &str) -> Container {
    Container {
        id: id.to_string(),
        image: "docker.io/library/alpine:latest".into(),
        runtime: RuntimeInfo { name: "runc".into(), options: Vec::new() },
        spec: br#"{"ociVersion":"1.2.0"}"#.to_vec(),
        snapshotter: "overlayfs".into(),
        snapshot_key: id.to_string(),
        labels: Labels::new(),
        extensions: BTreeMap::new(),
        created: 0,
        updated: 0,
    }
}

pub fn by(ns: &str, name: &str) -> ByName {
    ByName { namespace: ns.into(), name: name.into() }
}

pub fn list_in(ns: &str, filters: &[&str]) -> ListIn {
    ListIn { namespace: ns.into(), filters: filters.iter().map(|f| f.to_string()).collect() }
}

/// Collects every page of a list stream.
pub async fn collect<C>(
    client: &Client<Metadata>,
    req: C,
) -> berth_ipc::Result<Vec<<C::Reply as IntoIterator>::Item>>
where
    C: berth_ipc::Call<Protocol = Metadata>,
    C::Reply: IntoIterator,
{
    let mut stream = client.stream(req).await?;
    let mut out = Vec::new();
    while let Some(page) = stream.next().await {
        out.extend(page?);
    }
    Ok(out)
}

/// Asserts that `r` failed with `code`.
pub fn assert_code<T: std::fmt::Debug>(r: berth_ipc::Result<T>, code: Code) -> berth_ipc::Error {
    match r {
        Err(e) => {
            assert_eq!(e.code, code, "{e}");
            e
        }
        Ok(v) => panic!("expected {code:?}, got {v:?}"),
    }
}

/// The content service, running beside the metadata service in the same temp root.
pub struct ContentRunning {
    pub client: berth_ipc::content::proxy::ContentClient,
    pub shutdown: CancellationToken,
    pub task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

/// Starts the content service with `config` (call before the metadata service).
pub async fn start_content(config: &Config) -> ContentRunning {
    std::fs::create_dir_all(&config.state).expect("state dir");
    let listener = berth_ipc::socket::bind(&config.socket("content"), None).expect("bind");
    let shutdown = CancellationToken::new();
    let env = ServiceEnv::new("content", config.clone());
    let task = tokio::spawn(berth_content::run(env, listener, shutdown.clone()));
    let options = ClientOptions { deadline: Duration::from_secs(5), client_name: "test".into() };
    let client = berth_ipc::content::proxy::ContentClient::new(Client::in_state_dir(&config.state, options));
    ContentRunning { client, shutdown, task }
}

impl ContentRunning {
    /// Writes `data` as a blob (already present is fine) and returns its digest.
    pub async fn write(&self, data: &[u8]) -> Digest {
        use berth_ipc::content::store::{ContentStore, ContentWriter};
        let d = Digest::of(data);
        let mut w = self
            .client
            .writer(&format!("ref-{}", d.hex()), Some(d), Some(data.len() as u64))
            .await
            .expect("open writer");
        w.write_at(0, data.to_vec()).await.expect("write");
        match w.commit(None, None).await {
            Ok(_) => {}
            Err(e) if e.code == Code::AlreadyExists => {}
            Err(e) => panic!("commit {d}: {e}"),
        }
        d
    }

    /// Whether the blob is in the content store.
    pub async fn has(&self, d: &Digest) -> bool {
        use berth_ipc::content::store::ContentStore;
        match self.client.info(d).await {
            Ok(_) => true,
            Err(e) if e.code == Code::NotFound => false,
            Err(e) => panic!("info {d}: {e}"),
        }
    }

    /// Stops the content service.
    pub async fn stop(self) {
        self.shutdown.cancel();
        let _ = self.task.await;
    }
}

/// Starts the snapshot service with `config` (blobs from the content service).
pub async fn start_snapshot(
    config: &Config,
) -> (CancellationToken, tokio::task::JoinHandle<anyhow::Result<()>>) {
    std::fs::create_dir_all(&config.state).expect("state dir");
    let listener = berth_ipc::socket::bind(&config.socket("snapshot"), None).expect("bind");
    let shutdown = CancellationToken::new();
    let env = ServiceEnv::new("snapshot", config.clone());
    let task = tokio::spawn(berth_snapshot::run(env, listener, shutdown.clone()));
    (shutdown, task)
}
