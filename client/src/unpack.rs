//! Unpacking an image that is stored but not (or no longer wholly) unpacked: `images unpack`,
//! and `run`/`containers create` before they make a container's snapshot, as ctr does.

use berth_ipc::metadata::{ByName, GetImage};
use berth_ipc::snapshot::{KeyRef, Stat};
use berth_ipc::{Code, Digest, Error, Result};

use crate::Services;
use crate::image::{self, Layers};
use crate::oci::{Descriptor, Platform};
use crate::session::{Session, chain_ids};

/// What [`unpack`] did.
#[derive(Debug, Clone)]
pub struct Unpacked {
    /// The chainID of the top layer (`None` for an image without layers).
    pub chain_id: Option<Digest>,
    /// Layers extracted now (0 when every one was unpacked already).
    pub extracted: usize,
    /// Layers of the image.
    pub layers: usize,
}

/// Unpacks image `name` of namespace `ns` (for the host's platform) with `snapshotter`, if
/// any of its layers is not unpacked there; every blob must be in content.
pub async fn unpack(services: &Services, ns: &str, name: &str, snapshotter: &str) -> Result<Unpacked> {
    let image = services.metadata.call(GetImage(ByName { namespace: ns.into(), name: name.into() })).await?;
    let t = &image.target;
    let root = Descriptor::new(&t.media_type, t.digest, t.size);
    let content = berth_ipc::content::proxy::ContentClient::new(services.content.clone());
    let (resolved, _) = image::load(&content, &root, &Platform::host())
        .await
        .map_err(|e| e.context(format!("image {name}")))?;
    let chain = chain_ids(&resolved.config.rootfs.diff_ids);
    let mut missing = 0;
    for c in &chain {
        let key = KeyRef { snapshotter: snapshotter.into(), key: c.to_string(), namespace: ns.into() };
        match services.snapshot.call(Stat(key)).await {
            Ok(_) => {}
            Err(e) if e.is(Code::NotFound) => missing += 1,
            Err(e) => return Err(e),
        }
    }
    let layers = chain.len();
    if missing == 0 {
        return Ok(Unpacked { chain_id: chain.last().copied(), extracted: 0, layers });
    }
    let mut sess = Session::open(services, ns, "unpack").await?;
    sess.snapshotter = snapshotter.to_string();
    let result = image::record_and_unpack(&sess, &resolved, Layers::Unpack).await;
    let closed = sess.close().await;
    let chain_id = result.map_err(|e| {
        let what =
            if e.is(Code::NotFound) { "is not complete (pull it again)" } else { "cannot be unpacked" };
        Error::new(e.code, format!("image {name} {what}: {}", e.message))
    })?;
    closed?;
    Ok(Unpacked { chain_id, extracted: missing, layers })
}
