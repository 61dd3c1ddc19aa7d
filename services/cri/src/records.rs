//! The CRI state kept in metadata: a pod's `PodSandboxConfig` as an extension of its sandbox
//! record, a container's `ContainerConfig` (with what CreateContainer resolved) as an
//! extension of its container record, and the start time StartContainer saw. JSON, so a
//! field the CRI grows later does not make old records unreadable.

use std::collections::BTreeMap;

use berth_ipc::{Error, Result};
use k8s_cri::v1::{ContainerConfig, PodSandboxConfig};
use serde::{Deserialize, Serialize};

/// Sandbox extension: the pod's config, as RunPodSandbox got it.
pub const POD_EXT: &str = "io.berth.cri/pod";
/// Container extension: [`ContainerRecord`].
pub const CONTAINER_EXT: &str = "io.berth.cri/container";
/// Container extension: when its task started (Unix nanoseconds, decimal).
pub const STARTED_EXT: &str = "io.berth.cri/started";

/// What the CRI service keeps of a container.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ContainerRecord {
    /// The config as CreateContainer got it.
    pub config: ContainerConfig,
    /// Its pod.
    pub sandbox_id: String,
    /// The image as berth names it (normalized reference, or the id's image).
    pub image_name: String,
    /// The image id (its config's digest).
    pub image_id: String,
    /// Its log file (the pod's log directory joined with the container's log path), or empty.
    pub log_path: String,
    /// The image config's `StopSignal` at create (empty: SIGTERM), which StopContainer sends.
    #[serde(default)]
    pub stop_signal: String,
}

/// The pod config kept in a sandbox's extensions.
pub fn pod_config(extensions: &BTreeMap<String, Vec<u8>>, id: &str) -> Result<PodSandboxConfig> {
    let raw = extensions
        .get(POD_EXT)
        .ok_or_else(|| Error::not_found(format!("pod sandbox {id}: not a CRI sandbox (no {POD_EXT})")))?;
    serde_json::from_slice(raw)
        .map_err(|e| Error::new(berth_ipc::Code::DataLoss, format!("pod sandbox {id}: {e}")))
}

/// The CRI record kept in a container's extensions.
pub fn container_record(extensions: &BTreeMap<String, Vec<u8>>, id: &str) -> Result<ContainerRecord> {
    let raw = extensions.get(CONTAINER_EXT).ok_or_else(|| {
        Error::not_found(format!("container {id}: not a CRI container (no {CONTAINER_EXT})"))
    })?;
    serde_json::from_slice(raw)
        .map_err(|e| Error::new(berth_ipc::Code::DataLoss, format!("container {id}: {e}")))
}

/// JSON of `value`, for an extension.
pub fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>> {
    serde_json::to_vec(value).map_err(|e| Error::internal_cause("CRI record", e))
}

/// A new object id: 64 hex digits from the kernel's random source, as containerd's.
pub fn new_id() -> Result<String> {
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut bytes))
        .map_err(|e| Error::internal_cause("/dev/urandom", e))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// The full id of `prefix` among `ids`: an exact match, else the one id it begins (crictl
/// takes id prefixes). `NotFound` for none, `InvalidArgument` for several.
pub fn resolve_id<'a>(prefix: &str, ids: impl IntoIterator<Item = &'a str>, what: &str) -> Result<String> {
    if prefix.is_empty() {
        return Err(Error::invalid(format!("{what} id must not be empty")));
    }
    let mut found = Vec::new();
    for id in ids {
        if id == prefix {
            return Ok(id.to_string());
        }
        if id.starts_with(prefix) {
            found.push(id);
        }
    }
    match found.as_slice() {
        [one] => Ok(one.to_string()),
        [] => Err(Error::not_found(format!("{what} {prefix}: not found"))),
        _ => Err(Error::invalid(format!("{what} id {prefix}: matches {} {what}s", found.len()))),
    }
}

/// Nanoseconds as the CRI's `int64`.
pub fn ns_i64(ns: u64) -> i64 {
    i64::try_from(ns).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_resolve_by_prefix() {
        let ids = ["abc123", "abd456", "x"];
        assert_eq!(resolve_id("abc", ids, "container").expect("one"), "abc123");
        assert_eq!(resolve_id("x", ids, "container").expect("exact"), "x");
        assert!(resolve_id("ab", ids, "container").expect_err("two").message.contains("matches 2"));
        assert!(resolve_id("zz", ids, "container").expect_err("none").is(berth_ipc::Code::NotFound));
        assert_eq!(new_id().expect("id").len(), 64);
    }
}
