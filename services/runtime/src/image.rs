//! An image's runnable parts: its config (through index → manifest → config in content)
//! and the chainID of its top layer, the parent of a container's snapshot.

use berth_ipc::content::proxy::ContentClient;
use berth_ipc::content::store::ContentStore;
use berth_ipc::digest::Digest;
use berth_ipc::metadata::Image;
use berth_ipc::{Error, Result};
use serde::Deserialize;
use sha2::{Digest as _, Sha256};

use crate::spec::ImageConfig;

#[derive(Deserialize)]
struct Desc {
    #[serde(rename = "mediaType", default)]
    media_type: String,
    digest: String,
    #[serde(default)]
    platform: Option<Platform>,
}

#[derive(Deserialize)]
struct Platform {
    #[serde(default)]
    architecture: String,
    #[serde(default)]
    os: String,
}

#[derive(Deserialize)]
struct Doc {
    #[serde(rename = "mediaType", default)]
    media_type: String,
    #[serde(default)]
    manifests: Option<Vec<Desc>>,
    #[serde(default)]
    config: Option<Desc>,
}

/// Largest manifest or config read.
const MAX_JSON: u64 = 8 << 20;

/// The host's OCI architecture name.
fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

async fn json<T: for<'de> Deserialize<'de>>(
    content: &ContentClient,
    digest: &Digest,
    what: &str,
) -> Result<T> {
    let info = content.info(digest).await?;
    if info.size > MAX_JSON {
        return Err(Error::invalid(format!("{what} {digest}: too large")));
    }
    let data = content.read(digest, 0, None).await?;
    if Digest::of(&data) != *digest {
        return Err(Error::new(berth_ipc::Code::DataLoss, format!("{what} {digest}: digest mismatch")));
    }
    serde_json::from_slice(&data).map_err(|e| Error::invalid(format!("{what} {digest}: {e}")))
}

fn digest(s: &str, what: &str) -> Result<Digest> {
    Digest::parse(s).map_err(|e| Error::invalid(format!("{what}: {}", e.message)))
}

/// The image's config and the chainID of its top layer.
pub async fn resolve(content: &ContentClient, image: &Image) -> Result<(ImageConfig, Option<Digest>)> {
    let mut doc: Doc = json(content, &image.target.digest, "image root").await?;
    for _ in 0..2 {
        let Some(manifests) = doc.manifests.take() else { break };
        let chosen = manifests
            .iter()
            .find(|m| m.platform.as_ref().is_some_and(|p| p.os == "linux" && p.architecture == host_arch()))
            .or_else(|| manifests.iter().find(|m| m.platform.is_none()))
            .ok_or_else(|| {
                Error::not_found(format!("image {}: no manifest for linux/{}", image.name, host_arch()))
            })?;
        let _ = &chosen.media_type;
        doc = json(content, &digest(&chosen.digest, "manifest")?, "manifest").await?;
    }
    let _ = &doc.media_type;
    let config =
        doc.config.ok_or_else(|| Error::invalid(format!("image {}: manifest has no config", image.name)))?;
    let config: ImageConfig = json(content, &digest(&config.digest, "config")?, "image config").await?;
    let diff_ids = config
        .rootfs
        .as_ref()
        .map(|r| r.diff_ids.iter().map(|d| digest(d, "diff_id")).collect::<Result<Vec<_>>>())
        .transpose()?
        .unwrap_or_default();
    Ok((config, chain_id(&diff_ids)))
}

/// The chainID of the last of `diff_ids` (OCI: `sha256(parent + " " + diff_id)`).
pub fn chain_id(diff_ids: &[Digest]) -> Option<Digest> {
    let mut chain: Option<Digest> = None;
    for d in diff_ids {
        chain = Some(match chain {
            None => *d,
            Some(prev) => Digest::from_sha256(Sha256::digest(format!("{prev} {d}").as_bytes()).into()),
        });
    }
    chain
}
