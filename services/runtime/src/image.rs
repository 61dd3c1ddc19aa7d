//! An image's runnable parts: its config (through index → manifest → config in content,
//! resolved by [`berth_oci::resolve`] exactly as pull and unpack resolve it, so the
//! container's parent is the chain pull unpacked) and the chainID of its top layer, the
//! parent of a container's snapshot.

use berth_ipc::content::proxy::ContentClient;
use berth_ipc::digest::Digest;
use berth_ipc::metadata::Image;
use berth_ipc::{Error, Result};
use berth_oci::resolve::load;
use berth_oci::{Descriptor, Platform};

use crate::spec::ImageConfig;

/// The image's config and the chainID of its top layer.
pub async fn resolve(content: &ContentClient, image: &Image) -> Result<(ImageConfig, Option<Digest>)> {
    let t = &image.target;
    let root = Descriptor::new(&t.media_type, t.digest, t.size);
    let in_image = |e: Error| Error::new(e.code, format!("image {}: {}", image.name, e.message));
    let (r, _) = load(content, &root, &Platform::host()).await.map_err(in_image)?;
    let config: ImageConfig = serde_json::from_slice(&r.config_json).map_err(|e| {
        Error::invalid(format!("image {}: config {}: {e}", image.name, r.manifest.config.digest))
    })?;
    Ok((config, r.top_chain_id()))
}
