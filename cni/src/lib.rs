//! berth's CNI driver: what libcni does for containerd. Network lists come from a conf dir
//! ([`conf`]); each plugin of a list runs per the CNI spec ([`exec`]), `ADD` in order with
//! the previous plugin's result passed on, `DEL` in reverse; and every attachment is recorded
//! before its `ADD` starts and until its `DEL` has succeeded ([`cache`]), so whatever dies in
//! between, the next start finds what to tear down with exactly the config it was made with.
//!
//! The plugins are the ecosystem's (Debian's `containernetworking-plugins`: bridge,
//! host-local, portmap, firewall, …): berth writes no bridge or IPAM of its own.

pub mod cache;
pub mod conf;
pub mod exec;

use std::path::{Path, PathBuf};
use std::time::Duration;

use berth_ipc::{Code, Error, Result};
use serde_json::{Map, Value};

pub use conf::NetworkList;

/// Where networks, plugins and records are.
#[derive(Debug, Clone)]
pub struct Cni {
    /// The conf dir (`*.conflist`, `*.conf`, `*.json`).
    pub conf_dir: PathBuf,
    /// Where plugin binaries are looked for, in order.
    pub plugin_dirs: Vec<PathBuf>,
    /// Attachment records (`<cache_dir>/results/`).
    pub cache_dir: PathBuf,
    /// How long one plugin run may take before it is killed.
    pub timeout: Duration,
}

/// One attachment of a network to a network namespace.
#[derive(Debug, Clone, PartialEq)]
pub struct Attachment {
    /// `CNI_CONTAINERID`: the attachment's owner (unique per network and interface).
    pub container_id: String,
    /// `CNI_NETNS`: the network namespace file.
    pub netns: PathBuf,
    /// `CNI_IFNAME`: the interface made inside it.
    pub ifname: String,
    /// `CNI_ARGS`, `K=V` pairs (the kubelet's `K8S_POD_NAME` and friends).
    pub args: Vec<(String, String)>,
    /// Capability arguments (`portMappings`, `dns`, …), given as `runtimeConfig` to the
    /// plugins that declare the capability.
    pub capabilities: Map<String, Value>,
}

/// What an `ADD` gave: the final result as the last plugin printed it, and its addresses.
#[derive(Debug, Clone, PartialEq)]
pub struct Added {
    /// The result JSON.
    pub result: Value,
    /// Its IP addresses without prefix length (`10.88.0.5`), in the result's order.
    pub ips: Vec<String>,
}

impl Cni {
    /// The driver of conf dir `conf_dir` and plugins in `plugin_dirs`, keeping its records
    /// (and the default network's address allocations) under `state`; a plugin may run
    /// `timeout_ms` (at least 100 ms).
    pub fn new(conf_dir: &Path, plugin_dirs: &[PathBuf], state: &Path, timeout_ms: u64) -> Cni {
        Cni {
            conf_dir: conf_dir.to_path_buf(),
            plugin_dirs: plugin_dirs.to_vec(),
            cache_dir: state.to_path_buf(),
            timeout: Duration::from_millis(timeout_ms.max(100)),
        }
    }

    /// Where a network berth writes keeps host-local's address allocations.
    pub fn data_dir(&self) -> PathBuf {
        self.cache_dir.join("networks")
    }

    /// The network list named `name` in the conf dir; `NotFound` when none has that name.
    pub fn network(&self, name: &str) -> Result<NetworkList> {
        let (lists, broken) = conf::load_dir(&self.conf_dir)?;
        if let Some(list) = lists.into_iter().find(|l| l.name == name) {
            return Ok(list);
        }
        let why = broken.iter().map(|(p, e)| format!("{}: {e}", p.display())).collect::<Vec<_>>().join("; ");
        let mut msg = format!("network {name}: no such network in {}", self.conf_dir.display());
        if !why.is_empty() {
            msg.push_str(&format!(" (unreadable: {why})"));
        }
        Err(Error::not_found(msg))
    }

    /// Whether `net` can take new attachments now: every plugin is installed and, for a list
    /// of `cniVersion` 1.1.0 or later, each answers `STATUS` (network config only, no
    /// container) without error. Lists older than 1.1.0 have no `STATUS` (as libcni, they are
    /// ready once their plugins are installed), and a plugin that answers it does not know
    /// the command or the version (older than 1.1.0) counts as ready. The error names the
    /// network and the plugin.
    pub fn status(&self, net: &NetworkList) -> Result<()> {
        for p in &net.plugins {
            exec::find_plugin(&self.plugin_dirs, &p.kind)
                .map_err(|e| e.context(format!("network {}", net.name)))?;
        }
        if !version_at_least(&net.cni_version, (1, 1, 0)) {
            return Ok(());
        }
        for p in &net.plugins {
            let stdin = conf::plugin_input(net, p, None, &Map::new());
            match exec::run_status(self, net, p, &stdin) {
                Ok(_) => {}
                Err(e) if exec::is_unsupported(&e) => {
                    tracing::debug!(network = %net.name, plugin = %p.kind, error = %e, "CNI STATUS not supported; taken as ready");
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Checks the attachment of network `name` to `a` is as its `ADD` left it: each plugin's
    /// `CHECK`, in order, with the config and result recorded at `ADD` as `prevResult`. An
    /// error (naming the network and plugin) means the attachment is broken; `NotFound` when
    /// no finished attachment is recorded. Lists of `cniVersion` below 0.4.0 (where the spec
    /// defines no `CHECK`) and lists with `disableCheck: true` are not checked.
    pub fn check(&self, name: &str, a: &Attachment) -> Result<()> {
        let key = cache::key(name, &a.container_id, &a.ifname);
        let entry = cache::read(&self.cache_dir, &key)?;
        let Some((entry, result)) = entry.and_then(|e| e.result.clone().map(|r| (e, r))) else {
            return Err(Error::not_found(format!(
                "network {name}: no finished attachment of {} ({}) recorded",
                a.container_id, a.ifname
            )));
        };
        let net = entry.network()?;
        if !version_at_least(&net.cni_version, (0, 4, 0))
            || net.raw.get("disableCheck").and_then(Value::as_bool) == Some(true)
        {
            return Ok(());
        }
        let recorded = entry.attachment();
        for plugin in &net.plugins {
            let stdin = conf::plugin_input(&net, plugin, Some(&result), &recorded.capabilities);
            exec::run(self, &net, plugin, "CHECK", &recorded, &stdin)?;
        }
        Ok(())
    }

    /// Attaches `net` to `a`'s namespace: the record first, then each plugin's `ADD`. A
    /// failing plugin has the ones before it undone (`DEL` in reverse) and the record
    /// removed; the error names the network and the plugin.
    pub fn add(&self, net: &NetworkList, a: &Attachment) -> Result<Added> {
        let entry = cache::Entry::new(net, a);
        cache::write(&self.cache_dir, &entry)?;
        let mut prev: Option<Value> = None;
        for (i, plugin) in net.plugins.iter().enumerate() {
            let stdin = conf::plugin_input(net, plugin, prev.as_ref(), &a.capabilities);
            match exec::run(self, net, plugin, "ADD", a, &stdin) {
                Ok(out) => {
                    prev = Some(out.unwrap_or_else(|| Value::Object(Map::new())));
                    berth_ipc::failpoint!("cni.add.after_plugin");
                }
                Err(e) => {
                    self.del_plugins(net, &net.plugins[..=i], a, prev.as_ref());
                    let _ = cache::remove(&self.cache_dir, &entry.key());
                    return Err(e);
                }
            }
        }
        let result = prev.unwrap_or_else(|| Value::Object(Map::new()));
        let entry = cache::Entry { result: Some(result.clone()), ..entry };
        if let Err(e) = cache::write(&self.cache_dir, &entry) {
            self.del_plugins(net, &net.plugins, a, Some(&result));
            let _ = cache::remove(&self.cache_dir, &entry.key());
            return Err(e);
        }
        Ok(Added { ips: ips_of(&result), result })
    }

    /// Detaches network `name` from `a`: every plugin's `DEL`, last first, with the config
    /// and result recorded at `ADD` (the conf dir's list when there is no record). The
    /// record goes once every `DEL` succeeded; a failure keeps it for a later retry. An
    /// attachment never made (no record, no such network) is already detached.
    pub fn del(&self, name: &str, a: &Attachment) -> Result<()> {
        let key = cache::key(name, &a.container_id, &a.ifname);
        let (net, prev) = match cache::read(&self.cache_dir, &key)? {
            Some(entry) => (entry.network()?, entry.result),
            None => match self.network(name) {
                Ok(net) => (net, None),
                Err(e) if e.is(Code::NotFound) => return Ok(()),
                Err(e) => return Err(e),
            },
        };
        // A namespace already gone (or a file that no longer holds one) is passed as none, as
        // containerd does: the plugins then release what lives outside it (addresses, rules).
        let mut a = a.clone();
        if !is_netns(&a.netns) {
            a.netns = PathBuf::new();
        }
        let failed = self.del_plugins(&net, &net.plugins, &a, prev.as_ref());
        if let Some(e) = failed {
            return Err(e);
        }
        cache::remove(&self.cache_dir, &key)
    }

    /// `DEL` of `plugins`, last first, each tried; the first error is answered.
    fn del_plugins(
        &self,
        net: &NetworkList,
        plugins: &[conf::Plugin],
        a: &Attachment,
        prev: Option<&Value>,
    ) -> Option<Error> {
        let mut first = None;
        for plugin in plugins.iter().rev() {
            let stdin = conf::plugin_input(net, plugin, prev, &a.capabilities);
            if let Err(e) = exec::run(self, net, plugin, "DEL", a, &stdin) {
                tracing::warn!(network = %net.name, plugin = %plugin.kind, error = %e, "CNI DEL failed");
                first.get_or_insert(e);
            }
            berth_ipc::failpoint!("cni.del.after_plugin");
        }
        first
    }

    /// Every recorded attachment (for the start's reconcile).
    pub fn attachments(&self) -> Vec<cache::Entry> {
        cache::list(&self.cache_dir)
    }
}

/// The addresses in a CNI result (`ips[].address`, prefix length cut).
pub fn ips_of(result: &Value) -> Vec<String> {
    let Some(ips) = result.get("ips").and_then(Value::as_array) else { return Vec::new() };
    ips.iter()
        .filter_map(|ip| ip.get("address")?.as_str())
        .map(|a| a.split('/').next().unwrap_or(a).to_string())
        .collect()
}

/// Whether `path` is a namespace file (nsfs), as a held network namespace is.
#[allow(unsafe_code)]
pub fn is_netns(path: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    const NSFS_MAGIC: i64 = 0x6e73_6673;
    let Ok(c) = std::ffi::CString::new(path.as_os_str().as_bytes()) else { return false };
    // SAFETY: `c` is a NUL-terminated path; `buf` is a plain struct the call fills.
    let mut buf: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: as above; the pointers live for the call.
    let rc = unsafe { libc::statfs(c.as_ptr(), &mut buf) };
    rc == 0 && buf.f_type as i64 == NSFS_MAGIC
}

/// Whether CNI version `v` (`major.minor.patch`, missing parts 0) is at least `min`; an
/// unparsable version is not.
pub fn version_at_least(v: &str, min: (u64, u64, u64)) -> bool {
    let mut parts = v.trim().split('.').map(|p| p.parse::<u64>());
    let mut next = || parts.next().unwrap_or(Ok(0));
    match (next(), next(), next()) {
        (Ok(a), Ok(b), Ok(c)) => (a, b, c) >= min,
        _ => false,
    }
}

/// `path` joined for `CNI_PATH`.
fn joined(dirs: &[PathBuf]) -> String {
    dirs.iter().map(|d| d.display().to_string()).collect::<Vec<_>>().join(":")
}

/// Creates `dir` (0700) and its parents.
fn make_dir(dir: &Path) -> Result<()> {
    let mut b = std::fs::DirBuilder::new();
    std::os::unix::fs::DirBuilderExt::mode(b.recursive(true), 0o700);
    b.create(dir).map_err(|e| Error::io_at("create", dir, e))
}

/// What the unit tests share.
#[cfg(test)]
mod testing {
    use std::path::Path;

    /// A plugin written as a shell script: the driver is under test, not the plugin.
    pub fn plugin(dir: &Path, name: &str, body: &str) {
        let p = dir.join(name);
        std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).expect("write plugin");
        let mut perm = std::fs::metadata(&p).expect("meta").permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut perm, 0o755);
        std::fs::set_permissions(&p, perm).expect("chmod");
    }
}
