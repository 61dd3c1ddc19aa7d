//! Network lists in a conf dir, as libcni reads them: `*.conflist` (a list of plugins),
//! `*.conf` and `*.json` (one plugin, taken as a list of one), in file-name order. A file that
//! does not parse is reported with its path and the reason, and skipped; it does not hide the
//! others.

use std::path::{Path, PathBuf};

use berth_ipc::{Error, Result};
use serde_json::{Map, Value};

/// Largest conf file read.
const MAX_CONF: u64 = 1 << 20;

/// One plugin of a list.
#[derive(Debug, Clone, PartialEq)]
pub struct Plugin {
    /// Its `type`: the binary's name.
    pub kind: String,
    /// Its config object, as written.
    pub config: Map<String, Value>,
}

/// A network: a named list of plugins.
#[derive(Debug, Clone, PartialEq)]
pub struct NetworkList {
    /// `name`.
    pub name: String,
    /// `cniVersion`.
    pub cni_version: String,
    /// `plugins`, in order.
    pub plugins: Vec<Plugin>,
    /// The list as JSON (what an attachment's record keeps).
    pub raw: Value,
    /// The file it came from (empty for one parsed from a record).
    pub file: PathBuf,
}

/// Conf files that could not be read, with why.
pub type Broken = Vec<(PathBuf, String)>;

/// Network lists in `dir`, sorted by file name, and the files that could not be read. A
/// missing dir holds none.
pub fn load_dir(dir: &Path) -> Result<(Vec<NetworkList>, Broken)> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((Vec::new(), Vec::new())),
        Err(e) => return Err(Error::io_at("read", dir, e)),
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| matches!(p.extension().and_then(|e| e.to_str()), Some("conflist" | "conf" | "json")))
        .collect();
    files.sort();
    let (mut lists, mut broken) = (Vec::new(), Vec::new());
    for file in files {
        match load_file(&file) {
            Ok(list) => lists.push(list),
            Err(e) => broken.push((file, e.message)),
        }
    }
    Ok((lists, broken))
}

/// One conf file.
pub fn load_file(file: &Path) -> Result<NetworkList> {
    use std::io::Read;
    let f = std::fs::File::open(file).map_err(|e| Error::io_at("open", file, e))?;
    let mut text = Vec::new();
    f.take(MAX_CONF + 1).read_to_end(&mut text).map_err(|e| Error::io_at("read", file, e))?;
    if text.len() as u64 > MAX_CONF {
        return Err(Error::invalid(format!("{}: larger than {MAX_CONF} bytes", file.display())));
    }
    let value: Value = serde_json::from_slice(&text)
        .map_err(|e| Error::invalid(format!("{}: not JSON: {e}", file.display())))?;
    let single = file.extension().and_then(|e| e.to_str()) != Some("conflist");
    let value = if single { as_list(value) } else { value };
    let mut list = parse(value).map_err(|e| Error::invalid(format!("{}: {}", file.display(), e.message)))?;
    list.file = file.to_path_buf();
    Ok(list)
}

/// A single plugin's config as a list of one (its `name` and `cniVersion` lifted).
fn as_list(plugin: Value) -> Value {
    let name = plugin.get("name").cloned().unwrap_or(Value::Null);
    let version = plugin.get("cniVersion").cloned().unwrap_or(Value::Null);
    serde_json::json!({ "name": name, "cniVersion": version, "plugins": [plugin] })
}

/// A list from its JSON, checked: a valid name, a version, plugins with plain `type`s.
pub fn parse(value: Value) -> Result<NetworkList> {
    let obj = value.as_object().ok_or_else(|| Error::invalid("a network list must be a JSON object"))?;
    let name = obj.get("name").and_then(Value::as_str).unwrap_or_default().to_string();
    check_name(&name)?;
    let cni_version = obj.get("cniVersion").and_then(Value::as_str).unwrap_or_default().to_string();
    if cni_version.is_empty() {
        return Err(Error::invalid(format!("network {name}: cniVersion is missing")));
    }
    let raw_plugins = obj
        .get("plugins")
        .and_then(Value::as_array)
        .filter(|p| !p.is_empty())
        .ok_or_else(|| Error::invalid(format!("network {name}: plugins must be a non-empty list")))?;
    let mut plugins = Vec::with_capacity(raw_plugins.len());
    for (i, p) in raw_plugins.iter().enumerate() {
        let config = p
            .as_object()
            .ok_or_else(|| Error::invalid(format!("network {name}: plugin {i} is not an object")))?
            .clone();
        let kind = config.get("type").and_then(Value::as_str).unwrap_or_default().to_string();
        let plain = !kind.is_empty()
            && kind != "."
            && kind != ".."
            && kind.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
        if !plain {
            return Err(Error::invalid(format!(
                "network {name}: plugin {i}: type {kind:?} is not a plugin name"
            )));
        }
        plugins.push(Plugin { kind, config });
    }
    Ok(NetworkList { name, cni_version, plugins, raw: value, file: PathBuf::new() })
}

/// A network name as the CNI spec allows: `[A-Za-z0-9][A-Za-z0-9_.-]*`.
pub fn check_name(name: &str) -> Result<()> {
    let ok = name.len() <= 128
        && name.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(format!("network name {name:?}: expected [A-Za-z0-9][A-Za-z0-9_.-]*")))
    }
}

/// What plugin `p` of `net` reads on stdin: its config with the list's `name` and
/// `cniVersion`, the previous result, and the capability arguments it declares.
pub fn plugin_input(
    net: &NetworkList,
    p: &Plugin,
    prev: Option<&Value>,
    capabilities: &Map<String, Value>,
) -> Vec<u8> {
    let mut conf = p.config.clone();
    conf.insert("name".into(), Value::String(net.name.clone()));
    conf.insert("cniVersion".into(), Value::String(net.cni_version.clone()));
    if let Some(prev) = prev {
        conf.insert("prevResult".into(), prev.clone());
    }
    let declared = p.config.get("capabilities").and_then(Value::as_object);
    let runtime: Map<String, Value> = capabilities
        .iter()
        .filter(|(k, _)| declared.and_then(|d| d.get(*k)).and_then(Value::as_bool) == Some(true))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    if !runtime.is_empty() {
        conf.insert("runtimeConfig".into(), Value::Object(runtime));
    }
    serde_json::to_vec(&Value::Object(conf)).unwrap_or_default()
}

/// berth's default network, `name`: a bridge with host-local addresses from `subnet`
/// (recorded under `data_dir`), outbound NAT, port mappings and the firewall plugin.
pub fn default_list(name: &str, bridge: &str, subnet: &str, data_dir: &Path) -> Value {
    serde_json::json!({
        "cniVersion": "1.0.0",
        "name": name,
        "plugins": [
            {
                "type": "bridge",
                "bridge": bridge,
                "isGateway": true,
                "ipMasq": true,
                "hairpinMode": true,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{ "subnet": subnet }]],
                    "routes": [{ "dst": "0.0.0.0/0" }],
                    "dataDir": data_dir,
                }
            },
            { "type": "portmap", "capabilities": { "portMappings": true } },
            { "type": "firewall" },
            { "type": "tuning" }
        ]
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) {
        std::fs::write(dir.join(name), text).expect("write conf");
    }

    #[test]
    fn lists_and_single_plugins_load_in_name_order_and_bad_files_are_named() {
        let dir = tempfile::tempdir().expect("tmp");
        write(
            dir.path(),
            "20-b.conflist",
            r#"{"cniVersion":"1.0.0","name":"b","plugins":[{"type":"bridge"},{"type":"portmap","capabilities":{"portMappings":true}}]}"#,
        );
        write(dir.path(), "10-a.conf", r#"{"cniVersion":"0.4.0","name":"a","type":"ptp"}"#);
        write(dir.path(), "30-bad.conflist", "{not json");
        write(dir.path(), "40-empty.conflist", r#"{"cniVersion":"1.0.0","name":"e","plugins":[]}"#);
        write(
            dir.path(),
            "50-escape.conflist",
            r#"{"cniVersion":"1.0.0","name":"x","plugins":[{"type":"../bin/sh"}]}"#,
        );
        write(dir.path(), "README", "not a conf");
        let (lists, broken) = load_dir(dir.path()).expect("load");
        let names: Vec<&str> = lists.iter().map(|l| l.name.as_str()).collect();
        assert_eq!(names, ["a", "b"]);
        assert_eq!(lists[0].plugins[0].kind, "ptp");
        assert_eq!(lists[0].cni_version, "0.4.0");
        assert_eq!(broken.len(), 3, "{broken:?}");
        assert!(broken[0].1.contains("not JSON"), "{broken:?}");
        assert!(broken[1].1.contains("non-empty"), "{broken:?}");
        assert!(broken[2].1.contains("not a plugin name"), "{broken:?}");
    }

    #[test]
    fn a_plugin_gets_name_version_prev_result_and_only_its_capabilities() {
        let list = parse(serde_json::json!({"cniVersion":"1.0.0","name":"n","plugins":[
            {"type":"bridge"},
            {"type":"portmap","capabilities":{"portMappings":true}}]}))
        .expect("parse");
        let caps: Map<String, Value> = serde_json::from_value(serde_json::json!({
            "portMappings": [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}],
            "bandwidth": {"ingressRate": 1}
        }))
        .expect("caps");
        let prev = serde_json::json!({"cniVersion":"1.0.0","ips":[{"address":"10.1.0.2/24"}]});
        let bridge: Value =
            serde_json::from_slice(&plugin_input(&list, &list.plugins[0], None, &caps)).expect("json");
        assert_eq!(bridge["name"], "n");
        assert!(bridge.get("runtimeConfig").is_none() && bridge.get("prevResult").is_none(), "{bridge}");
        let pm: Value =
            serde_json::from_slice(&plugin_input(&list, &list.plugins[1], Some(&prev), &caps)).expect("json");
        assert_eq!(pm["prevResult"], prev);
        assert_eq!(pm["runtimeConfig"]["portMappings"][0]["hostPort"], 8080);
        assert!(pm["runtimeConfig"].get("bandwidth").is_none(), "undeclared capability passed: {pm}");
    }

    #[test]
    fn names_are_checked() {
        for ok in ["berth", "k8s-pod-network", "a.b_c"] {
            check_name(ok).expect(ok);
        }
        for bad in ["", "-x", "a/b", "a b", "../x"] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
    }
}
