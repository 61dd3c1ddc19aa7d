//! OCI and Docker image JSON: media types, descriptors, indexes, manifests, and the parts of
//! an image config distribution needs (`rootfs.diff_ids`, platform). Parsed from bounded
//! byte buffers; unknown fields are ignored, but what is kept is validated (digests parse,
//! sizes are numbers, schema 1 is refused).

use std::collections::BTreeMap;

use berth_ipc::{Code, Digest, Error, Result};
use serde::{Deserialize, Serialize};

/// The largest manifest, index or config accepted.
pub const MAX_JSON: u64 = 4 << 20;

/// OCI image index.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// OCI image manifest.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image config.
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// OCI layer, uncompressed.
pub const OCI_LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
/// OCI layer, gzip.
pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
/// OCI layer, zstd.
pub const OCI_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
/// Docker manifest list.
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// Docker schema 2 manifest.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker image config.
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
/// Docker layer, gzip.
pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
/// Docker layer, uncompressed.
pub const DOCKER_LAYER_TAR: &str = "application/vnd.docker.image.rootfs.diff.tar";
/// Docker schema 1 manifests, refused.
pub const DOCKER_SCHEMA1: [&str; 2] = [
    "application/vnd.docker.distribution.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v1+prettyjws",
];

/// Is `mt` an index or manifest list?
pub fn is_index(mt: &str) -> bool {
    mt == OCI_INDEX || mt == DOCKER_LIST
}

/// Is `mt` a single-platform manifest?
pub fn is_manifest(mt: &str) -> bool {
    mt == OCI_MANIFEST || mt == DOCKER_MANIFEST
}

/// Is `mt` a layer media type berth can unpack?
pub fn is_layer(mt: &str) -> bool {
    matches!(
        mt,
        OCI_LAYER_TAR
            | OCI_LAYER_GZIP
            | OCI_LAYER_ZSTD
            | DOCKER_LAYER_GZIP
            | DOCKER_LAYER_TAR
            | "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
            | "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
    )
}

/// An OS/architecture pair, with an optional variant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Platform {
    /// `linux`, …
    #[serde(default)]
    pub os: String,
    /// `amd64`, `arm64`, …
    #[serde(default)]
    pub architecture: String,
    /// `v7`, `v8`, …
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

impl Platform {
    /// The platform this process runs on.
    pub fn host() -> Platform {
        let (arch, variant) = match std::env::consts::ARCH {
            "x86_64" => ("amd64", None),
            "aarch64" => ("arm64", Some("v8")),
            "arm" => ("arm", Some("v7")),
            "x86" => ("386", None),
            "powerpc64" => ("ppc64le", None),
            other => (other, None),
        };
        Platform { os: "linux".into(), architecture: arch.into(), variant: variant.map(Into::into) }
    }

    /// Parses `os/arch[/variant]`.
    pub fn parse(s: &str) -> Result<Platform> {
        let parts: Vec<&str> = s.split('/').collect();
        let ok = |p: &str| !p.is_empty() && p.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        match parts.as_slice() {
            [os, arch] if ok(os) && ok(arch) => {
                Ok(Platform { os: os.to_string(), architecture: arch.to_string(), variant: None })
            }
            [os, arch, v] if ok(os) && ok(arch) && ok(v) => Ok(Platform {
                os: os.to_string(),
                architecture: arch.to_string(),
                variant: Some(v.to_string()),
            }),
            _ => Err(Error::invalid(format!("platform {s:?}: expected os/arch[/variant]"))),
        }
    }

    /// Does an index entry for `other` suit this platform? A missing variant matches any
    /// (arm64's `v8` is the default).
    pub fn matches(&self, other: &Platform) -> bool {
        let norm = |p: &Platform| match (p.architecture.as_str(), p.variant.as_deref()) {
            ("arm64", Some("v8")) => None,
            (_, v) => v.map(str::to_string),
        };
        self.os == other.os
            && self.architecture == other.architecture
            && (norm(self).is_none() || norm(other).is_none() || norm(self) == norm(other))
    }
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

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

/// The compressed-layer media type for the first bytes of a blob.
pub fn layer_type_by_magic(head: &[u8], docker: bool) -> &'static str {
    match head {
        [0x1f, 0x8b, ..] if docker => DOCKER_LAYER_GZIP,
        [0x1f, 0x8b, ..] => OCI_LAYER_GZIP,
        [0x28, 0xb5, 0x2f, 0xfd, ..] => OCI_LAYER_ZSTD,
        _ if docker => DOCKER_LAYER_TAR,
        _ => OCI_LAYER_TAR,
    }
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
