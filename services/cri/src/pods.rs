//! Pod sandboxes: RunPodSandbox, StopPodSandbox, RemovePodSandbox, PodSandboxStatus,
//! ListPodSandbox. A pod is a runtime-service sandbox (namespaces held without any image)
//! whose record keeps the pod's config exactly.

use std::collections::{BTreeMap, HashMap};

use berth_ipc::runtime::{
    CreateSandbox, DnsConfig, GetSandbox, ListSandboxes, PidMode, PortMapping, RemoveSandbox, SandboxInfo,
    SandboxRef, SandboxSpec, SandboxState, StopSandbox,
};
use berth_ipc::{Code, Error, Result};
use k8s_cri::v1::{
    LinuxPodSandboxStatus, Namespace, NamespaceMode, NamespaceOption, PodIp, PodSandbox, PodSandboxConfig,
    PodSandboxFilter, PodSandboxNetworkStatus, PodSandboxState, PodSandboxStatus,
};

use crate::records::{self, POD_EXT};
use crate::{Cri, NAMESPACE};

/// A pod's longest hostname (a DNS label).
const MAX_HOSTNAME: usize = 63;

/// A pod as the CRI service sees it: the runtime's sandbox and the pod's config.
#[derive(Debug, Clone)]
pub struct Pod {
    /// The runtime service's view.
    pub info: SandboxInfo,
    /// The config RunPodSandbox got.
    pub config: PodSandboxConfig,
}

impl Pod {
    fn from_info(info: SandboxInfo) -> Result<Pod> {
        let config = records::pod_config(&info.extensions, &info.id)?;
        Ok(Pod { info, config })
    }

    /// CRI's state of the pod.
    pub fn state(&self) -> PodSandboxState {
        match self.info.state {
            SandboxState::Ready => PodSandboxState::SandboxReady,
            SandboxState::NotReady => PodSandboxState::SandboxNotready,
        }
    }

    /// The pod's namespace options (as configured).
    pub fn namespace_options(&self) -> NamespaceOption {
        self.config
            .linux
            .as_ref()
            .and_then(|l| l.security_context.as_ref())
            .and_then(|s| s.namespace_options.clone())
            .unwrap_or_default()
    }

    /// The pod's log directory (may be empty).
    pub fn log_directory(&self) -> &str {
        &self.config.log_directory
    }

    /// The CRI runtime handler it was created with.
    pub fn handler(&self) -> String {
        self.info.labels.get(HANDLER_LABEL).cloned().unwrap_or_default()
    }

    fn summary(&self) -> PodSandbox {
        PodSandbox {
            id: self.info.id.clone(),
            metadata: self.config.metadata.clone(),
            state: self.state() as i32,
            created_at: records::ns_i64(self.info.created),
            labels: self.config.labels.clone(),
            annotations: self.config.annotations.clone(),
            runtime_handler: self.handler(),
        }
    }
}

/// Sandbox record label keeping the CRI runtime handler name as given.
const HANDLER_LABEL: &str = "io.berth.cri/runtime-handler";

/// Checks a pod config and turns it into the runtime's sandbox spec.
pub fn sandbox_spec(config: &PodSandboxConfig) -> Result<SandboxSpec> {
    let meta =
        config.metadata.as_ref().ok_or_else(|| Error::invalid("pod sandbox config: metadata is required"))?;
    if meta.name.is_empty() || meta.namespace.is_empty() || meta.uid.is_empty() {
        return Err(Error::invalid(format!(
            "pod sandbox config: metadata needs name, namespace and uid (got name {:?}, namespace {:?}, uid {:?})",
            meta.name, meta.namespace, meta.uid
        )));
    }
    let what = format!("pod {}/{}", meta.namespace, meta.name);
    if config.hostname.len() > MAX_HOSTNAME {
        return Err(Error::invalid(format!("{what}: hostname longer than {MAX_HOSTNAME} bytes")));
    }
    if !config.log_directory.is_empty() && !config.log_directory.starts_with('/') {
        return Err(Error::invalid(format!(
            "{what}: log directory {:?} must be absolute",
            config.log_directory
        )));
    }
    let linux = config.linux.clone().unwrap_or_default();
    let ns = linux.security_context.as_ref().and_then(|s| s.namespace_options.clone()).unwrap_or_default();
    let node = NamespaceMode::Node as i32;
    let pid = match NamespaceMode::try_from(ns.pid) {
        Ok(NamespaceMode::Pod) => PidMode::Pod,
        Ok(NamespaceMode::Node) => PidMode::Node,
        Ok(NamespaceMode::Container) => PidMode::Container,
        _ => {
            return Err(Error::invalid(format!(
                "{what}: pid namespace mode {} is not one a pod can have",
                ns.pid
            )));
        }
    };
    let user_ns = crate::convert::user_namespace(ns.userns_options.as_ref()).map_err(|e| e.context(&what))?;
    let dns = config.dns_config.as_ref().map(|d| DnsConfig {
        servers: d.servers.clone(),
        searches: d.searches.clone(),
        options: d.options.clone(),
    });
    Ok(SandboxSpec {
        hostname: (!config.hostname.is_empty()).then(|| config.hostname.clone()),
        dns,
        hosts: Vec::new(),
        sysctls: linux.sysctls.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        cgroup_parent: (!linux.cgroup_parent.is_empty()).then(|| linux.cgroup_parent.clone()),
        net_host: ns.network == node,
        ipc_host: ns.ipc == node,
        pid,
        shm_size: None,
        network: None,
        ports: ports(&config.port_mappings).map_err(|e| e.context(&what))?,
        cni_args: vec![
            ("K8S_POD_NAMESPACE".into(), meta.namespace.clone()),
            ("K8S_POD_NAME".into(), meta.name.clone()),
            ("K8S_POD_UID".into(), meta.uid.clone()),
        ],
        user_ns,
        cni_id: None,
    })
}

/// The pod's port mappings, checked (a host port of 0 is no mapping, as the kubelet means).
fn ports(mappings: &[k8s_cri::v1::PortMapping]) -> Result<Vec<PortMapping>> {
    let mut out = Vec::new();
    for m in mappings {
        if m.host_port == 0 {
            continue;
        }
        let port = |p: i32, what: &str| {
            u16::try_from(p)
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| Error::invalid(format!("port mapping: {what} port {p} is not 1 to 65535")))
        };
        let protocol = match k8s_cri::v1::Protocol::try_from(m.protocol) {
            Ok(k8s_cri::v1::Protocol::Tcp) => "tcp",
            Ok(k8s_cri::v1::Protocol::Udp) => "udp",
            Ok(k8s_cri::v1::Protocol::Sctp) => "sctp",
            Err(_) => {
                return Err(Error::invalid(format!("port mapping: protocol {} is unknown", m.protocol)));
            }
        };
        out.push(PortMapping {
            host_ip: m.host_ip.clone(),
            host_port: port(m.host_port, "host")?,
            container_port: port(m.container_port, "container")?,
            protocol: protocol.into(),
        });
    }
    Ok(out)
}

/// Whether `pod` passes `filter`.
fn matches(pod: &Pod, filter: &PodSandboxFilter) -> bool {
    if !filter.id.is_empty() && !pod.info.id.starts_with(&filter.id) {
        return false;
    }
    if let Some(state) = &filter.state
        && state.state != pod.state() as i32
    {
        return false;
    }
    filter.label_selector.iter().all(|(k, v)| pod.config.labels.get(k) == Some(v))
}

/// The same pod metadata (name, namespace, uid, attempt): a name is reserved once.
fn same_pod(a: &PodSandboxConfig, b: &PodSandboxConfig) -> bool {
    match (&a.metadata, &b.metadata) {
        (Some(a), Some(b)) => {
            a.name == b.name && a.namespace == b.namespace && a.uid == b.uid && a.attempt == b.attempt
        }
        _ => false,
    }
}

impl Cri {
    /// Every CRI pod (records that are not CRI sandboxes are skipped).
    pub async fn pods(&self) -> Result<Vec<Pod>> {
        let list = self.services.runtime.call(ListSandboxes { namespace: NAMESPACE.into() }).await?;
        Ok(list.into_iter().filter_map(|i| Pod::from_info(i).ok()).collect())
    }

    /// One pod by id or unique id prefix.
    pub async fn pod(&self, id: &str) -> Result<Pod> {
        if id.is_empty() {
            return Err(Error::invalid("pod sandbox id must not be empty"));
        }
        let by = SandboxRef { namespace: NAMESPACE.into(), id: id.to_string() };
        match self.services.runtime.call(GetSandbox(by)).await {
            Ok(info) => return Pod::from_info(info),
            Err(e) if e.is(Code::NotFound) || e.is(Code::InvalidArgument) => {}
            Err(e) => return Err(e),
        }
        let pods = self.pods().await?;
        let full = records::resolve_id(id, pods.iter().map(|p| p.info.id.as_str()), "pod sandbox")?;
        pods.into_iter()
            .find(|p| p.info.id == full)
            .ok_or_else(|| Error::not_found(format!("pod sandbox {id}: not found")))
    }

    /// `RunPodSandbox`: the pod's id.
    pub async fn run_pod(&self, config: PodSandboxConfig, handler: &str) -> Result<String> {
        let mut spec = sandbox_spec(&config)?;
        if !spec.net_host && self.network_ready().is_ok() {
            spec.network = Some(self.network.default_network.clone());
        }
        let runtime = crate::info::handler_runtime(handler).ok_or_else(|| {
            Error::invalid(format!("runtime handler {handler:?}: unknown (known: runc, crun)"))
        })?;
        if !config.log_directory.is_empty() {
            let dir = config.log_directory.clone();
            std::fs::create_dir_all(&dir).map_err(|e| Error::io_at("pod log directory", dir.as_ref(), e))?;
        }
        let _names = self.names.lock().await;
        if let Some(taken) = self.pods().await?.into_iter().find(|p| same_pod(&p.config, &config)) {
            let m = config.metadata.unwrap_or_default();
            return Err(Error::already_exists(format!(
                "pod sandbox name {}_{}_{}_{} is reserved for {}",
                m.name, m.namespace, m.uid, m.attempt, taken.info.id
            )));
        }
        let id = records::new_id()?;
        spec.cni_args.push(("K8S_POD_INFRA_CONTAINER_ID".into(), id.clone()));
        let req = CreateSandbox {
            namespace: NAMESPACE.into(),
            id: id.clone(),
            runtime: runtime.into(),
            spec,
            labels: BTreeMap::from([(HANDLER_LABEL.to_string(), handler.to_string())]),
            extensions: BTreeMap::from([(POD_EXT.to_string(), records::encode(&config)?)]),
        };
        self.services.runtime.call(req).await?;
        Ok(id)
    }

    /// `StopPodSandbox`: an unknown pod is already stopped.
    pub async fn stop_pod(&self, id: &str) -> Result<()> {
        let pod = match self.pod(id).await {
            Ok(p) => p,
            Err(e) if e.is(Code::NotFound) => return Ok(()),
            Err(e) => return Err(e),
        };
        let r = SandboxRef { namespace: NAMESPACE.into(), id: pod.info.id };
        self.services.runtime.call(StopSandbox(r)).await
    }

    /// `RemovePodSandbox`: an unknown pod is already removed.
    pub async fn remove_pod(&self, id: &str) -> Result<()> {
        let pod = match self.pod(id).await {
            Ok(p) => p,
            Err(e) if e.is(Code::NotFound) => return Ok(()),
            Err(e) => return Err(e),
        };
        let r = SandboxRef { namespace: NAMESPACE.into(), id: pod.info.id };
        match self.services.runtime.call(RemoveSandbox(r)).await {
            Err(e) if !e.is(Code::NotFound) => Err(e),
            _ => Ok(()),
        }
    }

    /// `PodSandboxStatus`.
    pub async fn pod_status(
        &self,
        id: &str,
        verbose: bool,
    ) -> Result<(PodSandboxStatus, HashMap<String, String>)> {
        let pod = self.pod(id).await?;
        let status = PodSandboxStatus {
            id: pod.info.id.clone(),
            metadata: pod.config.metadata.clone(),
            state: pod.state() as i32,
            created_at: records::ns_i64(pod.info.created),
            network: Some(PodSandboxNetworkStatus {
                ip: pod.info.ips.first().cloned().unwrap_or_default(),
                additional_ips: pod.info.ips.iter().skip(1).map(|ip| PodIp { ip: ip.clone() }).collect(),
            }),
            linux: Some(LinuxPodSandboxStatus {
                namespaces: Some(Namespace { options: Some(pod.namespace_options()) }),
            }),
            labels: pod.config.labels.clone(),
            annotations: pod.config.annotations.clone(),
            runtime_handler: pod.handler(),
        };
        let mut info = HashMap::new();
        if verbose {
            let v = serde_json::json!({
                "dir": pod.info.dir,
                "netns": pod.info.netns,
                "holderPid": pod.info.holder_pid,
                "runtime": pod.info.runtime,
                "config": pod.config,
            });
            info.insert("info".to_string(), v.to_string());
        }
        Ok((status, info))
    }

    /// `ListPodSandbox`.
    pub async fn list_pods(&self, filter: Option<PodSandboxFilter>) -> Result<Vec<PodSandbox>> {
        let filter = filter.unwrap_or_default();
        let pods = self.pods().await?;
        Ok(pods.iter().filter(|p| matches(p, &filter)).map(Pod::summary).collect())
    }
}
