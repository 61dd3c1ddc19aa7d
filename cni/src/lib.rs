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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::plugin;

    fn driver(dir: &Path) -> Cni {
        Cni {
            conf_dir: dir.join("conf"),
            plugin_dirs: vec![dir.to_path_buf()],
            cache_dir: dir.join("cache"),
            timeout: Duration::from_secs(5),
        }
    }

    fn attachment(netns: &str) -> Attachment {
        Attachment {
            container_id: "pod-chk".into(),
            netns: netns.into(),
            ifname: "eth0".into(),
            args: Vec::new(),
            capabilities: Map::new(),
        }
    }

    fn list(version: &str, extra: Value, kinds: &[&str]) -> NetworkList {
        let plugins: Vec<Value> = kinds.iter().map(|k| serde_json::json!({ "type": k })).collect();
        let mut v = serde_json::json!({"cniVersion": version, "name": "t", "plugins": plugins});
        if let (Some(o), Some(e)) = (v.as_object_mut(), extra.as_object()) {
            o.extend(e.clone());
        }
        conf::parse(v).expect("list")
    }

    fn calls(dir: &Path) -> Vec<String> {
        std::fs::read_to_string(dir.join("calls")).unwrap_or_default().lines().map(str::to_string).collect()
    }

    /// `name` logs `<name> <command> <has prevResult>` and answers ADD with a result; its
    /// CHECK fails when the file `broken` exists.
    fn logging(dir: &Path, name: &str) {
        plugin(
            dir,
            name,
            &format!(
                r#"read -r conf; echo "{name} $CNI_COMMAND $(echo "$conf" | grep -c '"prevResult":{{"cniVersion":"1.0.0","ips"')" >> {c}
case "$CNI_COMMAND" in
ADD) echo '{{"cniVersion":"1.0.0","ips":[{{"address":"10.9.0.7/24"}}]}}';;
CHECK) if [ -e {b} ]; then echo '{{"cniVersion":"1.0.0","code":100,"msg":"eth0 is gone"}}'; exit 1; fi;;
esac
exit 0"#,
                c = dir.join("calls").display(),
                b = dir.join("broken").display()
            ),
        );
    }

    #[test]
    fn check_runs_each_plugin_in_order_with_the_recorded_result_and_names_the_failing_one() {
        let dir = tempfile::tempdir().expect("tmp");
        let (cni, a) = (driver(dir.path()), attachment("/proc/self/ns/net"));
        let e = cni.check("t", &a).expect_err("nothing attached");
        assert!(e.is(Code::NotFound) && e.message.contains("network t"), "{e}");
        logging(dir.path(), "first");
        logging(dir.path(), "second");
        cni.add(&list("1.0.0", Value::Null, &["first", "second"]), &a).expect("add");
        cni.check("t", &a).expect("check passes");
        assert_eq!(calls(dir.path())[2..], ["first CHECK 1", "second CHECK 1"], "in order, with prevResult");
        std::fs::write(dir.path().join("broken"), b"").expect("break");
        let e = cni.check("t", &a).expect_err("check fails");
        assert!(e.message.contains("network t: plugin first CHECK: eth0 is gone"), "{e}");
        assert_eq!(calls(dir.path()).len(), 5, "the first failure ends the check");
        cni.del("t", &a).expect("del");
    }

    #[test]
    fn check_is_skipped_below_0_4_0_and_with_disable_check() {
        let dir = tempfile::tempdir().expect("tmp");
        let (cni, a) = (driver(dir.path()), attachment("/proc/self/ns/net"));
        logging(dir.path(), "first");
        std::fs::write(dir.path().join("broken"), b"").expect("break");
        for (version, extra) in [("0.3.1", Value::Null), ("1.0.0", serde_json::json!({"disableCheck": true}))]
        {
            cni.add(&list(version, extra, &["first"]), &a).expect("add");
            cni.check("t", &a).expect("not checked");
            cni.del("t", &a).expect("del");
        }
        assert!(!calls(dir.path()).iter().any(|c| c.contains("CHECK")), "{:?}", calls(dir.path()));
        cni.add(&list("0.4.0", Value::Null, &["first"]), &a).expect("add");
        assert!(cni.check("t", &a).is_err(), "0.4.0 has CHECK");
        cni.del("t", &a).expect("del");
    }

    #[test]
    fn status_runs_without_a_container_and_takes_unknown_command_as_ready() {
        let dir = tempfile::tempdir().expect("tmp");
        let cni = driver(dir.path());
        let log = dir.path().join("calls");
        plugin(
            dir.path(),
            "down",
            &format!(
                r#"echo "down $CNI_COMMAND [${{CNI_CONTAINERID-unset}}] [${{CNI_NETNS-unset}}]" >> {}
echo '{{"cniVersion":"1.1.0","code":50,"msg":"no addresses to give"}}'; exit 1"#,
                log.display()
            ),
        );
        plugin(dir.path(), "old", r#"echo '{"code":4,"msg":"unknown CNI_COMMAND: STATUS"}'; exit 1"#);
        plugin(
            dir.path(),
            "older",
            r#"echo '{"code":1,"msg":"incompatible CNI versions","details":"config is \"1.1.0\""}'; exit 1"#,
        );
        plugin(dir.path(), "up", "exit 0");
        cni.status(&list("1.1.0", Value::Null, &["up", "old", "older"])).expect("ready");
        let e = cni.status(&list("1.1.0", Value::Null, &["up", "down"])).expect_err("not ready");
        assert!(e.message.contains("network t: plugin down STATUS: no addresses to give"), "{e}");
        assert_eq!(calls(dir.path()), ["down STATUS [unset] [unset]"]);
        // Before 1.1.0 there is no STATUS: installed plugins are enough.
        cni.status(&list("1.0.0", Value::Null, &["down"])).expect("ready without STATUS");
        assert_eq!(calls(dir.path()).len(), 1);
        let e = cni.status(&list("1.1.0", Value::Null, &["up", "absent"])).expect_err("missing");
        assert!(e.is(Code::NotFound) && e.message.contains("network t: plugin absent"), "{e}");
    }

    #[test]
    fn versions_compare() {
        assert!(version_at_least("0.4.0", (0, 4, 0)) && version_at_least("1.0", (0, 4, 0)));
        assert!(!version_at_least("0.3.1", (0, 4, 0)) && !version_at_least("x", (0, 0, 0)));
        assert!(version_at_least("1.1.0", (1, 1, 0)) && !version_at_least("1.0.0", (1, 1, 0)));
    }

    /// Removes the test's network namespace and bridge, whatever happened.
    struct Cleanup {
        netns: String,
        bridge: String,
    }

    impl Drop for Cleanup {
        fn drop(&mut self) {
            let _ = std::process::Command::new("ip").args(["netns", "delete", &self.netns]).status();
            let _ = std::process::Command::new("ip").args(["link", "delete", &self.bridge]).status();
        }
    }

    #[test]
    fn real_bridge_check_passes_after_add_and_fails_once_the_veth_is_gone() {
        let plugins = PathBuf::from("/usr/lib/cni");
        // SAFETY: geteuid has no preconditions.
        #[allow(unsafe_code)]
        let root = unsafe { libc::geteuid() } == 0;
        if !root || !plugins.join("bridge").exists() || !plugins.join("host-local").exists() {
            eprintln!("skipped: needs root and Debian's CNI plugins");
            return;
        }
        let dir = tempfile::tempdir().expect("tmp");
        let id = std::process::id() % 100_000;
        let guard = Cleanup { netns: format!("berth-g-chk-{id}"), bridge: format!("bgchk{id}") };
        let ok = std::process::Command::new("ip").args(["netns", "add", &guard.netns]).status();
        assert!(ok.is_ok_and(|s| s.success()), "ip netns add");
        let cni = Cni { plugin_dirs: vec![plugins], ..driver(dir.path()) };
        // No isGateway or ipMasq: the host's ip_forward and iptables stay as they are.
        let net = conf::parse(serde_json::json!({"cniVersion":"1.0.0","name":"berth-g-chk","plugins":[{
            "type":"bridge","bridge": guard.bridge,
            "ipam":{"type":"host-local","ranges":[[{"subnet":"10.214.50.0/24"}]],
                    "dataDir": dir.path().join("ipam")}}]}))
        .expect("list");
        let a = attachment(&format!("/run/netns/{}", guard.netns));
        let added = cni.add(&net, &a).expect("add");
        assert!(added.ips.iter().any(|ip| ip.starts_with("10.214.50.")), "{added:?}");
        cni.check("berth-g-chk", &a).expect("check after add");
        let ok =
            std::process::Command::new("ip").args(["-n", &guard.netns, "link", "delete", "eth0"]).status();
        assert!(ok.is_ok_and(|s| s.success()), "delete the veth");
        let e = cni.check("berth-g-chk", &a).expect_err("check after the veth is gone");
        assert!(e.message.contains("network berth-g-chk: plugin bridge CHECK"), "{e}");
        cni.del("berth-g-chk", &a).expect("del");
        assert!(cni.attachments().is_empty());
        cni.status(&net).expect("the network is ready");
    }
}
