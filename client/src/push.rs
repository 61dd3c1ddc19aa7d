//! `images push`: an image's blobs (layers and configs, then manifests, then the index) to a
//! registry. Blobs the registry has are skipped after a HEAD; the others are uploaded from
//! content (the blob file's fd, passed by the content service) in one PUT each; the root is
//! put under the reference's tag (or digest) last.

use std::sync::Arc;

use berth_ipc::content::proxy::ContentClient;
use berth_ipc::metadata::{ByName, GetImage};
use berth_ipc::{Digest, Error, Result};

use crate::Services;
use crate::image::get_json;
use crate::oci::{self, Descriptor};
use crate::progress::{Progress, Silent, State};
use crate::reference::Reference;
use crate::registry::{Registry, RegistryOptions};

/// How to push.
#[derive(Clone)]
pub struct PushOptions {
    /// Registry access.
    pub registry: RegistryOptions,
    /// Progress sink.
    pub progress: Arc<dyn Progress>,
}

impl Default for PushOptions {
    fn default() -> Self {
        PushOptions { registry: RegistryOptions::default(), progress: Arc::new(Silent) }
    }
}

/// Pushes image `name` of namespace `ns` to `remote` (its own name when `None`); returns the
/// root descriptor.
pub async fn push(
    services: &Services,
    ns: &str,
    name: &str,
    remote: Option<&str>,
    opts: &PushOptions,
) -> Result<Descriptor> {
    let image = services.metadata.call(GetImage(ByName { namespace: ns.into(), name: name.into() })).await?;
    let r = Reference::parse(remote.unwrap_or(name))?;
    let reg = Registry::new(&r, &opts.registry, true)?;
    let content = ContentClient::new(services.content.clone());
    let t = &image.target;
    let root = Descriptor::new(&t.media_type, t.digest, t.size);
    let bytes = get_json(&content, &root.digest).await?;
    let mt = oci::sniff(&bytes, &root.media_type, &format!("image {name}"))?;
    if oci::is_index(&mt) {
        let index = oci::parse_index(&bytes, &format!("index {}", root.digest))?;
        for child in &index.manifests {
            if content_has(&content, &child.digest).await? {
                push_manifest(&content, &reg, child, &child.digest.to_string(), &*opts.progress).await?;
            }
        }
        reg.put_manifest(&r.object(), &mt, &bytes).await?;
    } else {
        push_manifest(
            &content,
            &reg,
            &Descriptor::new(&mt, root.digest, root.size),
            &r.object(),
            &*opts.progress,
        )
        .await?;
    }
    Ok(root)
}

async fn content_has(content: &ContentClient, d: &Digest) -> Result<bool> {
    use berth_ipc::content::store::ContentStore;
    match content.info(d).await {
        Ok(_) => Ok(true),
        Err(e) if e.is(berth_ipc::Code::NotFound) => Ok(false),
        Err(e) => Err(e),
    }
}

async fn push_manifest(
    content: &ContentClient,
    reg: &Registry,
    m: &Descriptor,
    tag: &str,
    p: &dyn Progress,
) -> Result<()> {
    let bytes = get_json(content, &m.digest).await?;
    let manifest = oci::parse_manifest(&bytes, &format!("manifest {}", m.digest))?;
    let mut blobs = vec![manifest.config.clone()];
    blobs.extend(manifest.layers.iter().cloned());
    for b in &blobs {
        push_blob(content, reg, b, p).await?;
    }
    reg.put_manifest(tag, &m.media_type, &bytes).await
}

async fn push_blob(content: &ContentClient, reg: &Registry, b: &Descriptor, p: &dyn Progress) -> Result<()> {
    if reg.has_blob(&b.digest).await? {
        p.update(&b.digest, State::Exists, b.size, b.size);
        return Ok(());
    }
    let fd = content.read_fd(&b.digest).await?;
    let size = fd.size;
    if size != b.size {
        return Err(Error::new(
            berth_ipc::Code::DataLoss,
            format!("blob {}: {size} bytes in content, manifest says {}", b.digest, b.size),
        ));
    }
    p.update(&b.digest, State::Uploading, 0, size);
    let file = tokio::fs::File::from_std(fd.file);
    reg.upload_blob(&b.digest, size, reqwest::Body::from(file)).await?;
    p.update(&b.digest, State::Done, size, size);
    Ok(())
}
