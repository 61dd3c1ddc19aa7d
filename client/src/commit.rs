//! `commit`: a container's changes as a new image. The snapshot service diffs the
//! container's snapshot against its parent into a gzip layer in content; the image's config
//! gets the layer's diff_id and a history entry (everything else kept), a manifest lists the
//! old layers plus the new one; both are written under a session's lease, recorded with GC
//! labels and unpacked (only the new layer is extracted, under its chainID), and the image
//! record comes last.

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use berth_ipc::metadata::{ByName, GetContainer, GetImage};
use berth_ipc::snapshot::{Diff, KeyRef, Stat};
use berth_ipc::{Code, Digest, Error, Result};
use serde_json::Value;

use crate::Services;
use crate::image::{self, Resolved};
use crate::oci::{self, Descriptor, Platform};
use crate::reference::normalize;
use crate::session::Session;

/// An image a commit created.
#[derive(Debug, Clone)]
pub struct Committed {
    /// The image's (normalized) name.
    pub name: String,
    /// Its manifest.
    pub target: Descriptor,
    /// The new layer.
    pub layer: Descriptor,
    /// The chainID of its top layer.
    pub chain_id: Option<Digest>,
}

/// Commits container `id` of namespace `ns` as image `name`. With `pause`, a running task
/// is frozen while its snapshot is diffed and resumed after, whatever the outcome.
pub async fn commit(services: &Services, ns: &str, id: &str, name: &str, pause: bool) -> Result<Committed> {
    let name = normalize(name)?;
    let by = |n: &str| ByName { namespace: ns.to_string(), name: n.to_string() };
    let container = services.metadata.call(GetContainer(by(id))).await?;
    if container.snapshot_key.is_empty() {
        return Err(Error::new(Code::FailedPrecondition, format!("container {id}: has no snapshot")));
    }
    let mut sess = Session::open(services, ns, "commit").await?;
    if !container.snapshotter.is_empty() {
        sess.snapshotter = container.snapshotter.clone();
    }
    let paused =
        if pause { crate::commit_pause::pause_if_running(services, ns, id).await } else { Ok(false) };
    let was_paused = matches!(paused, Ok(true));
    let result = match paused {
        Ok(_) => run(&sess, &container.image, &container.snapshot_key, &name).await,
        Err(e) => Err(e),
    };
    let resumed = if was_paused { crate::commit_pause::resume(services, ns, id).await } else { Ok(()) };
    let closed = sess.close().await;
    let out = result?;
    resumed?;
    closed?;
    Ok(out)
}

async fn run(sess: &Session, image_name: &str, key: &str, name: &str) -> Result<Committed> {
    let by = ByName { namespace: sess.namespace.clone(), name: image_name.to_string() };
    let img = sess.services.metadata.call(GetImage(by)).await?;
    let root = Descriptor::new(&img.target.media_type, img.target.digest, img.target.size);
    let (base, _) = image::load(&sess.content, &root, &Platform::host()).await?;
    let snap = KeyRef {
        snapshotter: sess.snapshotter.clone(),
        key: key.to_string(),
        namespace: sess.namespace.clone(),
    };
    let info = sess.services.snapshot.call(Stat(snap)).await?;
    let diff = Diff {
        snapshotter: sess.snapshotter.clone(),
        lower: info.parent,
        upper: key.to_string(),
        labels: BTreeMap::new(),
        namespace: sess.namespace.clone(),
    };
    // Repeatable: a diff of the same two snapshots is the same layer, stored by digest.
    let d = sess.services.snapshot.call_repeatable(diff).await?;
    sess.protect(d.digest).await?;
    let docker = base.manifest.media_type.as_deref() == Some(oci::DOCKER_MANIFEST)
        || base.desc.media_type == oci::DOCKER_MANIFEST;
    let layer_mt = if docker { oci::DOCKER_LAYER_GZIP } else { d.media_type.as_str() };
    let layer = Descriptor::new(layer_mt, d.digest, d.size);

    let cbytes = sess.get_json(&base.manifest.config.digest).await?;
    let config = extend_config(&cbytes, &d.diff_id, base.manifest.config.digest)?;
    let cdigest = sess.put_bytes(&config).await?;
    let mut manifest = base.manifest.clone();
    manifest.config = Descriptor::new(&manifest.config.media_type, cdigest, config.len() as u64);
    manifest.layers.push(layer.clone());
    let mt = if docker { oci::DOCKER_MANIFEST } else { oci::OCI_MANIFEST };
    manifest.media_type = Some(mt.to_string());
    let mbytes = serde_json::to_vec(&manifest).map_err(|e| Error::internal_cause("manifest", e))?;
    let mdigest = sess.put_bytes(&mbytes).await?;
    let target = Descriptor::new(mt, mdigest, mbytes.len() as u64);
    let parsed = oci::parse_config(&config, &format!("config {cdigest}"))?;
    let resolved = Resolved { desc: target.clone(), manifest, config: parsed, config_json: config };
    let chain_id = image::record_and_unpack(sess, &resolved, image::Layers::Unpack).await?;
    image::set_image(sess, name, &target).await?;
    Ok(Committed { name: name.to_string(), target, layer, chain_id })
}

/// The config `bytes` with `diff_id` appended to `rootfs.diff_ids`, a history entry for it,
/// and a new `created`; every other field is kept as it was.
pub fn extend_config(bytes: &[u8], diff_id: &Digest, digest: Digest) -> Result<Vec<u8>> {
    let bad = |m: &str| Error::invalid(format!("config {digest}: {m}"));
    let mut v: Value = serde_json::from_slice(bytes).map_err(|e| bad(&e.to_string()))?;
    let obj = v.as_object_mut().ok_or_else(|| bad("not an object"))?;
    let now = crate::time::rfc3339(SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()));
    let ids = obj
        .get_mut("rootfs")
        .and_then(|r| r.get_mut("diff_ids"))
        .and_then(Value::as_array_mut)
        .ok_or_else(|| bad("no rootfs.diff_ids"))?;
    ids.push(Value::String(diff_id.to_string()));
    let entry = serde_json::json!({"created": now, "created_by": "berth commit"});
    match obj.get_mut("history").and_then(Value::as_array_mut) {
        Some(h) => h.push(entry),
        None => {
            obj.insert("history".into(), Value::Array(vec![entry]));
        }
    }
    obj.insert("created".into(), Value::String(now));
    serde_json::to_vec(&v).map_err(|e| Error::internal_cause("config", e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_extended_and_kept() {
        let old = br#"{"os":"linux","config":{"Cmd":["sh"]},"rootfs":{"type":"layers","diff_ids":["sha256:aa"]},"history":[{"created_by":"x"}]}"#;
        let d = Digest::of(b"layer");
        let new = extend_config(old, &d, Digest::of(old)).expect("extend");
        let v: Value = serde_json::from_slice(&new).expect("json");
        assert_eq!(v["config"]["Cmd"][0], "sh");
        assert_eq!(v["rootfs"]["diff_ids"][1], d.to_string());
        assert_eq!(v["history"].as_array().map(Vec::len), Some(2));
        assert!(extend_config(b"[]", &d, d).is_err());
    }
}
