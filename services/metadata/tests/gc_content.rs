//! GC through the real content and snapshot services: an image's blobs stay while it
//! exists and leave the disk by the time `images rm --sync` returns; leased blobs survive
//! until the lease ends; unrecorded blobs wait out the grace period; a container's
//! snapshot chain stays while it exists and goes children first; and a pull-like loop
//! racing GC never sees a created image with a missing blob.

mod common;

use std::time::Duration;

use berth_ipc::digest::Digest;
use berth_ipc::metadata::*;
use berth_ipc::{Client, Code};
use common::*;

const NS: &str = "default";
const OTHER: &str = "other";

/// Pulls an "image" the way distribution does: lease first, lease each blob before
/// writing or reusing it, record the blobs with their reference labels, create the image,
/// drop the lease. Returns the digests (manifest first).
async fn pull(md: &Client<Metadata>, content: &ContentRunning, name: &str, layers: &[&[u8]]) -> Vec<Digest> {
    let lease = md
        .call(CreateLease {
            namespace: NS.into(),
            id: String::new(),
            labels: Labels::new(),
            ttl_ms: Some(60_000),
        })
        .await
        .expect("lease");
    let config = format!("config of {name}").into_bytes();
    let mut blobs: Vec<Vec<u8>> = layers.iter().map(|l| l.to_vec()).collect();
    blobs.push(config.clone());
    let mut digests = Vec::new();
    let mut refs = Labels::new();
    for (i, b) in blobs.iter().enumerate() {
        let d = Digest::of(b);
        let res = LeaseResourceRequest {
            namespace: NS.into(),
            lease: lease.id.clone(),
            resource: LeaseResource::Content(d),
        };
        md.call(AddLeaseResource(res)).await.expect("lease blob");
        if !content.has(&d).await {
            content.write(b).await;
        }
        md.call(PutContent {
            namespace: NS.into(),
            digest: d,
            size: b.len() as u64,
            labels: Labels::new(),
            lease: None,
        })
        .await
        .expect("record");
        let key = if i + 1 == blobs.len() {
            "containerd.io/gc.ref.content.config".to_string()
        } else {
            format!("containerd.io/gc.ref.content.l.{i}")
        };
        refs.insert(key, d.to_string());
        digests.push(d);
    }
    let manifest = format!("manifest of {name} {refs:?}").into_bytes();
    let m = Digest::of(&manifest);
    let res = LeaseResourceRequest {
        namespace: NS.into(),
        lease: lease.id.clone(),
        resource: LeaseResource::Content(m),
    };
    md.call(AddLeaseResource(res)).await.expect("lease manifest");
    content.write(&manifest).await;
    md.call(PutContent {
        namespace: NS.into(),
        digest: m,
        size: manifest.len() as u64,
        labels: refs,
        lease: None,
    })
    .await
    .expect("record manifest");
    let mut img = image(name, &manifest);
    img.target.size = manifest.len() as u64;
    md.call(CreateImage { namespace: NS.into(), image: img }).await.expect("create image");
    md.call(DeleteLease { namespace: NS.into(), id: lease.id, sync: false }).await.expect("end lease");
    digests.insert(0, m);
    digests
}

fn blob_path(root: &std::path::Path, d: &Digest) -> std::path::PathBuf {
    root.join("content/blobs/sha256").join(d.hex())
}

#[tokio::test]
async fn image_blobs_stay_then_leave_the_disk_on_rm_sync() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = config(&dir);
    let content = start_content(&config).await;
    let snapshots = start_snapshot(&config).await;
    let svc = start_with(dir, config).await;
    let md = &svc.client;

    let digests = pull(md, &content, "docker.io/library/app:1", &[b"layer one", b"layer two"]).await;
    assert_eq!(digests.len(), 4);
    let report = md.call(Gc).await.expect("gc");
    assert_eq!(report.blobs_deleted, 0, "{report:?}");
    assert!(report.errors.is_empty(), "{report:?}");
    for d in &digests {
        assert!(content.has(d).await, "{d} kept while the image exists");
        assert!(blob_path(&svc.root, d).exists());
    }

    let report = md
        .call(DeleteImage { namespace: NS.into(), name: "docker.io/library/app:1".into(), sync: true })
        .await
        .expect("rm --sync")
        .expect("a report");
    assert_eq!(report.content_records, 4, "{report:?}");
    assert_eq!(report.blobs_deleted, 4, "{report:?}");
    for d in &digests {
        assert!(!blob_path(&svc.root, d).exists(), "{d} gone from disk");
        assert!(!content.has(d).await);
        let r = md.call(GetContent { namespace: NS.into(), digest: *d }).await;
        assert!(matches!(r, Err(e) if e.code == Code::NotFound));
    }
    svc.stop().await;
    snapshots.0.cancel();
    let _ = snapshots.1.await;
    content.stop().await;
}

#[tokio::test]
async fn leased_blob_survives_until_the_lease_ends_and_unrecorded_blob_until_grace() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = config(&dir);
    config.metadata.gc_grace_ms = 1500;
    let content = start_content(&config).await;
    let snapshots = start_snapshot(&config).await;
    let svc = start_with(dir, config).await;
    let md = &svc.client;

    let lease = md
        .call(CreateLease { namespace: NS.into(), id: "hold".into(), labels: Labels::new(), ttl_ms: None })
        .await
        .expect("lease");
    let leased = Digest::of(b"leased blob");
    let res = LeaseResourceRequest {
        namespace: NS.into(),
        lease: lease.id.clone(),
        resource: LeaseResource::Content(leased),
    };
    md.call(AddLeaseResource(res)).await.expect("lease it");
    content.write(b"leased blob").await;
    md.call(PutContent {
        namespace: NS.into(),
        digest: leased,
        size: 11,
        labels: Labels::new(),
        lease: None,
    })
    .await
    .expect("record");
    let stray = content.write(b"written, never recorded").await;

    let report = md.call(Gc).await.expect("gc");
    assert_eq!(report.spared, 1, "{report:?}");
    assert!(content.has(&leased).await && content.has(&stray).await);

    tokio::time::sleep(Duration::from_millis(1600)).await;
    let report = md.call(Gc).await.expect("gc");
    assert_eq!(report.blobs_deleted, 1, "{report:?}");
    assert!(!content.has(&stray).await, "collected after the grace period");
    assert!(content.has(&leased).await, "the lease still holds");

    let report = md
        .call(DeleteLease { namespace: NS.into(), id: "hold".into(), sync: true })
        .await
        .expect("delete lease")
        .expect("report");
    assert_eq!(report.blobs_deleted, 1, "{report:?}");
    assert!(!content.has(&leased).await);
    svc.stop().await;
    snapshots.0.cancel();
    let _ = snapshots.1.await;
    content.stop().await;
}

#[tokio::test]
async fn gc_racing_a_pull_loop_never_loses_a_blob_of_a_created_image() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = config(&dir);
    config.metadata.gc_grace_ms = 0; // the lease alone must protect in-flight blobs
    let content = start_content(&config).await;
    let snapshots = start_snapshot(&config).await;
    let svc = start_with(dir, config).await;
    let md = svc.client.clone();

    let stop = tokio_util::sync::CancellationToken::new();
    let gc_task = {
        let md = md.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut passes = 0u32;
            while !stop.is_cancelled() {
                md.call(Gc).await.expect("gc");
                passes += 1;
            }
            passes
        })
    };
    for i in 0..25u32 {
        // Every image shares a base layer with the previous one, which is deleted just
        // before: the base is unreferenced (but known) while the next pull reuses it, and
        // only that pull's lease keeps a concurrent pass from deleting it.
        if i > 0 {
            md.call(DeleteImage { namespace: NS.into(), name: format!("img-{}", i - 1), sync: false })
                .await
                .expect("rm previous");
        }
        let name = format!("img-{i}");
        let unique = format!("unique layer {i}").into_bytes();
        let digests = pull(&md, &content, &name, &[b"shared base layer", &unique]).await;
        for d in &digests {
            assert!(content.has(d).await, "image {name}: blob {d} missing");
        }
    }
    stop.cancel();
    let passes = gc_task.await.expect("gc task");
    assert!(passes > 1, "gc ran during the loop ({passes} passes)");
    svc.stop().await;
    snapshots.0.cancel();
    let _ = snapshots.1.await;
    content.stop().await;
}

#[tokio::test]
async fn snapshot_chain_stays_with_its_container_and_goes_children_first() {
    use berth_ipc::snapshot::{Commit, KeyRef, List, Prepare, Snapshot, Stat};
    let dir = tempfile::tempdir().expect("tempdir");
    let config = config(&dir);
    let content = start_content(&config).await;
    let snapshots = start_snapshot(&config).await;
    let svc = start_with(dir, config.clone()).await;
    let md = &svc.client;
    let sn = Client::<Snapshot>::in_state_dir(&config.state, berth_ipc::ClientOptions::default());
    let prepare_in = |ns: &str, key: &str, parent: Option<&str>| Prepare {
        snapshotter: "native".into(),
        key: key.into(),
        parent: parent.map(str::to_string),
        labels: Labels::new(),
        namespace: ns.into(),
    };
    let prepare = |key: &str, parent: Option<&str>| prepare_in(NS, key, parent);
    // The same key in another namespace is another snapshot, which that namespace's record
    // keeps.
    for ns in [NS, OTHER] {
        sn.call(prepare_in(ns, "base-active", None)).await.expect("prepare base");
        sn.call(Commit {
            snapshotter: "native".into(),
            name: "base".into(),
            key: "base-active".into(),
            labels: Labels::new(),
            namespace: ns.into(),
        })
        .await
        .expect("commit base");
    }
    let rec = SnapshotRecord {
        snapshotter: "native".into(),
        key: "base".into(),
        parent: None,
        labels: Labels::from([("containerd.io/gc.root".to_string(), "x".to_string())]),
        created: 0,
        updated: 0,
    };
    md.call(PutSnapshot { namespace: OTHER.into(), snapshot: rec, lease: None }).await.expect("record other");
    sn.call(prepare("rootfs-c1", Some("base"))).await.expect("prepare child");
    for (key, parent) in [("base", None), ("rootfs-c1", Some("base"))] {
        let rec = SnapshotRecord {
            snapshotter: "native".into(),
            key: key.into(),
            parent: parent.map(str::to_string),
            labels: Labels::new(),
            created: 0,
            updated: 0,
        };
        md.call(PutSnapshot { namespace: NS.into(), snapshot: rec, lease: None }).await.expect("record");
    }
    let mut c = container("c1");
    c.snapshotter = "native".into();
    c.snapshot_key = "rootfs-c1".into();
    md.call(CreateContainer { namespace: NS.into(), container: c }).await.expect("container");

    let report = md.call(Gc).await.expect("gc");
    assert_eq!(report.snapshots_deleted, 0, "{report:?}");
    assert!(report.errors.is_empty(), "{report:?}");
    let stat_in = |ns: &str, key: &str| {
        Stat(KeyRef { snapshotter: "native".into(), key: key.into(), namespace: ns.into() })
    };
    let stat = |key: &str| stat_in(NS, key);
    sn.call(stat("rootfs-c1")).await.expect("child kept");
    sn.call(stat("base")).await.expect("parent kept");

    md.call(DeleteContainer(by(NS, "c1"))).await.expect("rm container");
    let report = md.call(Gc).await.expect("gc");
    assert_eq!((report.snapshot_records, report.snapshots_deleted), (2, 2), "{report:?}");
    assert!(report.errors.is_empty(), "{report:?}");
    let list = |ns: &str| List {
        snapshotter: "native".into(),
        filters: vec![],
        namespace: ns.into(),
        all_namespaces: false,
    };
    let left = sn.call(list(NS)).await.expect("list");
    assert!(left.is_empty(), "{left:?}");
    // The other namespace's `base` is still there: only that namespace's record counts for it.
    sn.call(stat_in(OTHER, "base")).await.expect("other namespace's base kept");
    assert_eq!(sn.call(list(OTHER)).await.expect("list other").len(), 1);
    svc.stop().await;
    snapshots.0.cancel();
    let _ = snapshots.1.await;
    content.stop().await;
}

#[tokio::test]
async fn a_pass_runs_by_itself_after_enough_mutations() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = config(&dir);
    config.metadata.gc_mutations = 5;
    let content = start_content(&config).await;
    let snapshots = start_snapshot(&config).await;
    let svc = start_with(dir, config).await;
    let md = &svc.client;
    let d = content.write(b"nobody wants me").await;
    md.call(PutContent { namespace: NS.into(), digest: d, size: 15, labels: Labels::new(), lease: None })
        .await
        .expect("record");
    md.call(RemoveContent { namespace: NS.into(), digest: d }).await.expect("unrecord");
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(content.has(&d).await, "2 mutations: no pass yet");
    for i in 0..3 {
        md.call(CreateImage { namespace: NS.into(), image: image(&format!("i{i}"), b"x") })
            .await
            .expect("write");
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while content.has(&d).await {
        assert!(std::time::Instant::now() < deadline, "no automatic pass after 5 mutations");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    svc.stop().await;
    snapshots.0.cancel();
    let _ = snapshots.1.await;
    content.stop().await;
}
