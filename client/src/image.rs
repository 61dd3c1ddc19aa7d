//! Finishing an image whose blobs are in content: walk from the root descriptor (index →
//! platform manifest → config and layers), record every blob with its GC reference labels,
//! check the config's diff_ids against the layers, unpack through the snapshot service under
//! chainIDs, and create (or retarget) the image record last.

use std::collections::BTreeMap;

use berth_ipc::metadata::{CreateImage, Descriptor as MetaDescriptor, Image, UpdateImage};
use berth_ipc::snapshot::{LABEL_UNCOMPRESSED, Layer, Unpack};
use berth_ipc::{Code, Digest, Error, Result};

pub use berth_oci::resolve::{MAX_INDEX_ENTRIES, Resolved, check_layers, choose, get_json, load};
use berth_oci::resolve::{kind, resolved};

use crate::oci::{self, Descriptor, Manifest, Platform};
use crate::session::{Session, chain_ids};

/// The label naming a content blob a record references.
pub const GC_REF_CONTENT: &str = "containerd.io/gc.ref.content";
/// The label prefix naming the snapshot a config unpacks to.
pub const GC_REF_SNAPSHOT: &str = "containerd.io/gc.ref.snapshot";
/// Labels of an index record: one reference per child.
pub fn index_labels(index: &oci::Index) -> BTreeMap<String, String> {
    index
        .manifests
        .iter()
        .enumerate()
        .map(|(i, d)| (format!("{GC_REF_CONTENT}.m.{i}"), d.digest.to_string()))
        .collect()
}

/// Labels of a manifest record: its config and layers.
pub fn manifest_labels(m: &Manifest) -> BTreeMap<String, String> {
    let mut l = BTreeMap::from([(format!("{GC_REF_CONTENT}.config"), m.config.digest.to_string())]);
    for (i, d) in m.layers.iter().enumerate() {
        l.insert(format!("{GC_REF_CONTENT}.l.{i}"), d.digest.to_string());
    }
    l
}

/// Reads and records the tree under `root` (already in content), returning the platform
/// manifest.
pub async fn resolve(sess: &Session, root: &Descriptor, platform: &Platform) -> Result<Resolved> {
    let (resolved, index) = load(&sess.content, root, platform).await?;
    if let Some(index) = index {
        sess.record(root.digest, root.size, index_labels(&index)).await?;
    }
    Ok(resolved)
}

/// Where an image's layers stand when [`record_and_unpack`] records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layers {
    /// Stored only (`--no-unpack`): blobs may be missing, no snapshot.
    Stored,
    /// To be unpacked here: snapshot records made, chains unpacked.
    Unpack,
    /// Already unpacked by the caller under this session, snapshot records included.
    Unpacked,
}

/// Records the manifest, config and layers of `r` (labels included), and, with `unpack`,
/// unpacks the layers and labels the config with the top chainID. Returns the chainID.
pub async fn record_and_unpack(sess: &Session, r: &Resolved, layers: Layers) -> Result<Option<Digest>> {
    let unpack = layers != Layers::Stored;
    let m = &r.manifest;
    let diff_ids = &r.config.rootfs.diff_ids;
    for (l, d) in m.layers.iter().zip(diff_ids) {
        // Every layer here is one this namespace had or the session just wrote.
        match sess.stored(&l.digest).await? {
            Some(size) if size == l.size => {}
            Some(size) => {
                return Err(Error::new(
                    Code::DataLoss,
                    format!("layer {}: {size} bytes in content, manifest says {}", l.digest, l.size),
                ));
            }
            None if !unpack => continue,
            None => return Err(Error::not_found(format!("layer {}: not in content", l.digest))),
        }
        let labels = BTreeMap::from([(LABEL_UNCOMPRESSED.to_string(), d.to_string())]);
        sess.record(l.digest, l.size, labels).await?;
    }
    sess.record(r.desc.digest, r.desc.size, manifest_labels(m)).await?;
    let mut config_labels = BTreeMap::new();
    let mut top = None;
    if unpack && !diff_ids.is_empty() {
        let chain = chain_ids(diff_ids);
        let chain_id = match layers {
            // Recorded and unpacked by the caller (a pull unpacks while it downloads).
            Layers::Unpacked => *chain.last().unwrap_or(&diff_ids[0]),
            _ => {
                for (i, c) in chain.iter().enumerate() {
                    sess.record_snapshot(c.to_string(), i.checked_sub(1).map(|p| chain[p].to_string()))
                        .await?;
                }
                let layers = m
                    .layers
                    .iter()
                    .zip(diff_ids)
                    .map(|(l, d)| Layer { digest: l.digest, media_type: l.media_type.clone(), diff_id: *d })
                    .collect();
                let req = Unpack {
                    snapshotter: sess.snapshotter.clone(),
                    layers,
                    labels: BTreeMap::new(),
                    namespace: sess.namespace.clone(),
                };
                sess.services.snapshot.call(req).await?.chain_id
            }
        };
        config_labels.insert(format!("{GC_REF_SNAPSHOT}.{}", sess.snapshotter), chain_id.to_string());
        top = Some(chain_id);
    }
    sess.record(m.config.digest, m.config.size, config_labels).await?;
    Ok(top)
}

/// Creates the image record `name` → `target`, or retargets an existing one.
pub async fn set_image(sess: &Session, name: &str, target: &Descriptor) -> Result<Image> {
    let image = Image {
        name: name.to_string(),
        target: MetaDescriptor {
            media_type: target.media_type.clone(),
            digest: target.digest,
            size: target.size,
        },
        labels: BTreeMap::new(),
        created: 0,
        updated: 0,
    };
    let ns = sess.namespace.clone();
    // Repeatable: a create whose answer was lost is found by the repeat, whose
    // `AlreadyExists` then retargets the record (to the same target).
    let create = CreateImage { namespace: ns.clone(), image: image.clone() };
    match sess.services.metadata.call_repeatable(create).await {
        Err(e) if e.is(Code::AlreadyExists) => {
            sess.services
                .metadata
                .call(UpdateImage { namespace: ns, image, paths: vec!["target".into()] })
                .await
        }
        other => other,
    }
}

/// How deep indexes may nest under an image's root.
pub const MAX_INDEX_DEPTH: usize = 4;

/// Records everything under `root` that is in content, for every platform, without
/// unpacking (`--no-unpack` imports). Each blob is visited once, so an index listing the
/// same children many times at several levels costs one visit per distinct blob, and
/// indexes nest at most [`MAX_INDEX_DEPTH`] deep.
pub async fn record_tree(sess: &Session, root: &Descriptor) -> Result<()> {
    let mut seen = std::collections::BTreeSet::new();
    record_tree_at(sess, root, 0, &mut seen).await
}

async fn record_tree_at(
    sess: &Session,
    root: &Descriptor,
    depth: usize,
    seen: &mut std::collections::BTreeSet<Digest>,
) -> Result<()> {
    if !seen.insert(root.digest) {
        return Ok(());
    }
    let bytes = sess.get_json(&root.digest).await?;
    let what = format!("{} {}", kind(&root.media_type), root.digest);
    let mt = oci::sniff(&bytes, &root.media_type, &what)?;
    if oci::is_index(&mt) {
        if depth >= MAX_INDEX_DEPTH {
            return Err(Error::invalid(format!("{what}: indexes nested over {MAX_INDEX_DEPTH} deep")));
        }
        let index = oci::parse_index(&bytes, &what)?;
        if index.manifests.len() > MAX_INDEX_ENTRIES {
            return Err(Error::invalid(format!("{what}: {} entries, over the limit", index.manifests.len())));
        }
        sess.record(root.digest, root.size, index_labels(&index)).await?;
        for child in &index.manifests {
            if !seen.contains(&child.digest) && sess.stored(&child.digest).await?.is_some() {
                Box::pin(record_tree_at(sess, child, depth + 1, seen)).await?;
            }
        }
        return Ok(());
    }
    let manifest = oci::parse_manifest(&bytes, &what)?;
    let cbytes = sess.get_json(&manifest.config.digest).await?;
    let r = resolved(root.clone(), manifest, cbytes)?;
    record_and_unpack(sess, &r, Layers::Stored).await.map(drop)
}
