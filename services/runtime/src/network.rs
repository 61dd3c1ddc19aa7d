//! Sandboxes on CNI networks: attached (`ADD`) once their namespaces are pinned and before
//! their record exists, detached (`DEL`) when they stop, while the network namespace still
//! exists. [`berth_cni`] records every attachment before its `ADD`, so an attachment whose
//! sandbox is no longer ready when the service starts (a crash between `ADD` and record, or
//! in a stop) is detached then: no address stays allocated, no veth or rule stays behind.

use std::path::Path;
use std::time::SystemTime;

use berth_cni::{Attachment, Cni};
use berth_ipc::runtime::{PortMapping, SandboxSpec};
use berth_ipc::{Error, Result};
use berth_service_kit::blocking_value;
use berth_service_kit::config::NetworkConfig;
use serde_json::{Map, Value, json};

use crate::Runtime;

/// The interface a sandbox gets on its network.
pub const IFNAME: &str = "eth0";

/// The CNI container id of sandbox `id` in namespace `ns` (host-local keys addresses by it,
/// so it must differ between namespaces).
pub fn cni_id(ns: &str, id: &str) -> String {
    format!("{ns}-{id}")
}

/// Network `name` of the conf dir. The default network, when the conf dir has none of that
/// name and the config says so, is written first (`10-<name>.conflist`): the first pod that
/// asks for it makes it, so a berth that runs no pod never writes the host's conf dir.
pub fn network(config: &NetworkConfig, cni: &Cni, name: &str) -> Result<berth_cni::NetworkList> {
    match cni.network(name) {
        Err(e)
            if e.is(berth_ipc::Code::NotFound) && config.write_default && name == config.default_network =>
        {
            write_default(config, cni)?;
            cni.network(name)
        }
        other => other,
    }
}

/// Writes the default network's conflist.
fn write_default(config: &NetworkConfig, cni: &Cni) -> Result<()> {
    berth_cni::conf::check_name(&config.default_network)?;
    let list = config.default_list(cni);
    std::fs::create_dir_all(&cni.conf_dir).map_err(|e| Error::io_at("create", &cni.conf_dir, e))?;
    let path = cni.conf_dir.join(format!("10-{}.conflist", config.default_network));
    let text = serde_json::to_vec_pretty(&list).map_err(|e| Error::internal_cause("default network", e))?;
    std::fs::write(&path, text).map_err(|e| Error::io_at("write", &path, e))?;
    tracing::info!(file = %path.display(), "wrote the default CNI network");
    Ok(())
}

/// The CNI container id of sandbox `id` in `ns` with `spec`: its own, else [`cni_id`].
pub fn spec_cni_id(ns: &str, id: &str, spec: &SandboxSpec) -> String {
    spec.cni_id.clone().unwrap_or_else(|| cni_id(ns, id))
}

/// A fresh CNI id for a container's own sandbox: `<ns>-<id>-<8 hex digits>`.
pub fn fresh_cni_id(ns: &str, id: &str) -> String {
    use std::io::Read;
    let mut b = [0u8; 4];
    let random = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut b)).is_ok();
    let n = if random {
        u32::from_le_bytes(b)
    } else {
        let now = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
        now.subsec_nanos() ^ std::process::id()
    };
    format!("{}-{n:08x}", cni_id(ns, id))
}

/// The file of a sandbox dir holding its CNI container id (for the start's reconcile).
pub const CNI_ID_FILE: &str = "cni-id";

/// The CNI id a sandbox dir records (the default one for a dir from before the file).
pub fn dir_cni_id(dir: &Path, ns: &str, id: &str) -> String {
    std::fs::read_to_string(dir.join(CNI_ID_FILE))
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| cni_id(ns, id))
}

/// The attachment of sandbox `id` with `spec` whose network namespace is `netns`.
fn attachment(ns: &str, id: &str, spec: &SandboxSpec, netns: &Path) -> Attachment {
    let mut capabilities = Map::new();
    if !spec.ports.is_empty() {
        let ports: Vec<Value> = spec.ports.iter().map(port_json).collect();
        capabilities.insert("portMappings".into(), Value::Array(ports));
    }
    let mut args = vec![("IgnoreUnknown".to_string(), "1".to_string())];
    args.extend(spec.cni_args.iter().cloned());
    Attachment {
        container_id: spec_cni_id(ns, id, spec),
        netns: netns.to_path_buf(),
        ifname: IFNAME.into(),
        args,
        capabilities,
    }
}

fn port_json(p: &PortMapping) -> Value {
    let mut v = json!({ "hostPort": p.host_port, "containerPort": p.container_port, "protocol": p.protocol });
    if !p.host_ip.is_empty() {
        v["hostIP"] = Value::String(p.host_ip.clone());
    }
    v
}

/// Checks a sandbox's network settings before anything is made.
pub fn check(spec: &SandboxSpec) -> Result<()> {
    if let Some(name) = &spec.network {
        berth_cni::conf::check_name(name)?;
    }
    if let Some(id) = &spec.cni_id
        && (id.is_empty()
            || id.len() > 128
            || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b)))
    {
        return Err(Error::invalid(format!("CNI container id {id:?}: expected 1 to 128 of [A-Za-z0-9_.-]")));
    }
    for p in &spec.ports {
        if p.host_port == 0 || p.container_port == 0 {
            return Err(Error::invalid(format!(
                "port mapping {}:{}: ports must be 1 to 65535",
                p.host_port, p.container_port
            )));
        }
        if !matches!(p.protocol.as_str(), "tcp" | "udp" | "sctp") {
            return Err(Error::invalid(format!(
                "port mapping {}: protocol {:?} is not tcp, udp or sctp",
                p.host_port, p.protocol
            )));
        }
        if !p.host_ip.is_empty() && p.host_ip.parse::<std::net::IpAddr>().is_err() {
            return Err(Error::invalid(format!(
                "port mapping {}: host IP {:?} is not an address",
                p.host_port, p.host_ip
            )));
        }
    }
    for (k, v) in &spec.cni_args {
        if k.is_empty() || k.contains(['=', ';']) || v.contains(';') {
            return Err(Error::invalid(format!("CNI arg {k:?}: keys and values may not hold = or ;")));
        }
    }
    Ok(())
}

impl Runtime {
    /// Attaches sandbox `id` to its network (none without one): its addresses.
    pub(crate) async fn attach_network(
        &self,
        ns: &str,
        id: &str,
        spec: &SandboxSpec,
        netns: &Path,
    ) -> Result<Vec<String>> {
        let Some(name) = spec.network.clone().filter(|_| !spec.net_host) else { return Ok(Vec::new()) };
        let (cni, a, config) = (self.cni.clone(), attachment(ns, id, spec, netns), self.network.clone());
        blocking_value("runtime worker", move || {
            let net = network(&config, &cni, &name)?;
            cni.status(&net)?;
            cni.add(&net, &a).map(|added| added.ips)
        })
        .await?
    }

    /// Detaches sandbox `id` from its network; a sandbox never attached is detached.
    pub(crate) async fn detach_network(
        &self,
        ns: &str,
        id: &str,
        spec: &SandboxSpec,
        netns: &Path,
    ) -> Result<()> {
        let Some(name) = spec.network.clone().filter(|_| !spec.net_host) else { return Ok(()) };
        let (cni, a) = (self.cni.clone(), attachment(ns, id, spec, netns));
        blocking_value("runtime worker", move || cni.del(&name, &a)).await?
    }

    /// The addresses sandbox `id` was given (from its attachment's record). Blocking.
    pub(crate) fn sandbox_ips(&self, ns: &str, id: &str, spec: &SandboxSpec) -> Vec<String> {
        let Some(name) = spec.network.as_deref().filter(|_| !spec.net_host) else { return Vec::new() };
        let key = berth_cni::cache::key(name, &spec_cni_id(ns, id, spec), IFNAME);
        match berth_cni::cache::read(&self.cni.cache_dir, &key) {
            Ok(Some(entry)) => entry.result.as_ref().map(berth_cni::ips_of).unwrap_or_default(),
            _ => Vec::new(),
        }
    }

    /// At start: every attachment recorded before this process started whose sandbox is not
    /// ready is detached (its `DEL` run again, with the config it was made with).
    pub async fn reconcile_networks(&self, started: SystemTime) {
        let rt = self.clone();
        let _ = blocking_value("runtime worker", move || {
            let live = rt.live_cni_ids();
            for entry in rt.cni.attachments() {
                let file = berth_cni::cache::path(&rt.cni.cache_dir, &entry.key());
                let older = std::fs::metadata(&file).and_then(|m| m.modified()).is_ok_and(|t| t < started);
                if !older || live.contains(&entry.container_id) {
                    continue;
                }
                tracing::warn!(network = %entry.network_name, id = %entry.container_id, "detaching a network left attached");
                if let Err(e) = rt.cni.del(&entry.network_name, &entry.attachment()) {
                    tracing::warn!(network = %entry.network_name, id = %entry.container_id, error = %e, "detach failed; tried again at the next start");
                }
            }
        })
        .await;
    }

    /// CNI ids of the sandboxes that are ready (their dirs say so). Blocking.
    fn live_cni_ids(&self) -> std::collections::BTreeSet<String> {
        let mut live = std::collections::BTreeSet::new();
        let Ok(namespaces) = std::fs::read_dir(self.state.join("sandboxes")) else { return live };
        for ns in namespaces.flatten() {
            let Ok(ids) = std::fs::read_dir(ns.path()) else { continue };
            for id in ids.flatten() {
                if id.path().join("ready").exists() {
                    let (n, i) = (
                        ns.file_name().to_string_lossy().into_owned(),
                        id.file_name().to_string_lossy().into_owned(),
                    );
                    live.insert(dir_cni_id(&id.path(), &n, &i));
                }
            }
        }
        live
    }
}
