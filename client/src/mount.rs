//! `images mount REF DIR` / `images unmount DIR`: a read-only view of an image's unpacked
//! root filesystem. The view is a snapshot keyed by the mount point's path, recorded in
//! metadata as a GC root (so garbage collection keeps it and its chain while mounted) and
//! removed, with its record, at unmount.

use std::collections::BTreeMap;
use std::path::Path;

use berth_ipc::content::proxy::ContentClient;
use berth_ipc::metadata::{ByName, GetImage, PutSnapshot, RemoveSnapshot, SnapshotRecord, SnapshotRef};
use berth_ipc::snapshot::{KeyRef, Remove, View};
use berth_ipc::{Code, Digest, Error, Result};
use berth_oci::mount::{Busy, Purpose, mount_all, unmount_all};

use crate::Services;
use crate::image::load;
use crate::oci::{Descriptor, Platform};

/// The label making a record a GC root.
pub const GC_ROOT: &str = "containerd.io/gc.root";

/// The view key of a mount point.
pub fn mount_key(dir: &Path) -> Result<String> {
    let abs = std::fs::canonicalize(dir)
        .map_err(|e| Error::not_found(format!("mount point {}: {e}", dir.display())))?;
    Ok(format!("berth-mount-{}", Digest::of(abs.as_os_str().as_encoded_bytes()).hex()))
}

/// Mounts image `name`'s root filesystem read-only on `dir`; returns its chainID.
pub async fn mount_image(
    services: &Services,
    ns: &str,
    name: &str,
    dir: &Path,
    snapshotter: &str,
) -> Result<Digest> {
    let image = services.metadata.call(GetImage(ByName { namespace: ns.into(), name: name.into() })).await?;
    let t = &image.target;
    let root = Descriptor::new(&t.media_type, t.digest, t.size);
    let content = ContentClient::new(services.content.clone());
    let (resolved, _) = load(&content, &root, &Platform::host()).await?;
    let chain =
        resolved.top_chain_id().ok_or_else(|| Error::precondition(format!("image {name}: no layers")))?;
    let key = mount_key(dir)?;
    let record = SnapshotRecord {
        snapshotter: snapshotter.into(),
        key: key.clone(),
        parent: Some(chain.to_string()),
        labels: BTreeMap::from([(GC_ROOT.to_string(), name.to_string())]),
        created: 0,
        updated: 0,
    };
    services.metadata.call(PutSnapshot { namespace: ns.into(), snapshot: record, lease: None }).await?;
    let view = View {
        snapshotter: snapshotter.into(),
        key: key.clone(),
        parent: Some(chain.to_string()),
        labels: BTreeMap::new(),
        namespace: ns.into(),
    };
    let mounts = match services.snapshot.call(view).await {
        Err(e) if e.is(Code::NotFound) => {
            return Err(Error::not_found(format!(
                "image {name}: not unpacked ({snapshotter} snapshot {chain} missing)"
            )));
        }
        other => other?,
    };
    // Whatever the image holds is only looked at: read-only, its device nodes inert and its
    // setuid bits giving nothing to whoever runs a program through the mount point.
    if let Err(e) = mount_all(&mounts, dir, Purpose::HostView) {
        let _ = unmount_image(services, ns, dir, snapshotter).await;
        return Err(e);
    }
    Ok(chain)
}

/// Unmounts `dir` and removes its view and the view's record.
pub async fn unmount_image(services: &Services, ns: &str, dir: &Path, snapshotter: &str) -> Result<()> {
    let key = mount_key(dir)?;
    unmount_all(dir, Busy::Fail)?;
    let r = KeyRef { snapshotter: snapshotter.into(), key: key.clone(), namespace: ns.into() };
    match services.snapshot.call(Remove(r)).await {
        Err(e) if !e.is(Code::NotFound) => return Err(e),
        _ => {}
    }
    let at = SnapshotRef { namespace: ns.into(), snapshotter: snapshotter.into(), key };
    match services.metadata.call(RemoveSnapshot(at)).await {
        Err(e) if !e.is(Code::NotFound) => Err(e),
        _ => Ok(()),
    }
}
