//! An image's size as `ctr images ls` shows it: the blobs of its tree for this host's
//! platform as stored (compressed): the index if any, the manifest, the config and the
//! layers. The target descriptor's own size (what `images ls` used to show) is only the
//! manifest's few hundred bytes.

use berth_client::oci::{Descriptor, Platform};
use berth_ipc::content::proxy::ContentClient;
use berth_ipc::metadata::Image;

/// The total size in bytes of `image`'s tree for the host platform; `None` when a blob
/// of it is missing (a `--no-unpack` pull of another platform, a partial import).
pub async fn total(content: &ContentClient, image: &Image) -> Option<u64> {
    let t = &image.target;
    let root = Descriptor::new(&t.media_type, t.digest, t.size);
    let (resolved, index) = berth_client::image::load(content, &root, &Platform::host()).await.ok()?;
    let m = &resolved.manifest;
    let mut size = resolved.desc.size.checked_add(m.config.size)?;
    if index.is_some() {
        size = size.checked_add(root.size)?;
    }
    m.layers.iter().try_fold(size, |acc, l| acc.checked_add(l.size))
}

/// [`total`] of each of `images`, in order.
pub async fn totals(content: &ContentClient, images: &[Image]) -> Vec<Option<u64>> {
    let mut out = Vec::with_capacity(images.len());
    for i in images {
        out.push(total(content, i).await);
    }
    out
}
