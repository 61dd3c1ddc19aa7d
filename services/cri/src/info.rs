//! Version, Status and RuntimeConfig: what the kubelet asks before anything else.

use k8s_cri::v1::{
    LinuxRuntimeConfiguration, RuntimeCondition, RuntimeConfigResponse, RuntimeFeatures, RuntimeHandler,
    RuntimeHandlerFeatures, RuntimeStatus, StatusResponse, VersionResponse,
};

use crate::Cri;

/// The CRI API version served.
pub const API_VERSION: &str = "v1";
/// The runtime's name, as the kubelet shows it.
pub const RUNTIME_NAME: &str = "berth";

/// The runtime handlers: berth's OCI runtimes by name (`""` is the default, runc).
pub const HANDLERS: [&str; 3] = ["", "runc", "crun"];

/// `Version`.
pub fn version() -> VersionResponse {
    VersionResponse {
        version: "0.1.0".into(),
        runtime_name: RUNTIME_NAME.into(),
        runtime_version: env!("CARGO_PKG_VERSION").into(),
        runtime_api_version: API_VERSION.into(),
    }
}

/// The OCI runtime of a CRI runtime handler; `None` for an unknown one.
pub fn handler_runtime(handler: &str) -> Option<&'static str> {
    match handler {
        "" | "runc" => Some("runc"),
        "crun" => Some("crun"),
        _ => None,
    }
}

impl Cri {
    /// Whether pods can be attached to the default network: its list is in the conf dir (or
    /// will be written there at the first pod), its plugins are installed and answer CNI
    /// `STATUS` (1.1.0+ lists; see [`berth_cni::Cni::status`]). Pods get a loopback-only
    /// network namespace while it is not.
    pub fn network_ready(&self) -> berth_ipc::Result<()> {
        let n = &self.network;
        let cni = n.driver(&self.root);
        match cni.network(&n.default_network) {
            Ok(net) => cni.status(&net),
            Err(e) if e.is(berth_ipc::Code::NotFound) && n.write_default => {
                cni.status(&berth_cni::conf::parse(n.default_list(&cni))?)
            }
            Err(e) => Err(e),
        }
    }

    /// `Status`: RuntimeReady when the runtime service answers; NetworkReady per
    /// [`Cri::network_ready`], false with reason `NetworkPluginNotReady` and the error's message.
    pub async fn status(&self, verbose: bool) -> StatusResponse {
        let runtime = self.services.runtime.health().await;
        let runtime_ready = RuntimeCondition {
            r#type: "RuntimeReady".into(),
            status: runtime.is_ok(),
            reason: if runtime.is_ok() { String::new() } else { "RuntimeServiceDown".into() },
            message: runtime.err().map(|e| e.to_string()).unwrap_or_default(),
        };
        let network = self.network_ready();
        let network_ready = RuntimeCondition {
            r#type: "NetworkReady".into(),
            status: network.is_ok(),
            reason: if network.is_ok() { String::new() } else { "NetworkPluginNotReady".into() },
            message: network.err().map(|e| e.message).unwrap_or_default(),
        };
        let features = RuntimeHandlerFeatures { recursive_read_only_mounts: true, user_namespaces: true };
        let handlers =
            HANDLERS.iter().map(|h| RuntimeHandler { name: (*h).into(), features: Some(features) }).collect();
        let mut info = std::collections::HashMap::new();
        if verbose {
            // `stateDir` as containerd names it: critest looks for id-mapped mount support
            // next to it.
            let config = serde_json::json!({"namespace": crate::NAMESPACE, "stateDir": self.state});
            info.insert("config".into(), config.to_string());
        }
        StatusResponse {
            status: Some(RuntimeStatus { conditions: vec![runtime_ready, network_ready] }),
            info,
            runtime_handlers: handlers,
            features: Some(RuntimeFeatures { supplemental_groups_policy: true }),
        }
    }
}

/// `RuntimeConfig`: the cgroup driver (cgroupfs).
pub fn runtime_config() -> RuntimeConfigResponse {
    RuntimeConfigResponse {
        linux: Some(LinuxRuntimeConfiguration { cgroup_driver: k8s_cri::v1::CgroupDriver::Cgroupfs as i32 }),
    }
}
