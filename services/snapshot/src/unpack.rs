//! Batch unpack of an image's layers under chainIDs
//! (`chainID(1) = diffID(1)`, `chainID(n) = sha256(chainID(n-1) + " " + diffID(n))`).
//!
//! Chains already committed are skipped. On overlayfs the missing layers are extracted side
//! by side (each into its own parentless active snapshot, at most `parallel_unpack` at a
//! time), then committed in order, each rebased onto the chain below it. On native each
//! layer needs a copy of the one below, so they go one after another. A layer whose diff_id
//! is not the promised one fails the unpack with `DataLoss`, and every snapshot the failed
//! unpack made is removed. A chain committed meanwhile by a concurrent unpack is kept.
//!
//! `UnpackFollow` reads each layer as it downloads (see [`crate::follow`]), so a pull's
//! extraction overlaps its downloads layer by layer rather than after each one lands.

use std::collections::BTreeMap;
use std::io::Read;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use berth_ipc::digest::Digest;
use berth_ipc::snapshot::{Kind, Unpack, Unpacked};
use berth_ipc::{Code, Error, Result};
use tokio_util::sync::CancellationToken;

use crate::backend::{Backend, BackendKind};
use crate::follow;
use crate::service::SnapshotService;
use berth_service_kit::blocking;

pub use berth_ipc::digest::chain_ids;

fn temp_key(ns: &str, chain: &Digest) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let hex = chain.hex();
    format!("{ns}/extract-{}-{}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed), &hex[..12])
}

/// The index key of chain `d` in namespace `ns`: each namespace unpacks and trusts only its
/// own chains.
fn chain_key(ns: &str, d: &Digest) -> String {
    format!("{ns}/{d}")
}

fn committed(b: &Backend, key: &str) -> bool {
    b.stat(key).is_ok_and(|i| i.kind == Kind::Committed)
}

/// Where layers are read from.
#[derive(Clone)]
pub enum Source {
    /// Committed blobs only.
    Committed,
    /// Blobs or their downloads in progress, until the caller goes away.
    Follow(CancellationToken),
}

/// Layer `digest`'s bytes: the blob, or (following) its download in progress as it grows.
/// A download not begun yet is waited for as long as a stalled one.
async fn open(svc: &SnapshotService, digest: Digest, source: &Source) -> Result<Box<dyn Read + Send>> {
    let Source::Follow(cancel) = source else {
        return Ok(Box::new(svc.blobs.open(digest).await?));
    };
    // Wait for the download to begin, and to have said its size (else for its blob).
    let since = std::time::Instant::now();
    let (f, total) = loop {
        match svc.blobs.follow(digest).await {
            Ok(f) => match f.total {
                Some(total) => break (f, total),
                None if since.elapsed() < follow::STALL => {}
                None => {
                    return Err(Error::unavailable(format!(
                        "layer {digest}: its download never said its size"
                    )));
                }
            },
            Err(e) if e.code == Code::NotFound && since.elapsed() < follow::STALL => {}
            Err(e) => return Err(e),
        }
        tokio::select! {
            _ = cancel.cancelled() => return Err(Error::unavailable(format!("layer {digest}: unpack cancelled"))),
            _ = tokio::time::sleep(std::time::Duration::from_millis(10)) => {}
        }
    };
    Ok(Box::new(follow::Growing::new(f.file, digest, total, f.committed, cancel.clone())))
}

/// Extracts layer `j` into a new active snapshot on `parent`; returns its key.
async fn extract(
    svc: &SnapshotService,
    b: Arc<Backend>,
    r: &Unpack,
    j: usize,
    parent: Option<String>,
    chain: Digest,
    source: &Source,
) -> Result<String> {
    let layer = &r.layers[j];
    let key = temp_key(&r.namespace, &chain);
    let file = open(svc, layer.digest, source).await?;
    let _slot = svc
        .unpack_slots
        .acquire()
        .await
        .map_err(|_| Error::unavailable("snapshot service: shutting down"))?;
    let (b2, k2) = (b.clone(), key.clone());
    let labels = BTreeMap::from([("berth.io/unpack".to_string(), chain.to_string())]);
    let applied = blocking("snapshot task", move || {
        b2.create(&k2, parent.as_deref(), labels, Kind::Active)?;
        b2.apply(&k2, file)
    })
    .await;
    let fail = |e: Error| {
        let _ = b.remove(&key);
        e
    };
    let applied = applied.map_err(|e| fail(e.context(format!("layer {}", layer.digest))))?;
    if applied.diff_id != layer.diff_id {
        return Err(fail(Error::new(
            Code::DataLoss,
            format!("layer {}: diff_id is {}, image says {}", layer.digest, applied.diff_id, layer.diff_id),
        )));
    }
    Ok(key)
}

/// Flushes the file system holding the backend (syncfs), so a layer's files are on disk
/// before the index record naming it committed is: otherwise a power cut could leave a
/// committed snapshot whose files are empty or missing, which nothing would ever notice.
/// One call flushes every layer extracted so far; the calls after it find little to do.
fn sync_fs(b: &Backend) -> Result<()> {
    let dir = std::fs::File::open(b.dir()).map_err(|e| Error::io_at("open", b.dir(), e))?;
    nix::unistd::syncfs(&dir).map_err(|e| Error::io_at("syncfs", b.dir(), e.into()))
}

/// Commits `key` as chain `name` on `parent`; a chain that appeared meanwhile is kept.
fn commit(
    svc: &SnapshotService,
    b: &Backend,
    ns: &str,
    key: &str,
    name: &Digest,
    parent: Option<&Digest>,
    labels: &BTreeMap<String, String>,
) -> Result<()> {
    if let Err(e) = sync_fs(b) {
        let _ = b.remove(key);
        return Err(e);
    }
    let p = parent.map(|d| chain_key(ns, d));
    let rebase = (b.kind() == BackendKind::Overlay).then_some(p.as_deref());
    let name = chain_key(ns, name);
    match b.commit_onto(&name, key, labels.clone(), rebase) {
        Ok(()) => {
            svc.events.commit(b.kind().name(), key, &name);
            Ok(())
        }
        Err(e) if e.code == Code::AlreadyExists => b.remove(key),
        Err(e) => {
            let _ = b.remove(key);
            Err(e)
        }
    }
}

/// Runs an unpack reading layers from `source`.
pub async fn unpack(svc: &SnapshotService, r: Unpack, source: Source) -> Result<Unpacked> {
    if r.layers.is_empty() {
        return Err(Error::invalid("unpack: no layers"));
    }
    let b = svc.backend(&r.snapshotter)?;
    berth_ipc::names::validate_namespace(&r.namespace)?;
    let ns = r.namespace.clone();
    let diff_ids: Vec<Digest> = r.layers.iter().map(|l| l.diff_id).collect();
    let chain = chain_ids(&diff_ids);
    let top = *chain.last().unwrap_or(&diff_ids[0]);
    let start =
        (0..chain.len()).rev().find(|&i| committed(&b, &chain_key(&ns, &chain[i]))).map_or(0, |i| i + 1);
    if start == chain.len() {
        return Ok(Unpacked { chain_id: top, extracted: 0 });
    }
    let mut labels = r.labels.clone();
    if b.kind() == BackendKind::Native {
        for j in start..chain.len() {
            let parent = (j > 0).then(|| chain_key(&ns, &chain[j - 1]));
            let key = extract(svc, b.clone(), &r, j, parent, chain[j], &source).await?;
            commit(svc, &b, &ns, &key, &chain[j], j.checked_sub(1).map(|i| &chain[i]), &labels)?;
        }
    } else {
        let futs = (start..chain.len()).map(|j| extract(svc, b.clone(), &r, j, None, chain[j], &source));
        let results = join_all(futs).await;
        if let Some(e) = results.iter().find_map(|r| r.as_ref().err()).cloned() {
            for key in results.into_iter().flatten() {
                let _ = b.remove(&key);
            }
            return Err(e);
        }
        let keys: Vec<String> = results.into_iter().flatten().collect();
        berth_ipc::failpoint!("snapshot.unpack.after_extract");
        for (j, key) in (start..chain.len()).zip(keys.iter()) {
            if let Err(e) = commit(svc, &b, &ns, key, &chain[j], j.checked_sub(1).map(|i| &chain[i]), &labels)
            {
                for k in &keys {
                    let _ = b.remove(k);
                }
                return Err(e);
            }
        }
    }
    labels.clear();
    Ok(Unpacked { chain_id: top, extracted: (chain.len() - start) as u32 })
}

/// Polls every future to completion concurrently, keeping their order.
async fn join_all<F: std::future::Future>(futs: impl Iterator<Item = F>) -> Vec<F::Output> {
    let mut pinned: Vec<std::pin::Pin<Box<F>>> = futs.map(Box::pin).collect();
    let mut out: Vec<Option<F::Output>> = pinned.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (f, slot) in pinned.iter_mut().zip(out.iter_mut()) {
            if slot.is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => *slot = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending { std::task::Poll::Pending } else { std::task::Poll::Ready(()) }
    })
    .await;
    out.into_iter().flatten().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_ids_follow_the_oci_rule() {
        let a = Digest::of(b"a");
        let b = Digest::of(b"b");
        let c = chain_ids(&[a, b]);
        assert_eq!(c[0], a);
        assert_eq!(c[1], Digest::of(format!("{a} {b}").as_bytes()));
    }
}
