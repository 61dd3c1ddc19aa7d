//! Networks of the CNI conf dir as objects (`berth network ls|inspect|create|rm`): listed
//! with what they are (plugins, subnets, bridge) and who uses them (the sandboxes attached,
//! from the attachment records), created as bridge networks like the default one, and
//! removed.
//!
//! A network berth creates is `berth-<name>.conflist`, whose top-level `berthLabels` object
//! (libcni ignores keys it does not know, as it does nerdctl's `nerdctlLabels`) marks it as
//! berth's. Only such a network is removed: a conflist the administrator or another tool
//! wrote is theirs (berth never deletes it), and the default network is refused too (it is
//! written again at its first use anyway). Writes are a temp file renamed into place, under
//! one lock, so a duplicate name or an overlapping subnet is refused even when two creates
//! race, and no half-written conflist is ever read.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::Path;
use std::sync::Mutex;

use berth_cni::{Cni, NetworkList};
use berth_ipc::runtime::{CreateNetwork, NetworkInfo};
use berth_ipc::{Error, Result};
use berth_service_kit::blocking_value;
use berth_service_kit::config::NetworkConfig;
use serde_json::Value;

use crate::Runtime;

/// The top-level key marking a conflist berth created, holding its labels.
pub const LABELS_KEY: &str = "berthLabels";

/// Held while the conf dir is read to decide and then written.
static CONF_LOCK: Mutex<()> = Mutex::new(());

/// An IP prefix: an address and a prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    /// The network address.
    pub addr: IpAddr,
    /// The prefix length.
    pub prefix: u8,
}

impl Cidr {
    /// `a.b.c.d/n` or `x::y/n`; with `strict`, host bits must be clear.
    pub fn parse(s: &str, strict: bool) -> Result<Cidr> {
        let bad = |why: &str| Error::invalid(format!("subnet {s:?}: {why}"));
        let (addr, prefix) = s.split_once('/').ok_or_else(|| bad("expected ADDRESS/PREFIX"))?;
        let addr: IpAddr = addr.parse().map_err(|_| bad("not an IP address"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix: u8 = prefix.parse().ok().filter(|p| *p <= max).ok_or_else(|| bad("bad prefix length"))?;
        let cidr = Cidr { addr, prefix };
        if strict && cidr.network() != addr {
            return Err(bad(&format!("host bits set (the network is {}/{prefix})", cidr.network())));
        }
        Ok(cidr)
    }

    fn bits(addr: IpAddr) -> (u128, u32) {
        match addr {
            IpAddr::V4(a) => (u128::from(u32::from(a)), 32),
            IpAddr::V6(a) => (u128::from(a), 128),
        }
    }

    fn mask(prefix: u8, width: u32) -> u128 {
        if prefix == 0 {
            0
        } else {
            let all = if width == 32 { u128::from(u32::MAX) } else { u128::MAX };
            all & !((1u128 << (width - u32::from(prefix))) - 1)
        }
    }

    /// The network address (host bits cleared).
    pub fn network(&self) -> IpAddr {
        let (v, w) = Cidr::bits(self.addr);
        from_bits(v & Cidr::mask(self.prefix, w), self.addr.is_ipv4())
    }

    /// Whether `ip` is inside.
    pub fn contains(&self, ip: IpAddr) -> bool {
        if ip.is_ipv4() != self.addr.is_ipv4() {
            return false;
        }
        let (a, w) = Cidr::bits(self.addr);
        let m = Cidr::mask(self.prefix, w);
        (a & m) == (Cidr::bits(ip).0 & m)
    }

    /// Whether the two share an address.
    pub fn overlaps(&self, other: &Cidr) -> bool {
        if self.addr.is_ipv4() != other.addr.is_ipv4() {
            return false;
        }
        let shorter = if self.prefix <= other.prefix { self } else { other };
        let longer = if shorter == self { other } else { self };
        shorter.contains(longer.addr)
    }

    /// The first host address (the network address + 1).
    pub fn first_host(&self) -> IpAddr {
        let (v, _) = Cidr::bits(self.network());
        from_bits(v + 1, self.addr.is_ipv4())
    }
}

fn from_bits(v: u128, v4: bool) -> IpAddr {
    if v4 { IpAddr::V4(std::net::Ipv4Addr::from(v as u32)) } else { IpAddr::V6(std::net::Ipv6Addr::from(v)) }
}

/// The IPAM subnets and gateways of `list` (`ranges` of host-local, or the older `subnet`).
fn ipam_of(list: &NetworkList) -> (Vec<String>, Vec<String>) {
    let (mut subnets, mut gateways) = (Vec::new(), Vec::new());
    for p in &list.plugins {
        let Some(ipam) = p.config.get("ipam").and_then(Value::as_object) else { continue };
        let mut push = |r: &serde_json::Map<String, Value>| {
            if let Some(s) = r.get("subnet").and_then(Value::as_str) {
                subnets.push(s.to_string());
            }
            if let Some(g) = r.get("gateway").and_then(Value::as_str) {
                gateways.push(g.to_string());
            }
        };
        push(ipam);
        for set in ipam.get("ranges").and_then(Value::as_array).into_iter().flatten() {
            for r in set.as_array().into_iter().flatten().filter_map(Value::as_object) {
                push(r);
            }
        }
    }
    (subnets, gateways)
}

/// The bridge device of a bridge network.
fn bridge_of(list: &NetworkList) -> Option<String> {
    list.plugins
        .iter()
        .find(|p| p.kind == "bridge")
        .map(|p| p.config.get("bridge").and_then(Value::as_str).unwrap_or("cni0").to_string())
}

/// The labels of a conflist berth created (`None` for any other).
fn berth_labels(list: &NetworkList) -> Option<BTreeMap<String, String>> {
    let obj = list.raw.get(LABELS_KEY)?.as_object()?;
    Some(obj.iter().map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string())).collect())
}

/// Deletes bridge device `name` if it exists and is a bridge with no port left.
fn remove_bridge(name: &str) {
    let dev = Path::new("/sys/class/net").join(name);
    let ports = std::fs::read_dir(dev.join("brif")).map(|d| d.count());
    if !matches!(ports, Ok(0)) {
        return;
    }
    match std::process::Command::new("ip").args(["link", "delete", name, "type", "bridge"]).output() {
        Ok(o) if o.status.success() => tracing::info!(bridge = name, "bridge removed"),
        Ok(o) => {
            tracing::warn!(bridge = name, error = %String::from_utf8_lossy(&o.stderr).trim(), "bridge not removed")
        }
        Err(e) => tracing::warn!(bridge = name, error = %e, "bridge not removed: ip"),
    }
}

/// The default bridge name of a created network `name`: `berth-` and 8 hex digits of its
/// FNV-1a hash (15 bytes at most, as Linux allows).
pub fn bridge_name(name: &str) -> String {
    let mut h: u32 = 0x811c_9dc5;
    for b in name.bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    format!("berth-{h:08x}")
}

/// Checks a device name as Linux takes it.
fn check_ifname(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 15
        && name != "."
        && name != ".."
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(format!("bridge {name:?}: a device name is 1 to 15 of [A-Za-z0-9_.-]")))
    }
}

/// What `RemoveNetwork` and `CreateNetwork` need beyond a list: the conf dir's lists.
fn lists(cni: &Cni) -> Result<Vec<NetworkList>> {
    Ok(berth_cni::conf::load_dir(&cni.conf_dir)?.0)
}

/// The conflist of a new network, as the default one with `labels` kept.
fn new_list(cni: &Cni, req: &CreateNetwork, subnet: &Cidr, gateway: IpAddr, bridge: &str) -> Value {
    let mut list = berth_cni::conf::default_list(&req.name, bridge, &req.subnet, &cni.data_dir());
    if let Some(range) = list.pointer_mut("/plugins/0/ipam/ranges/0/0") {
        range["gateway"] = Value::String(gateway.to_string());
    }
    if subnet.addr.is_ipv6()
        && let Some(routes) = list.pointer_mut("/plugins/0/ipam/routes")
    {
        *routes = serde_json::json!([{ "dst": "::/0" }]);
    }
    list[LABELS_KEY] = serde_json::to_value(&req.labels).unwrap_or_default();
    list
}

/// Checks `req` against the conf dir's `existing` lists and answers the new conflist.
fn plan(cni: &Cni, config: &NetworkConfig, req: &CreateNetwork, existing: &[NetworkList]) -> Result<Value> {
    let name = &req.name;
    berth_cni::conf::check_name(name)?;
    let what = format!("network {name}");
    if name == "none" || name == "host" || name == "bridge" {
        return Err(Error::invalid(format!("{what}: the name is reserved (--network {name})")));
    }
    if let Some(other) = existing.iter().find(|l| &l.name == name) {
        return Err(Error::already_exists(format!("{what}: already exists ({})", other.file.display())));
    }
    if config.write_default && name == &config.default_network {
        return Err(Error::already_exists(format!("{what}: the name of the default network")));
    }
    let subnet = Cidr::parse(&req.subnet, true).map_err(|e| e.context(&what))?;
    if (subnet.addr.is_ipv4() && subnet.prefix > 30) || (subnet.addr.is_ipv6() && subnet.prefix > 126) {
        return Err(Error::invalid(format!("{what}: subnet {} is too small for a bridge", req.subnet)));
    }
    let mut taken: Vec<(String, String)> = Vec::new();
    for l in existing {
        taken.extend(ipam_of(l).0.into_iter().map(|s| (l.name.clone(), s)));
    }
    let default_unwritten =
        config.write_default && !existing.iter().any(|l| l.name == config.default_network);
    if default_unwritten {
        // Not written yet, but it will be at its first use: its subnet is spoken for.
        taken.push((config.default_network.clone(), config.default_subnet.clone()));
    }
    for (other, s) in &taken {
        if let Ok(c) = Cidr::parse(s, false)
            && c.overlaps(&subnet)
        {
            return Err(Error::precondition(format!(
                "{what}: subnet {} overlaps network {other}'s subnet {s}",
                req.subnet
            )));
        }
    }
    let gateway = match &req.gateway {
        None => subnet.first_host(),
        Some(g) => {
            let ip: IpAddr = g
                .parse()
                .map_err(|_| Error::invalid(format!("{what}: gateway {g:?} is not an IP address")))?;
            if !subnet.contains(ip) || ip == subnet.network() {
                return Err(Error::invalid(format!(
                    "{what}: gateway {g} is not a host address of subnet {}",
                    req.subnet
                )));
            }
            ip
        }
    };
    let bridge = req.bridge.clone().unwrap_or_else(|| bridge_name(name));
    check_ifname(&bridge).map_err(|e| e.context(&what))?;
    let default_bridge =
        default_unwritten.then(|| (config.default_network.clone(), config.default_bridge.clone()));
    let bridges = existing.iter().filter_map(|l| bridge_of(l).map(|b| (l.name.clone(), b)));
    if let Some((other, _)) = bridges.chain(default_bridge).find(|(_, b)| *b == bridge) {
        return Err(Error::precondition(format!("{what}: bridge {bridge} is network {other}'s")));
    }
    Ok(new_list(cni, req, &subnet, gateway, &bridge))
}

/// Writes `list` as `dir/berth-<name>.conflist`: a temp file renamed into place.
fn write_list(dir: &Path, name: &str, list: &Value) -> Result<std::path::PathBuf> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io_at("create", dir, e))?;
    let path = dir.join(format!("berth-{name}.conflist"));
    let tmp = dir.join(format!(".berth-{name}.conflist.tmp"));
    let text = serde_json::to_vec_pretty(list).map_err(|e| Error::internal_cause("conflist", e))?;
    let written = std::fs::write(&tmp, text)
        .and_then(|()| std::fs::File::open(&tmp)?.sync_all())
        .and_then(|()| std::fs::rename(&tmp, &path));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(Error::io_at("write", &path, e));
    }
    Ok(path)
}

impl Runtime {
    /// `<namespace>/<sandbox id>` of each CNI container id of a live sandbox dir. Blocking.
    fn sandbox_names(&self) -> BTreeMap<String, String> {
        let mut names = BTreeMap::new();
        let Ok(namespaces) = std::fs::read_dir(self.state.join("sandboxes")) else { return names };
        for ns in namespaces.flatten() {
            let ns_name = ns.file_name().to_string_lossy().into_owned();
            let Ok(ids) = std::fs::read_dir(ns.path()) else { continue };
            for id in ids.flatten() {
                let path = id.path();
                let id = id.file_name().to_string_lossy().into_owned();
                names.insert(crate::network::dir_cni_id(&path, &ns_name, &id), format!("{ns_name}/{id}"));
            }
        }
        names
    }

    /// The users of each network: its recorded attachments' sandboxes. Blocking.
    fn network_users(&self) -> BTreeMap<String, Vec<String>> {
        let names = self.sandbox_names();
        let mut users: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for entry in self.cni.attachments() {
            let who = names.get(&entry.container_id).cloned().unwrap_or(entry.container_id.clone());
            users.entry(entry.network_name.clone()).or_default().push(who);
        }
        for list in users.values_mut() {
            list.sort();
            list.dedup();
        }
        users
    }

    fn network_info(&self, list: &NetworkList, users: &BTreeMap<String, Vec<String>>) -> NetworkInfo {
        let (subnets, gateways) = ipam_of(list);
        let labels = berth_labels(list);
        NetworkInfo {
            name: list.name.clone(),
            file: list.file.display().to_string(),
            plugins: list.plugins.iter().map(|p| p.kind.clone()).collect(),
            kind: list.plugins.first().map(|p| p.kind.clone()).unwrap_or_default(),
            subnets,
            gateways,
            bridge: bridge_of(list),
            created_by_berth: labels.is_some(),
            labels: labels.unwrap_or_default(),
            default: list.name == self.network.default_network,
            users: users.get(&list.name).cloned().unwrap_or_default(),
        }
    }

    /// The default network as it will be written at its first use, while it is not (and
    /// berth is to write it): listed with an empty file.
    fn unwritten_default(&self, existing: &[NetworkList]) -> Option<NetworkList> {
        let config = &self.network;
        if !config.write_default || existing.iter().any(|l| l.name == config.default_network) {
            return None;
        }
        berth_cni::conf::parse(config.default_list(&self.cni)).ok()
    }

    /// `name` as the user may write it: `bridge` is the default network.
    fn network_name(&self, name: String) -> String {
        if name == "bridge" { self.network.default_network.clone() } else { name }
    }

    /// `ListNetworks`.
    pub async fn list_networks(&self) -> Result<Vec<NetworkInfo>> {
        let rt = self.clone();
        blocking_value("runtime worker", move || {
            let users = rt.network_users();
            let mut seen = std::collections::BTreeSet::new();
            let mut out = Vec::new();
            let existing = lists(&rt.cni)?;
            let default = rt.unwritten_default(&existing);
            // libcni takes the first file of a name; so does this list.
            for l in existing.iter().chain(default.iter()) {
                if seen.insert(l.name.clone()) {
                    out.push(rt.network_info(l, &users));
                }
            }
            Ok(out)
        })
        .await?
    }

    /// `GetNetwork`.
    pub async fn get_network(&self, name: String) -> Result<NetworkInfo> {
        let name = self.network_name(name);
        berth_cni::conf::check_name(&name)?;
        let rt = self.clone();
        blocking_value("runtime worker", move || {
            let list = match rt.cni.network(&name) {
                Err(e) if e.is(berth_ipc::Code::NotFound) && name == rt.network.default_network => {
                    rt.unwritten_default(&lists(&rt.cni)?).ok_or(e)?
                }
                other => other?,
            };
            Ok(rt.network_info(&list, &rt.network_users()))
        })
        .await?
    }

    /// `CreateNetwork`.
    pub async fn create_network(&self, req: CreateNetwork) -> Result<NetworkInfo> {
        berth_ipc::names::validate_user_labels(&req.labels)?;
        let rt = self.clone();
        blocking_value("runtime worker", move || {
            let _lock = CONF_LOCK.lock().unwrap_or_else(|p| p.into_inner());
            let existing = lists(&rt.cni)?;
            let list = plan(&rt.cni, &rt.network, &req, &existing)?;
            let path = write_list(&rt.cni.conf_dir, &req.name, &list)?;
            tracing::info!(network = %req.name, file = %path.display(), "network created");
            let list = berth_cni::conf::load_file(&path)?;
            Ok(rt.network_info(&list, &BTreeMap::new()))
        })
        .await?
    }

    /// `RemoveNetwork`.
    pub async fn remove_network(&self, name: String) -> Result<()> {
        let name = self.network_name(name);
        berth_cni::conf::check_name(&name)?;
        let rt = self.clone();
        blocking_value("runtime worker", move || {
            let _lock = CONF_LOCK.lock().unwrap_or_else(|p| p.into_inner());
            let list = rt.cni.network(&name)?;
            let what = format!("network {name}");
            if berth_labels(&list).is_none() && name == rt.network.default_network {
                return Err(Error::precondition(format!("{what}: the default network is not removed")));
            }
            if berth_labels(&list).is_none() {
                return Err(Error::precondition(format!(
                    "{what}: {} was not written by berth; remove it by hand",
                    list.file.display()
                )));
            }
            if let Some(users) = rt.network_users().get(&name).filter(|u| !u.is_empty()) {
                return Err(Error::precondition(format!("{what}: in use by sandbox {}", users.join(", "))));
            }
            std::fs::remove_file(&list.file).map_err(|e| Error::io_at("remove", &list.file, e))?;
            // host-local's allocations of a network with no attachment are only its
            // last-reserved marks: they go with it, so a later network of the name starts anew.
            let data = rt.cni.data_dir().join(&name);
            let _ = std::fs::remove_dir_all(data);
            // The bridge plugin makes the bridge at the first attachment and never removes
            // it; with no attachment left it holds nothing, so it goes with its network.
            if let Some(bridge) = bridge_of(&list) {
                remove_bridge(&bridge);
            }
            tracing::info!(network = %name, file = %list.file.display(), "network removed");
            Ok(())
        })
        .await?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidrs_parse_overlap_and_hold() {
        let a = Cidr::parse("10.214.40.0/24", true).expect("a");
        let b = Cidr::parse("10.214.40.128/25", true).expect("b");
        let c = Cidr::parse("10.214.41.0/24", true).expect("c");
        assert!(a.overlaps(&b) && b.overlaps(&a));
        assert!(!a.overlaps(&c));
        assert!(Cidr::parse("10.0.0.0/8", true).expect("8").overlaps(&a));
        assert!(Cidr::parse("10.214.40.5/24", true).is_err());
        assert!(Cidr::parse("10.214.40.5/24", false).is_ok());
        assert!(Cidr::parse("10.214.40.0/33", true).is_err());
        assert!(Cidr::parse("10.214.40.0", true).is_err());
        assert!(Cidr::parse("nope/24", true).is_err());
        assert_eq!(a.first_host().to_string(), "10.214.40.1");
        assert!(!a.contains("10.214.41.1".parse().expect("ip")));
        let v6 = Cidr::parse("fd00:214::/64", true).expect("v6");
        assert!(!v6.overlaps(&a));
        assert_eq!(v6.first_host().to_string(), "fd00:214::1");
        assert!(Cidr::parse("0.0.0.0/0", true).expect("all").overlaps(&a));
    }

    #[test]
    fn bridge_names_fit_linux() {
        let b = bridge_name("a-rather-long-network-name");
        assert_eq!(b.len(), 14);
        assert!(check_ifname(&b).is_ok());
        assert!(check_ifname("sixteen-bytes-xx").is_err());
        assert!(check_ifname("a/b").is_err());
    }
}
