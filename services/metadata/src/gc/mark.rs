//! Mark and sweep of records, inside one write transaction: per namespace, mark from the
//! roots (images, containers, unexpired leases, records labelled `containerd.io/gc.root`)
//! along reference labels and snapshot parents; delete unmarked content and snapshot
//! records and expired leases. What any namespace still references is returned, so the
//! backend phase knows what must stay.

use std::collections::{HashMap, HashSet};

use berth_ipc::Result;
use berth_ipc::digest::Digest;
use berth_ipc::metadata::{Container, ContentRecord, Image, Lease, LeaseResource, Namespace, SnapshotRecord};

use super::refs::{self, Node};
use crate::store::keys::{self, Kind};
use crate::store::{Read, Tx, leases};

/// What the record phase leaves for the backend phase.
#[derive(Debug, Default)]
pub struct Marked {
    /// Blobs some namespace references (recorded or leased).
    pub content: HashSet<Digest>,
    /// Snapshots some namespace references, as `(snapshotter, <namespace>/<key>)`.
    pub snapshots: HashSet<(String, String)>,
    /// Ingest refs some unexpired lease holds (the content service's refs are global).
    pub ingests: HashSet<String>,
    /// Content records removed.
    pub content_records: u64,
    /// Snapshot records removed.
    pub snapshot_records: u64,
    /// Expired leases removed.
    pub leases: u64,
}

/// Marks and sweeps every namespace in `tx` as of time `now`.
pub fn mark_and_sweep(tx: &mut Tx<'_>, now: u64) -> Result<Marked> {
    let mut out = Marked::default();
    let namespaces: Vec<Namespace> = tx.scan(&keys::namespaces())?.into_iter().map(|(_, n)| n).collect();
    for ns in namespaces {
        namespace(tx, &ns.name, now, &mut out)?;
    }
    Ok(out)
}

fn namespace(tx: &mut Tx<'_>, ns: &str, now: u64, out: &mut Marked) -> Result<()> {
    let mut roots: Vec<Node> = Vec::new();
    for (_, img) in tx.scan::<Image>(&keys::objects(ns, Kind::Image))? {
        roots.push(Node::Content(img.target.digest));
        roots.extend(refs::references(&img.labels));
    }
    for (_, c) in tx.scan::<Container>(&keys::objects(ns, Kind::Container))? {
        if !c.snapshotter.is_empty() && !c.snapshot_key.is_empty() {
            roots.push(Node::Snapshot(c.snapshotter.clone(), c.snapshot_key.clone()));
        }
        roots.extend(refs::references(&c.labels));
    }
    for (_, lease) in tx.scan::<Lease>(&keys::objects(ns, Kind::Lease))? {
        if lease.expires.is_some_and(|e| e <= now) {
            leases::delete(tx, ns, &lease.id)?;
            out.leases += 1;
            continue;
        }
        for res in leases::resources(tx, ns, &lease.id)? {
            match res {
                LeaseResource::Content(d) => roots.push(Node::Content(d)),
                LeaseResource::Snapshot { snapshotter, key } => roots.push(Node::Snapshot(snapshotter, key)),
                LeaseResource::Ingest(r) => {
                    out.ingests.insert(r);
                }
            }
        }
    }
    let contents = tx.scan::<ContentRecord>(&keys::objects(ns, Kind::Content))?;
    let snapshots = tx.scan::<SnapshotRecord>(&keys::objects(ns, Kind::Snapshot))?;
    roots.extend(
        contents.iter().filter(|(_, r)| refs::is_root(&r.labels)).map(|(_, r)| Node::Content(r.digest)),
    );
    roots.extend(
        snapshots
            .iter()
            .filter(|(_, r)| refs::is_root(&r.labels))
            .map(|(_, r)| Node::Snapshot(r.snapshotter.clone(), r.key.clone())),
    );

    // Propagate along labels and parents, through records of this namespace only.
    let content_by: HashMap<&Digest, &ContentRecord> = contents.iter().map(|(_, r)| (&r.digest, r)).collect();
    let snapshot_by: HashMap<(&str, &str), &SnapshotRecord> =
        snapshots.iter().map(|(_, r)| ((r.snapshotter.as_str(), r.key.as_str()), r)).collect();
    let mut marked: HashSet<Node> = HashSet::new();
    let mut work = roots;
    while let Some(node) = work.pop() {
        if !marked.insert(node.clone()) {
            continue;
        }
        match &node {
            Node::Content(d) => {
                if let Some(rec) = content_by.get(d) {
                    work.extend(refs::references(&rec.labels));
                }
            }
            Node::Snapshot(sn, key) => {
                if let Some(rec) = snapshot_by.get(&(sn.as_str(), key.as_str())) {
                    if let Some(parent) = &rec.parent {
                        work.push(Node::Snapshot(sn.clone(), parent.clone()));
                    }
                    work.extend(refs::references(&rec.labels));
                }
            }
        }
    }

    drop((content_by, snapshot_by));
    for (key, rec) in contents {
        if !marked.contains(&Node::Content(rec.digest)) {
            tx.delete(&key);
            out.content_records += 1;
        }
    }
    for (key, rec) in snapshots {
        if !marked.contains(&Node::Snapshot(rec.snapshotter.clone(), rec.key.clone())) {
            tx.delete(&key);
            out.snapshot_records += 1;
        }
    }
    for node in marked {
        match node {
            Node::Content(d) => {
                out.content.insert(d);
            }
            Node::Snapshot(sn, key) => {
                // The snapshot service's index key: the same key in two namespaces is two
                // snapshots.
                out.snapshots.insert((sn, format!("{ns}/{key}")));
            }
        }
    }
    Ok(())
}
