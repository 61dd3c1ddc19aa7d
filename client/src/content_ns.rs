//! A namespace's view of the content store, as containerd's metadata content store gives
//! it. The content service is global (a blob is stored once, by digest); what a namespace
//! has is its records (`<ns>/content/<digest>` in metadata). So every user-facing content
//! operation goes through the records: a namespace lists, reads, labels and removes only
//! blobs it has a record of; removing drops only its record, and the bytes go at garbage
//! collection once no namespace references them.

use berth_ipc::metadata::{ContentRecord, GetContent, ListContent, ListIn, PutContent, RemoveContent};
use berth_ipc::{Code, Digest, Error, Result};

use crate::Services;

/// `ns`'s record of `digest`; `NotFound` naming both when it has none, whether or not
/// another namespace stores the blob.
pub async fn get(services: &Services, ns: &str, digest: &Digest) -> Result<ContentRecord> {
    match services.metadata.call(GetContent { namespace: ns.into(), digest: *digest }).await {
        Err(e) if e.is(Code::NotFound) => Err(not_here(ns, digest)),
        other => other,
    }
}

/// Every record of `ns` matching `filters` (any may match; fields `digest`, `size`,
/// `labels.<k>`).
pub async fn list(services: &Services, ns: &str, filters: &[String]) -> Result<Vec<ContentRecord>> {
    let req = ListContent(ListIn { namespace: ns.into(), filters: filters.to_vec() });
    let mut stream = services.metadata.stream(req).await?;
    let mut out = Vec::new();
    while let Some(page) = stream.next().await {
        out.extend(page?);
    }
    Ok(out)
}

/// Drops `ns`'s record of `digest` (`NotFound` if it has none). The bytes stay while any
/// other namespace references the blob, and go at the next GC pass otherwise.
pub async fn remove(services: &Services, ns: &str, digest: &Digest) -> Result<()> {
    match services.metadata.call(RemoveContent { namespace: ns.into(), digest: *digest }).await {
        Err(e) if e.is(Code::NotFound) => Err(not_here(ns, digest)),
        other => other,
    }
}

/// Records a blob whose bytes the caller has just written and had verified (a commit, or
/// an `AlreadyExists` commit of a proving writer), keeping the labels of an earlier record.
pub async fn record(services: &Services, ns: &str, digest: Digest, size: u64) -> Result<ContentRecord> {
    let labels = match get(services, ns, &digest).await {
        Ok(r) => r.labels,
        Err(e) if e.is(Code::NotFound) => Default::default(),
        Err(e) => return Err(e),
    };
    services.metadata.call(PutContent { namespace: ns.into(), digest, size, labels, lease: None }).await
}

fn not_here(ns: &str, digest: &Digest) -> Error {
    Error::not_found(format!("blob {digest}: not found in namespace {ns}"))
}
