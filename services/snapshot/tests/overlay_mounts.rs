//! Real mounts (we are root): the merged view of a layer chain is the same on overlayfs and
//! native, and a container's deletions and opaque directories made through a real overlay
//! mount survive diff → apply. Every mount is undone by a guard, even on failure.

mod common;

use std::collections::BTreeMap;

use berth_ipc::snapshot::{Diff, KeyRef, Kind, Mounts, Prepare, View};
use berth_snapshot::store::{Local, Snapshotter};
use common::Layer;

fn local(root: &std::path::Path) -> (Local, tempfile::TempDir, std::sync::Arc<berth_snapshot::DirBlobs>) {
    let (d, blobs) = common::blob_dir();
    let env = berth_service_kit::ServiceEnv::new("snapshot", common::service::config(root));
    (Local(berth_snapshot::build(&env, blobs.clone()).expect("build")), d, blobs)
}

fn three_layers() -> Vec<Vec<u8>> {
    vec![
        Layer::new()
            .dir("etc")
            .file("etc/conf", b"1")
            .dir("opt")
            .dir("opt/app")
            .file("opt/app/bin", b"app")
            .tar(),
        Layer::new().dir("etc").file("etc/conf", b"2").file("etc/extra", b"e").tar(),
        Layer::new().file_mode(b".wh.opt", b"", 0).dir("etc").file("etc/added", b"3").tar(),
    ]
}

/// Commits `layers` as a chain `l0`, `l1`, … on backend `sn`; returns the top's key.
async fn chain(s: &Local, sn: &str, layers: &[Vec<u8>], blobs: &berth_snapshot::DirBlobs) -> String {
    let mut parent: Option<String> = None;
    for (i, l) in layers.iter().enumerate() {
        let k = format!("active-{i}");
        s.call(Prepare {
            namespace: "default".into(),
            snapshotter: sn.into(),
            key: k.clone(),
            parent: parent.clone(),
            labels: BTreeMap::new(),
        })
        .await
        .expect("prepare");
        let d = blobs.add(l).expect("blob");
        s.call(berth_ipc::snapshot::Apply {
            namespace: "default".into(),
            snapshotter: sn.into(),
            key: k.clone(),
            digest: d,
            media_type: String::new(),
        })
        .await
        .expect("apply");
        let name = format!("l{i}");
        s.call(berth_ipc::snapshot::Commit {
            namespace: "default".into(),
            snapshotter: sn.into(),
            name: name.clone(),
            key: k,
            labels: BTreeMap::new(),
        })
        .await
        .expect("commit");
        parent = Some(name);
    }
    parent.expect("layers")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn merged_view_is_identical_on_overlayfs_and_native() {
    if !common::can_mount_overlay() {
        println!("skipping: needs root and overlayfs");
        return;
    }
    let dir = tempfile::tempdir().expect("dir");
    let (s, _d, blobs) = local(dir.path());
    let mut trees = Vec::new();
    for sn in ["overlayfs", "native"] {
        let top = chain(&s, sn, &three_layers(), &blobs).await;
        let mounts = s
            .call(View {
                namespace: "default".into(),
                snapshotter: sn.into(),
                key: format!("view-{sn}"),
                parent: Some(top),
                labels: BTreeMap::new(),
            })
            .await
            .expect("view");
        let target = dir.path().join(format!("mnt-{sn}"));
        std::fs::create_dir(&target).expect("mnt");
        let _m = common::mount(&mounts, &target);
        trees.push(common::tree(&target));
    }
    let expected_names = ["etc", "etc/added", "etc/conf", "etc/extra"];
    let names: Vec<&str> = trees[0].iter().map(|l| l.split(' ').next().expect("name")).collect();
    assert_eq!(names, expected_names, "overlay view: {:#?}", trees[0]);
    assert!(trees[0].iter().any(|l| l.starts_with("etc/conf ") && l.ends_with(" 2")), "{:#?}", trees[0]);
    assert_eq!(trees[0], trees[1], "overlayfs and native differ");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deletions_and_opaque_dirs_made_through_overlay_survive_diff_and_apply() {
    if !common::can_mount_overlay() {
        println!("skipping: needs root and overlayfs");
        return;
    }
    let dir = tempfile::tempdir().expect("dir");
    let (s, _d, blobs) = local(dir.path());
    let base = Layer::new()
        .dir("etc")
        .file("etc/keep", b"k")
        .file("etc/rm", b"r")
        .dir("data")
        .file("data/old1", b"1")
        .file("data/old2", b"2")
        .tar();
    let top = chain(&s, "overlayfs", std::slice::from_ref(&base), &blobs).await;
    let mounts = s
        .call(Prepare {
            namespace: "default".into(),
            snapshotter: "overlayfs".into(),
            key: "ctr".into(),
            parent: Some(top.clone()),
            labels: BTreeMap::new(),
        })
        .await
        .expect("prepare");
    let target = dir.path().join("mnt");
    std::fs::create_dir(&target).expect("mnt");
    {
        let _m = common::mount(&mounts, &target);
        std::fs::remove_file(target.join("etc/rm")).expect("rm");
        std::fs::remove_dir_all(target.join("data")).expect("rm -r");
        std::fs::create_dir(target.join("data")).expect("recreate: opaque");
        std::fs::write(target.join("data/new"), b"n").expect("new");
        std::fs::write(target.join("etc/added"), b"a").expect("added");
    }
    let expected = {
        let m = s
            .call(Mounts(KeyRef {
                namespace: "default".into(),
                snapshotter: "overlayfs".into(),
                key: "ctr".into(),
            }))
            .await
            .expect("mounts");
        let t = dir.path().join("mnt-check");
        std::fs::create_dir(&t).expect("mnt");
        let _g = common::mount(&m, &t);
        common::tree(&t)
    };
    let d = s
        .call(Diff {
            namespace: "default".into(),
            snapshotter: "overlayfs".into(),
            lower: Some(top.clone()),
            upper: "ctr".into(),
            labels: BTreeMap::new(),
        })
        .await
        .expect("diff");

    // Replay on native: base, then the diff, as a full tree.
    let ntop = chain(&s, "native", &[base], &blobs).await;
    let m = s
        .call(Prepare {
            namespace: "default".into(),
            snapshotter: "native".into(),
            key: "replay".into(),
            parent: Some(ntop),
            labels: BTreeMap::new(),
        })
        .await
        .expect("prepare replay");
    s.call(berth_ipc::snapshot::Apply {
        namespace: "default".into(),
        snapshotter: "native".into(),
        key: "replay".into(),
        digest: d.digest,
        media_type: d.media_type,
    })
    .await
    .expect("apply diff");
    let replay = std::path::PathBuf::from(&m[0].source);
    let got = common::tree(&replay);
    let names =
        |t: &[String]| t.iter().map(|l| l.split(' ').next().expect("n").to_string()).collect::<Vec<_>>();
    assert_eq!(names(&got), ["data", "data/new", "etc", "etc/added", "etc/keep"], "{got:#?}");
    assert_eq!(names(&expected), names(&got));
    let info = s
        .call(berth_ipc::snapshot::Stat(KeyRef {
            namespace: "default".into(),
            snapshotter: "native".into(),
            key: "replay".into(),
        }))
        .await
        .expect("stat");
    assert_eq!(info.kind, Kind::Active);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn diff_of_distant_overlay_snapshots_walks_mounted_views() {
    if !common::can_mount_overlay() {
        println!("skipping: needs root and overlayfs");
        return;
    }
    let dir = tempfile::tempdir().expect("dir");
    let (s, _d, blobs) = local(dir.path());
    let layers = three_layers();
    chain(&s, "overlayfs", &layers, &blobs).await;
    // l0 → l2 skips a layer, so the overlay upper dir alone is not the change set.
    let d = s
        .call(Diff {
            namespace: "default".into(),
            snapshotter: "overlayfs".into(),
            lower: Some("l0".into()),
            upper: "l2".into(),
            labels: BTreeMap::new(),
        })
        .await
        .expect("diff");
    chain(&s, "native", &layers[..1], &blobs).await;
    let m = s
        .call(Prepare {
            namespace: "default".into(),
            snapshotter: "native".into(),
            key: "replay".into(),
            parent: Some("l0".into()),
            labels: BTreeMap::new(),
        })
        .await
        .expect("prepare");
    s.call(berth_ipc::snapshot::Apply {
        namespace: "default".into(),
        snapshotter: "native".into(),
        key: "replay".into(),
        digest: d.digest,
        media_type: d.media_type,
    })
    .await
    .expect("apply");
    let got = common::tree(std::path::Path::new(&m[0].source));
    let names: Vec<&str> = got.iter().map(|l| l.split(' ').next().expect("name")).collect();
    assert_eq!(names, ["etc", "etc/added", "etc/conf", "etc/extra"], "{got:#?}");
    let left: Vec<_> =
        std::fs::read_dir(dir.path().join("root/snapshots/overlayfs/tmp")).expect("tmp").collect();
    assert!(left.is_empty(), "temporary mounts or files left behind");
    assert!(
        !std::fs::read_to_string("/proc/mounts")
            .expect("mounts")
            .contains(dir.path().to_str().expect("utf8"))
    );
}
