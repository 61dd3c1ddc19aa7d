//! GC's record-level logic against an in-memory backend: roots, reference labels, snapshot
//! parents, leases and their expiry, per-namespace marking, the grace period.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use berth_ipc::Result;
use berth_ipc::digest::Digest;
use berth_ipc::filter::Filters;
use berth_ipc::metadata::{Descriptor, Image, Labels, LeaseResource, SnapshotRecord};
use berth_metadata::gc::backend::BoxFuture;
use berth_metadata::gc::{Backend, BackendObject, ObjectId};
use berth_metadata::{Collector, Store};

/// Objects with creation times; deletions recorded.
#[derive(Default)]
struct Fake {
    objects: Mutex<BTreeMap<ObjectId, u64>>,
}

impl Fake {
    fn add(&self, id: ObjectId, created_ns: u64) {
        self.objects.lock().expect("lock").insert(id, created_ns);
    }
    fn has(&self, id: &ObjectId) -> bool {
        self.objects.lock().expect("lock").contains_key(id)
    }
}

impl Backend for Fake {
    fn name(&self) -> &str {
        "fake"
    }
    fn holds(&self, _: &ObjectId) -> bool {
        true
    }
    fn list(&self) -> BoxFuture<'_, Result<Vec<BackendObject>>> {
        let objs = self
            .objects
            .lock()
            .expect("lock")
            .iter()
            .map(|(id, c)| BackendObject { id: id.clone(), created_ns: *c })
            .collect();
        Box::pin(async move { Ok(objs) })
    }
    fn delete<'a>(&'a self, id: &'a ObjectId) -> BoxFuture<'a, Result<()>> {
        self.objects.lock().expect("lock").remove(id);
        Box::pin(async { Ok(()) })
    }
}

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

fn blob(name: &str) -> (Digest, ObjectId) {
    let d = Digest::of(name.as_bytes());
    (d, ObjectId::Content(d))
}

/// A snapshot as the snapshot service keys it: `<namespace>/<key>`.
fn snap(key: &str) -> ObjectId {
    ObjectId::Snapshot("overlayfs".into(), key.into())
}

fn setup(grace: Duration) -> (tempfile::TempDir, Arc<Store>, Arc<Fake>, Collector) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(Store::open(dir.path()).expect("open"));
    let fake = Arc::new(Fake::default());
    let gc = Collector::new(store.clone(), vec![fake.clone() as Arc<dyn Backend>], grace);
    (dir, store, fake, gc)
}

fn image(name: &str, target: Digest) -> Image {
    Image {
        name: name.into(),
        target: Descriptor { media_type: "m".into(), digest: target, size: 1 },
        labels: Labels::new(),
        created: 0,
        updated: 0,
    }
}

fn snapshot_rec(key: &str, parent: Option<&str>, l: Labels) -> SnapshotRecord {
    SnapshotRecord {
        snapshotter: "overlayfs".into(),
        key: key.into(),
        parent: parent.map(str::to_string),
        labels: l,
        created: 0,
        updated: 0,
    }
}

#[tokio::test]
async fn references_parents_roots_and_namespaces() {
    let (_dir, store, fake, gc) = setup(Duration::from_secs(3600));
    let (manifest, m_id) = blob("manifest");
    let (config, c_id) = blob("config");
    let (layer, l_id) = blob("layer");
    let (orphan, o_id) = blob("orphan");
    let (rooted, r_id) = blob("rooted");
    for id in [&m_id, &c_id, &l_id, &o_id, &r_id] {
        fake.add(id.clone(), 0);
    }
    for k in ["chain-1", "chain-2", "active", "lonely"] {
        fake.add(snap(&format!("a/{k}")), 0);
    }
    let refs = labels(&[
        ("containerd.io/gc.ref.content.config", &config.to_string()),
        ("containerd.io/gc.ref.content.l.0", &layer.to_string()),
        ("containerd.io/gc.ref.snapshot.overlayfs", "chain-2"),
    ]);
    store.put_content("a", &manifest, 1, &refs, None).expect("put");
    store.put_content("a", &config, 1, &Labels::new(), None).expect("put");
    store.put_content("a", &layer, 1, &Labels::new(), None).expect("put");
    store.put_content("a", &orphan, 1, &Labels::new(), None).expect("put");
    store.put_content("a", &rooted, 1, &labels(&[("containerd.io/gc.root", "")]), None).expect("put");
    // The orphan is referenced in namespace b only by a record that is itself unreferenced.
    store.put_content("b", &orphan, 1, &Labels::new(), None).expect("put");
    store.put_snapshot("a", &snapshot_rec("chain-1", None, Labels::new()), None).expect("snap");
    store.put_snapshot("a", &snapshot_rec("chain-2", Some("chain-1"), Labels::new()), None).expect("snap");
    store.put_snapshot("a", &snapshot_rec("active", Some("chain-2"), Labels::new()), None).expect("snap");
    store.put_snapshot("a", &snapshot_rec("lonely", None, Labels::new()), None).expect("snap");
    store.create_image("a", &image("img", manifest)).expect("image");
    let c = berth_ipc::metadata::Container {
        id: "c1".into(),
        image: "img".into(),
        runtime: berth_ipc::metadata::RuntimeInfo { name: "runc".into(), options: vec![] },
        spec: vec![],
        snapshotter: "overlayfs".into(),
        snapshot_key: "active".into(),
        labels: Labels::new(),
        extensions: BTreeMap::new(),
        created: 0,
        updated: 0,
    };
    store.create_container("a", &c).expect("container");

    let report = gc.collect().await.expect("gc");
    assert_eq!(report.content_records, 2, "orphan in a and b: {report:?}");
    assert_eq!(report.snapshot_records, 1, "lonely: {report:?}");
    assert_eq!(report.blobs_deleted, 1);
    assert_eq!(report.snapshots_deleted, 1);
    for id in [&m_id, &c_id, &l_id, &r_id, &snap("a/chain-1"), &snap("a/chain-2"), &snap("a/active")] {
        assert!(fake.has(id), "{id} kept");
    }
    assert!(!fake.has(&o_id) && !fake.has(&snap("a/lonely")));
    assert!(store.get_content("a", &orphan).is_err());
    assert!(store.get_content("a", &layer).is_ok());

    // Removing the container frees its active snapshot but not the image's chain.
    store.delete_container("a", &c.id).expect("rm container");
    let report = gc.collect().await.expect("gc");
    assert_eq!((report.snapshot_records, report.snapshots_deleted), (1, 1), "{report:?}");
    assert!(fake.has(&snap("a/chain-1")) && fake.has(&snap("a/chain-2")) && !fake.has(&snap("a/active")));

    // Removing the image frees the rest but the gc.root blob.
    store.delete_image("a", "img").expect("rm image");
    let report = gc.collect().await.expect("gc");
    assert_eq!(report.content_records, 3, "{report:?}");
    assert!(!fake.has(&m_id) && !fake.has(&c_id) && !fake.has(&l_id) && fake.has(&r_id));
    assert!(!fake.has(&snap("a/chain-1")) && !fake.has(&snap("a/chain-2")));
}

#[tokio::test]
async fn a_blob_referenced_in_another_namespace_stays() {
    let (_dir, store, fake, gc) = setup(Duration::from_secs(3600));
    let (d, id) = blob("shared");
    fake.add(id.clone(), 0);
    store.put_content("a", &d, 1, &Labels::new(), None).expect("put a");
    store.put_content("b", &d, 1, &Labels::new(), None).expect("put b");
    store.create_image("b", &image("img", d)).expect("image in b");
    let report = gc.collect().await.expect("gc");
    assert_eq!(report.content_records, 1, "a's unreferenced record goes");
    assert!(fake.has(&id), "b still needs the blob");
    assert!(store.list_content("a", &Filters::default()).expect("ls").is_empty());
}

#[tokio::test]
async fn leases_protect_until_deleted_or_expired() {
    let (_dir, store, fake, gc) = setup(Duration::ZERO);
    let (d1, id1) = blob("leased");
    let (d2, id2) = blob("expiring");
    fake.add(id1.clone(), 0);
    fake.add(id2.clone(), 0);
    store.create_lease("ns", "forever", &Labels::new(), None).expect("lease");
    store.create_lease("ns", "short", &Labels::new(), Some(300)).expect("lease");
    // Leased before any record exists, as a pull does.
    store.add_lease_resource("ns", "forever", &LeaseResource::Content(d1)).expect("add");
    store.put_content("ns", &d2, 1, &Labels::new(), Some("short")).expect("put under lease");
    store
        .add_lease_resource(
            "ns",
            "forever",
            &LeaseResource::Snapshot { snapshotter: "overlayfs".into(), key: "s".into() },
        )
        .expect("add snapshot");
    fake.add(snap("ns/s"), 0);

    let report = gc.collect().await.expect("gc");
    assert_eq!(report.blobs_deleted + report.snapshots_deleted, 0, "{report:?}");
    assert!(fake.has(&id1) && fake.has(&id2) && fake.has(&snap("ns/s")));

    tokio::time::sleep(Duration::from_millis(400)).await;
    let report = gc.collect().await.expect("gc");
    assert_eq!(report.leases, 1, "expired lease deleted: {report:?}");
    assert!(!fake.has(&id2), "its blob goes with it");
    assert!(fake.has(&id1));
    assert_eq!(store.list_leases("ns", &Filters::default()).expect("ls").len(), 1);

    store.delete_lease("ns", "forever").expect("delete");
    gc.collect().await.expect("gc");
    assert!(!fake.has(&id1) && !fake.has(&snap("ns/s")));
}

#[tokio::test]
async fn never_recorded_objects_wait_out_the_grace_period_recorded_ones_do_not() {
    let (_dir, store, fake, gc) = setup(Duration::from_millis(500));
    let now = berth_metadata::store::now_ns();
    let (_, young_id) = blob("young");
    let (_, old_id) = blob("old");
    let (recorded, rec_id) = blob("recorded");
    fake.add(young_id.clone(), now);
    fake.add(old_id.clone(), now - 10_000_000_000);
    fake.add(rec_id.clone(), now);
    store.put_content("ns", &recorded, 1, &Labels::new(), None).expect("put");
    store.remove_content("ns", &recorded).expect("remove record");

    let report = gc.collect().await.expect("gc");
    assert!(fake.has(&young_id), "young and never recorded: spared");
    assert!(!fake.has(&old_id), "old and never recorded: collected");
    assert!(!fake.has(&rec_id), "had a record: collected at once though young");
    assert_eq!(report.spared, 1);
    tokio::time::sleep(Duration::from_millis(600)).await;
    gc.collect().await.expect("gc");
    assert!(!fake.has(&young_id), "collected after the grace period");
}
