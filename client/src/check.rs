//! `images check`: is every blob of an image's tree in content, at the right size and
//! recorded in the image's namespace (a blob only another namespace holds is missing here),
//! and is its root filesystem unpacked?

use berth_ipc::content::proxy::ContentClient;
use berth_ipc::content::store::ContentStore;
use berth_ipc::metadata::{ByName, GetImage};
use berth_ipc::snapshot::{KeyRef, Stat};
use berth_ipc::{Code, Digest, Result};

use crate::Services;
use crate::image::get_json;
use crate::oci::{self, Descriptor, Platform};
use crate::session::chain_ids;

/// What a check found.
#[derive(Debug, Clone, Default)]
pub struct CheckReport {
    /// Blobs present with the right size.
    pub present: u64,
    /// Blobs absent or of the wrong size.
    pub missing: Vec<Digest>,
    /// Whether the host platform's layers are unpacked on the snapshotter.
    pub unpacked: bool,
}

/// Checks image `name` of namespace `ns`.
pub async fn check(services: &Services, ns: &str, name: &str, snapshotter: &str) -> Result<CheckReport> {
    let image = services.metadata.call(GetImage(ByName { namespace: ns.into(), name: name.into() })).await?;
    let content = ContentClient::new(services.content.clone());
    let t = &image.target;
    let mut report = CheckReport::default();
    let here = Here { services, ns, content: &content };
    walk(&here, &Descriptor::new(&t.media_type, t.digest, t.size), &mut report).await?;
    let root = Descriptor::new(&t.media_type, t.digest, t.size);
    let r = match crate::image::load(&content, &root, &Platform::host()).await {
        Ok((r, _)) => r,
        // A service that failed to answer is an error, not a verdict.
        Err(e) if e.is(Code::Unavailable) => return Err(e),
        // Missing blobs, or no entry for this platform: not unpacked here.
        Err(_) => return Ok(report),
    };
    if let Some(top) = chain_ids(&r.config.rootfs.diff_ids).last() {
        let key = KeyRef { snapshotter: snapshotter.into(), key: top.to_string(), namespace: ns.into() };
        // Only NotFound means "not unpacked": a service that failed to answer is an error.
        report.unpacked = match services.snapshot.call(Stat(key)).await {
            Ok(_) => true,
            Err(e) if e.is(Code::NotFound) => false,
            Err(e) => return Err(e),
        };
    }
    Ok(report)
}

/// Where the blobs are looked for: the namespace's records and the global store.
struct Here<'a> {
    services: &'a Services,
    ns: &'a str,
    content: &'a ContentClient,
}

async fn present(here: &Here<'_>, d: &Descriptor, report: &mut CheckReport) -> Result<bool> {
    match crate::content_ns::get(here.services, here.ns, &d.digest).await {
        Ok(_) => {}
        Err(e) if e.is(Code::NotFound) => {
            report.missing.push(d.digest);
            return Ok(false);
        }
        Err(e) => return Err(e),
    }
    match here.content.info(&d.digest).await {
        Ok(i) if i.size == d.size => {
            report.present += 1;
            Ok(true)
        }
        Ok(_) => {
            report.missing.push(d.digest);
            Ok(false)
        }
        Err(e) if e.is(Code::NotFound) => {
            report.missing.push(d.digest);
            Ok(false)
        }
        Err(e) => Err(e),
    }
}

async fn walk(here: &Here<'_>, d: &Descriptor, report: &mut CheckReport) -> Result<()> {
    if !present(here, d, report).await? {
        return Ok(());
    }
    let bytes = get_json(here.content, &d.digest).await?;
    let what = format!("blob {}", d.digest);
    let mt = oci::sniff(&bytes, &d.media_type, &what)?;
    if oci::is_index(&mt) {
        for child in oci::parse_index(&bytes, &what)?.manifests {
            Box::pin(walk(here, &child, report)).await?;
        }
    } else {
        let m = oci::parse_manifest(&bytes, &what)?;
        present(here, &m.config, report).await?;
        for l in &m.layers {
            present(here, l, report).await?;
        }
    }
    Ok(())
}
