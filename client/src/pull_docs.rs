//! A pull's JSON documents, each fetched, checked and stored once: the root (manifest or
//! index) by reference, then per platform the manifest by digest and its config. What is
//! parsed here is what the pull records and unpacks; nothing is read back from content.

use berth_ipc::{Code, Digest, Error, Result};
use berth_oci::resolve::{Resolved, check_size, parse_manifest_of, resolved};

use crate::oci::{self, Descriptor, Index};
use crate::reference::Reference;
use crate::registry::Registry;
use crate::session::Session;

/// An image's root document as the registry served it.
pub struct Root {
    /// Its descriptor (media type sniffed from the bytes).
    pub desc: Descriptor,
    /// Its bytes.
    pub bytes: Vec<u8>,
    /// The index, if the root is one.
    pub index: Option<Index>,
}

/// Fetches, checks (a digest reference must match) and stores the root of `r`.
pub async fn fetch_root(sess: &Session, reg: &Registry, r: &Reference) -> Result<Root> {
    let (bytes, declared) = reg.get_manifest(&r.object()).await?;
    let digest = Digest::of(&bytes);
    if let Some(d) = r.digest
        && d != digest
    {
        return Err(Error::new(Code::DataLoss, format!("manifest {r}: bytes do not match the digest")));
    }
    let what = format!("{r}");
    let mt = oci::sniff(&bytes, &declared, &what)?;
    let index = if oci::is_index(&mt) { Some(oci::parse_index(&bytes, &what)?) } else { None };
    sess.put_bytes(&bytes).await?;
    Ok(Root { desc: Descriptor::new(&mt, digest, bytes.len() as u64), bytes, index })
}

/// Fetches and stores the manifest `desc` names (the root's bytes when it is the root) and
/// its config, checking both, and returns them parsed.
pub async fn fetch_platform(
    sess: &Session,
    reg: &Registry,
    desc: &Descriptor,
    root: &Root,
) -> Result<Resolved> {
    let bytes = if desc.digest == root.desc.digest {
        root.bytes.clone()
    } else {
        fetch_manifest(sess, reg, desc).await?
    };
    let manifest = parse_manifest_of(desc, &bytes)?;
    let config = reg.get_small_blob(&manifest.config.digest, manifest.config.size).await?;
    sess.put_bytes(&config).await?;
    resolved(desc.clone(), manifest, config)
}

/// An index child's manifest: bounded by its descriptor's size (at most the JSON cap),
/// verified by digest and size, stored.
async fn fetch_manifest(sess: &Session, reg: &Registry, desc: &Descriptor) -> Result<Vec<u8>> {
    let what = format!("manifest {}", desc.digest);
    check_size(desc.size, &what)?;
    let (bytes, _) = reg.get_manifest(&desc.digest.to_string()).await?;
    if Digest::of(&bytes) != desc.digest || bytes.len() as u64 != desc.size {
        return Err(Error::new(Code::DataLoss, format!("{what}: bytes do not match the digest")));
    }
    sess.put_bytes(&bytes).await?;
    Ok(bytes)
}
