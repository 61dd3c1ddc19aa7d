//! The CRI service, `berth-cri`: Kubernetes' Container Runtime Interface v1 (the kubelet's
//! and `crictl`'s gRPC API) translated onto berth's other services, as containerd's CRI
//! plugin sits on containerd's own API.
//!
//! It keeps no state of its own: a pod sandbox is a runtime-service sandbox whose record
//! carries the pod's CRI config as an extension ([`records`]); a CRI container is a runtime
//! container in it, its CRI config likewise. Every object lives in berth namespace `k8s.io`.
//! A SIGKILLed `berth-cri` therefore answers List and Status exactly as before once it is
//! back.
//!
//! `cri.sock` carries two protocols ([`mux`]): gRPC for the kubelet, and berth's framing for
//! the launcher's health probes and metrics.
//!
//! # Layout
//! - [`pods`] — RunPodSandbox, StopPodSandbox, RemovePodSandbox, PodSandboxStatus, ListPodSandbox.
//! - [`containers`] — container lifecycle, status, list, ExecSync, stats.
//! - [`convert`] — CRI container configs to berth's run options (security context, mounts).
//! - [`images`] — the image service: pull, status, list, remove, fs info.
//! - [`info`] — Version, Status, RuntimeConfig.
//! - [`records`] — the CRI state kept in metadata extensions.
//! - [`status`] — berth errors as gRPC statuses.
//! - [`mux`] — one socket, two protocols.
//! - [`streaming`] — the HTTP server behind Exec, Attach and PortForward URLs.

pub mod containers;
pub mod convert;
pub mod grpc;
pub mod images;
pub mod info;
pub mod mux;
pub mod pods;
pub mod records;
pub mod status;
pub mod streaming;

use std::path::PathBuf;
use std::sync::Arc;

use berth_client::Services;
use berth_ipc::cri::{Cri as CriProtocol, CriRequest, CriResponse, CriSummary};
use berth_ipc::{Context, Handler, Reply};
use berth_service_kit::ServiceEnv;
use tokio::net::UnixListener;
use tokio_util::sync::CancellationToken;

pub use berth_ipc::cri::NAMESPACE;

/// The CRI service.
#[derive(Clone)]
pub struct Cri {
    /// Clients of the other services.
    pub services: Services,
    /// berth's root dir (image filesystem info).
    pub root: PathBuf,
    /// The state dir (told in a verbose Status, as containerd's `stateDir`).
    pub state: PathBuf,
    /// Serializes RunPodSandbox's name check and create (a name is reserved once).
    pub names: Arc<tokio::sync::Mutex<()>>,
    /// Pulls in flight, by image reference: concurrent pulls of one image share one.
    pub pulls: Arc<images::Pulls>,
    /// Per-RPC counts and latencies.
    pub stats: Arc<status::RpcStats>,
    /// `[registry]`: mirrors.
    pub registry: berth_service_kit::config::RegistryConfig,
    /// `[network]`: the network pods attach to.
    pub network: Arc<berth_service_kit::config::NetworkConfig>,
    /// The streaming server's tokens and address.
    pub streaming: Arc<streaming::Streaming>,
}

impl Cri {
    /// A CRI service for `env`.
    pub fn new(env: &ServiceEnv) -> Cri {
        Cri {
            services: Services::new(&env.config.state, env.client_options()),
            root: env.config.root.clone(),
            state: env.config.state.clone(),
            names: Arc::default(),
            pulls: Arc::default(),
            stats: Arc::default(),
            registry: env.config.registry.clone(),
            network: Arc::new(env.config.network.clone()),
            streaming: Arc::new(streaming::Streaming::new(&env.config.cri)),
        }
    }
}

impl Handler<CriProtocol> for Cri {
    async fn handle(&self, req: CriRequest, _ctx: Context) -> Reply<CriResponse> {
        match req {
            CriRequest::Summary(_) => self.summary().await.map(CriResponse::Summary).into(),
        }
    }

    fn gauges(&self) -> Vec<(String, f64)> {
        self.stats.gauges()
    }
}

impl Cri {
    async fn summary(&self) -> berth_ipc::Result<CriSummary> {
        let sandboxes =
            self.services.runtime.call(berth_ipc::runtime::ListSandboxes { namespace: NAMESPACE.into() });
        let containers =
            self.services.runtime.call(berth_ipc::runtime::ListTasks { namespace: NAMESPACE.into() });
        let (sandboxes, containers) = tokio::join!(sandboxes, containers);
        Ok(CriSummary { sandboxes: sandboxes?.len() as u64, containers: containers?.len() as u64 })
    }
}

/// Runs the CRI service on `listener` until `shutdown` is cancelled.
pub async fn run(env: ServiceEnv, listener: UnixListener, shutdown: CancellationToken) -> anyhow::Result<()> {
    let cri = Cri::new(&env);
    tokio::spawn(streaming::serve(cri.clone(), env.config.cri.clone(), shutdown.clone()));
    mux::serve(&env, cri, listener, shutdown).await
}
