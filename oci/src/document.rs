//! OCI and Docker image JSON: descriptors, indexes, manifests, and the parts of an image
//! config berth reads (`rootfs.diff_ids`, platform, the checked execution fields). Parsed
//! from bounded byte buffers; unknown fields are ignored, but what is kept is validated
//! (digests parse, sizes are numbers, schema 1 is refused).

use std::collections::BTreeMap;

use berth_ipc::{Code, Digest, Error, Result};
use serde::{Deserialize, Serialize};

use crate::media::{DOCKER_SCHEMA1, OCI_INDEX, OCI_MANIFEST, is_index, is_layer, is_manifest};
use crate::platform::Platform;

/// An OCI content descriptor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    /// Media type.
    pub media_type: String,
    /// Digest.
    pub digest: Digest,
    /// Size in bytes.
    pub size: u64,
    /// Platform, in an index.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    /// Annotations.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// Where else the blob may be fetched (foreign layers); never sent credentials.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub urls: Vec<String>,
}

impl Descriptor {
    /// A plain descriptor.
    pub fn new(media_type: &str, digest: Digest, size: u64) -> Descriptor {
        Descriptor {
            media_type: media_type.to_string(),
            digest,
            size,
            platform: None,
            annotations: BTreeMap::new(),
            urls: Vec::new(),
        }
    }
}

/// An index or manifest list.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Index {
    /// Always 2.
    pub schema_version: u32,
    /// The media type, if written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// Children.
    pub manifests: Vec<Descriptor>,
    /// Annotations.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// A single-platform manifest.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    /// Always 2.
    pub schema_version: u32,
    /// The media type, if written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// The config blob.
    pub config: Descriptor,
    /// Layers, base first.
    pub layers: Vec<Descriptor>,
    /// Annotations.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// The parts of an image config distribution reads.
#[derive(Debug, Clone, Deserialize)]
pub struct Config {
    /// OS.
    #[serde(default)]
    pub os: String,
    /// Architecture.
    #[serde(default)]
    pub architecture: String,
    /// Variant.
    #[serde(default)]
    pub variant: Option<String>,
    /// The root filesystem.
    pub rootfs: RootFs,
    /// Execution defaults, as far as they are checked on the way in.
    #[serde(default)]
    pub config: Option<crate::config_check::Exec>,
}

/// `rootfs` of a config.
#[derive(Debug, Clone, Deserialize)]
pub struct RootFs {
    /// `layers`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Uncompressed layer digests, base first.
    pub diff_ids: Vec<Digest>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Probe {
    #[serde(default)]
    schema_version: Option<u32>,
    #[serde(default)]
    media_type: Option<String>,
    #[serde(default)]
    manifests: Option<serde_json::Value>,
    #[serde(default)]
    config: Option<serde_json::Value>,
    #[serde(default)]
    fs_layers: Option<serde_json::Value>,
}

fn bad(what: &str, e: impl std::fmt::Display) -> Error {
    Error::invalid(format!("{what}: {e}"))
}

/// Tells what kind of document `data` is: an index or manifest media type. Schema 1 and
/// unknown documents are refused.
pub fn sniff(data: &[u8], declared: &str, what: &str) -> Result<String> {
    if DOCKER_SCHEMA1.contains(&declared) {
        return Err(Error::new(
            Code::Unimplemented,
            format!("{what}: docker schema 1 manifests are not supported"),
        ));
    }
    let p: Probe = serde_json::from_slice(data).map_err(|e| bad(what, e))?;
    if p.schema_version == Some(1) || p.fs_layers.is_some() {
        return Err(Error::new(
            Code::Unimplemented,
            format!("{what}: docker schema 1 manifests are not supported"),
        ));
    }
    if p.schema_version != Some(2) {
        return Err(bad(what, "schemaVersion is not 2"));
    }
    let mt = p.media_type.unwrap_or_default();
    if is_index(&mt) || is_manifest(&mt) {
        return Ok(mt);
    }
    if is_index(declared) || is_manifest(declared) {
        return Ok(declared.to_string());
    }
    match (p.manifests.is_some(), p.config.is_some()) {
        (true, false) => Ok(OCI_INDEX.to_string()),
        (false, true) => Ok(OCI_MANIFEST.to_string()),
        _ => Err(bad(what, format!("unknown document type {mt:?}"))),
    }
}

/// Parses an index.
pub fn parse_index(data: &[u8], what: &str) -> Result<Index> {
    let i: Index = serde_json::from_slice(data).map_err(|e| bad(what, e))?;
    if i.schema_version != 2 {
        return Err(bad(what, "schemaVersion is not 2"));
    }
    Ok(i)
}

/// Parses a manifest.
pub fn parse_manifest(data: &[u8], what: &str) -> Result<Manifest> {
    let m: Manifest = serde_json::from_slice(data).map_err(|e| bad(what, e))?;
    if m.schema_version != 2 {
        return Err(bad(what, "schemaVersion is not 2"));
    }
    for l in &m.layers {
        if !is_layer(&l.media_type) {
            return Err(Error::new(
                Code::Unimplemented,
                format!("{what}: layer {} has unsupported media type {:?}", l.digest, l.media_type),
            ));
        }
    }
    Ok(m)
}

/// Parses a config, refusing a hostile `User`, `WorkingDir` or `Volumes`
/// ([`crate::config_check`]).
pub fn parse_config(data: &[u8], what: &str) -> Result<Config> {
    let c: Config = serde_json::from_slice(data).map_err(|e| bad(what, e))?;
    if let Some(exec) = &c.config {
        crate::config_check::check(exec, what)?;
    }
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn platforms_parse_and_match() {
        let p = Platform::parse("linux/arm64/v8").expect("parse");
        assert!(p.matches(&Platform::parse("linux/arm64").expect("parse")));
        assert!(!p.matches(&Platform::parse("linux/amd64").expect("parse")));
        assert!(Platform::parse("linux").is_err());
        assert!(Platform::parse("linux/../x").is_err());
    }

    #[test]
    fn schema1_is_refused() {
        let e = sniff(br#"{"schemaVersion":1,"fsLayers":[]}"#, "", "m").expect_err("schema1");
        assert_eq!(e.code, Code::Unimplemented);
        assert_eq!(sniff(br#"{"schemaVersion":2,"manifests":[]}"#, "", "m").expect("index"), OCI_INDEX);
    }
}
