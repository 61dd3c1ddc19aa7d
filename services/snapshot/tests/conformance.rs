//! The conformance suite, run against both backends, in-process and over the socket:
//! containerd's semantics for prepare/view/commit/mounts/remove/stat/update/usage/list,
//! apply, batch unpack under chainIDs, and diff round trips.

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use berth_ipc::Code;
use berth_ipc::digest::Digest;
use berth_ipc::snapshot::*;
use berth_snapshot::store::{Local, Remote, Snapshotter};
use berth_snapshot::{BackendKind, DirBlobs};
use common::Layer;

fn key(sn: &str, key: &str) -> KeyRef {
    KeyRef { namespace: "default".into(), snapshotter: sn.into(), key: key.into() }
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

async fn prepare<S: Snapshotter>(
    s: &S,
    sn: &str,
    k: &str,
    parent: Option<&str>,
) -> berth_ipc::Result<Vec<Mount>> {
    s.call(Prepare {
        namespace: "default".into(),
        snapshotter: sn.into(),
        key: k.into(),
        parent: parent.map(Into::into),
        labels: BTreeMap::new(),
    })
    .await
}

async fn commit<S: Snapshotter>(s: &S, sn: &str, name: &str, k: &str) -> berth_ipc::Result<()> {
    s.call(Commit {
        namespace: "default".into(),
        snapshotter: sn.into(),
        name: name.into(),
        key: k.into(),
        labels: BTreeMap::new(),
    })
    .await
}

async fn apply<S: Snapshotter>(s: &S, sn: &str, k: &str, digest: Digest) -> berth_ipc::Result<Applied> {
    s.call(Apply {
        namespace: "default".into(),
        snapshotter: sn.into(),
        key: k.into(),
        digest,
        media_type: MEDIA_TYPE_LAYER_GZIP.into(),
    })
    .await
}

/// The directory a snapshot's changes go to, from its mounts.
fn upper(mounts: &[Mount]) -> PathBuf {
    let m = &mounts[0];
    match m.kind.as_str() {
        "bind" => PathBuf::from(&m.source),
        _ => PathBuf::from(m.options.iter().find_map(|o| o.strip_prefix("upperdir=")).expect("upperdir")),
    }
}

async fn lifecycle<S: Snapshotter>(s: &S, sn: &str, blobs: &DirBlobs) {
    let kind = BackendKind::parse(sn).expect("snapshotter");
    let m = prepare(s, sn, "a", None).await.expect("prepare a");
    assert_eq!(m[0].kind, "bind");
    assert!(m[0].options.contains(&"rw".to_string()));
    assert_eq!(prepare(s, sn, "a", None).await.expect_err("taken").code, Code::AlreadyExists);
    assert_eq!(prepare(s, sn, "b", Some("missing")).await.expect_err("no parent").code, Code::NotFound);
    assert_eq!(
        prepare(s, sn, "b", Some("a")).await.expect_err("active parent").code,
        Code::FailedPrecondition
    );
    assert_eq!(s.call(Stat(key(sn, "a"))).await.expect("stat").kind, Kind::Active);

    let blob = blobs.add(&Layer::new().dir("etc").file("etc/os", b"base").gzip()).expect("blob");
    let applied = apply(s, sn, "a", blob).await.expect("apply");
    assert_eq!(applied.diff_id, Digest::of(&Layer::new().dir("etc").file("etc/os", b"base").tar()));
    let missing = Digest::of(b"nothing");
    assert_eq!(apply(s, sn, "a", missing).await.expect_err("no blob").code, Code::NotFound);

    commit(s, sn, "base", "a").await.expect("commit");
    assert_eq!(s.call(Stat(key(sn, "a"))).await.expect_err("renamed").code, Code::NotFound);
    assert_eq!(s.call(Stat(key(sn, "base"))).await.expect("stat").kind, Kind::Committed);
    assert_eq!(commit(s, sn, "again", "base").await.expect_err("committed").code, Code::FailedPrecondition);
    assert_eq!(apply(s, sn, "base", blob).await.expect_err("read-only").code, Code::FailedPrecondition);

    let m = prepare(s, sn, "c", Some("base")).await.expect("prepare c");
    match kind {
        BackendKind::Overlay => {
            assert_eq!(m[0].kind, "overlay");
            assert!(m[0].options.iter().any(|o| o.starts_with("lowerdir=")), "{m:?}");
            assert!(m[0].options.iter().any(|o| o.starts_with("upperdir=")), "{m:?}");
        }
        BackendKind::Native => {
            assert_eq!(m[0].kind, "bind");
            assert_eq!(std::fs::read(upper(&m).join("etc/os")).expect("copied"), b"base");
        }
    }
    assert_eq!(s.call(Mounts(key(sn, "c"))).await.expect("mounts"), m);
    let v = s
        .call(View {
            namespace: "default".into(),
            snapshotter: sn.into(),
            key: "v".into(),
            parent: Some("base".into()),
            labels: BTreeMap::new(),
        })
        .await
        .expect("view");
    assert_eq!(v[0].kind, "bind");
    assert!(v[0].options.contains(&"ro".to_string()));
    assert_eq!(commit(s, sn, "x", "v").await.expect_err("view").code, Code::FailedPrecondition);
    assert_eq!(s.call(Remove(key(sn, "base"))).await.expect_err("children").code, Code::FailedPrecondition);

    let upd = Update {
        namespace: "default".into(),
        snapshotter: sn.into(),
        key: "base".into(),
        labels: labels(&[("a", "1"), ("b", "2")]),
        fieldpaths: vec![],
    };
    assert_eq!(s.call(upd).await.expect("update").labels, labels(&[("a", "1"), ("b", "2")]));
    let upd = Update {
        namespace: "default".into(),
        snapshotter: sn.into(),
        key: "base".into(),
        labels: labels(&[("c", "3")]),
        fieldpaths: vec!["labels.c".into(), "labels.a".into()],
    };
    assert_eq!(s.call(upd).await.expect("update").labels, labels(&[("b", "2"), ("c", "3")]));
    let bad = Update {
        namespace: "default".into(),
        snapshotter: sn.into(),
        key: "base".into(),
        labels: BTreeMap::new(),
        fieldpaths: vec!["parent".into()],
    };
    assert_eq!(s.call(bad).await.expect_err("field").code, Code::InvalidArgument);

    let list = |f: &str| {
        s.call(List {
            namespace: "default".into(),
            all_namespaces: false,
            snapshotter: sn.into(),
            filters: vec![f.to_string()],
        })
    };
    let names = |l: Vec<Info>| l.into_iter().map(|i| i.name).collect::<Vec<_>>();
    assert_eq!(names(list("kind==committed").await.expect("list")), ["base"]);
    assert_eq!(names(list("labels.c==3").await.expect("list")), ["base"]);
    assert_eq!(names(list("parent==base").await.expect("list")), ["c", "v"]);
    assert_eq!(list("kind=").await.expect_err("bad filter").code, Code::InvalidArgument);

    let u = s.call(GetUsage(key(sn, "base"))).await.expect("usage");
    assert!(u.inodes >= 2 && u.size > 0, "{u:?}");

    for k in ["c", "v", "base"] {
        s.call(Remove(key(sn, k))).await.expect("remove");
    }
    assert_eq!(s.call(Remove(key(sn, "base"))).await.expect_err("gone").code, Code::NotFound);
    assert!(list("").await.expect("list").is_empty());
    assert_eq!(s.call(Cleanup { snapshotter: sn.into() }).await.expect("cleanup"), 0);
    assert_eq!(
        prepare(s, "zfs", "z", None).await.expect_err("unknown snapshotter").code,
        Code::InvalidArgument
    );
}

async fn unpack_and_diff<S: Snapshotter>(s: &S, sn: &str, blobs: &DirBlobs) {
    let l1 =
        Layer::new().dir("etc").file("etc/a", b"1").file("etc/gone", b"x").dir("var").file("var/v", b"v");
    let l2 = Layer::new().dir("etc").file("etc/b", b"2").file_mode(b"etc/.wh.gone", b"", 0);
    let (t1, t2) = (l1.tar(), l2.tar());
    let layers = vec![
        Layer_ {
            digest: blobs.add(&common::gzip(&t1)).expect("b1"),
            media_type: MEDIA_TYPE_LAYER_GZIP.into(),
            diff_id: Digest::of(&t1),
        },
        Layer_ {
            digest: blobs.add(&common::gzip(&t2)).expect("b2"),
            media_type: MEDIA_TYPE_LAYER_GZIP.into(),
            diff_id: Digest::of(&t2),
        },
    ];
    let req = Unpack {
        namespace: "default".into(),
        snapshotter: sn.into(),
        layers: layers.clone(),
        labels: BTreeMap::new(),
    };
    let u = s.call(req.clone()).await.expect("unpack");
    assert_eq!(u.extracted, 2);
    let chain = berth_snapshot::unpack::chain_ids(&[Digest::of(&t1), Digest::of(&t2)]);
    assert_eq!(u.chain_id, chain[1]);
    let top = s.call(Stat(key(sn, &chain[1].to_string()))).await.expect("top");
    assert_eq!(top.parent, Some(chain[0].to_string()));
    assert_eq!(s.call(req.clone()).await.expect("again").extracted, 0);

    let mut bad = req.clone();
    let t3 = Layer::new().file("x", b"x").tar();
    bad.layers.push(Layer_ {
        digest: blobs.add(&t3).expect("b3"),
        media_type: "application/vnd.oci.image.layer.v1.tar".into(),
        diff_id: Digest::of(b"lie"),
    });
    assert_eq!(s.call(bad).await.expect_err("diff_id mismatch").code, Code::DataLoss);
    let all = s
        .call(List {
            namespace: "default".into(),
            all_namespaces: false,
            snapshotter: sn.into(),
            filters: vec![],
        })
        .await
        .expect("list");
    assert_eq!(all.len(), 2, "a failed unpack leaves nothing: {all:?}");

    // A container's changes, diffed and applied onto the same base, give the same tree.
    let m = prepare(s, sn, "work", Some(&chain[1].to_string())).await.expect("prepare work");
    let up = upper(&m);
    std::fs::create_dir_all(up.join("etc")).expect("etc");
    std::fs::write(up.join("etc/new"), b"new").expect("new");
    match BackendKind::parse(sn).expect("sn") {
        BackendKind::Native => std::fs::remove_file(up.join("var/v")).expect("rm"),
        BackendKind::Overlay => {
            std::fs::create_dir_all(up.join("var")).expect("var");
            nix::sys::stat::mknod(
                &up.join("var/v"),
                nix::sys::stat::SFlag::S_IFCHR,
                nix::sys::stat::Mode::empty(),
                0,
            )
            .expect("whiteout")
        }
    }
    let d = s
        .call(Diff {
            namespace: "default".into(),
            snapshotter: sn.into(),
            lower: Some(chain[1].to_string()),
            upper: "work".into(),
            labels: BTreeMap::new(),
        })
        .await
        .expect("diff");
    assert_eq!(
        blobs.labels(&d.digest).expect("labels").get(LABEL_UNCOMPRESSED),
        Some(&d.diff_id.to_string())
    );
    prepare(s, sn, "replay", Some(&chain[1].to_string())).await.expect("prepare replay");
    let a = apply(s, sn, "replay", d.digest).await.expect("apply diff");
    assert_eq!(a.diff_id, d.diff_id);
    let replay = upper(&s.call(Mounts(key(sn, "replay"))).await.expect("mounts"));
    assert_eq!(std::fs::read(replay.join("etc/new")).expect("new"), b"new");
    match BackendKind::parse(sn).expect("sn") {
        BackendKind::Native => {
            assert!(!replay.join("var/v").exists(), "deletion replayed");
            assert_eq!(common::tree(&replay), common::tree(&up));
        }
        BackendKind::Overlay => {
            let st = replay.join("var/v").symlink_metadata().expect("whiteout");
            assert!(std::os::unix::fs::FileTypeExt::is_char_device(&st.file_type()));
        }
    }
    for k in ["work", "replay"] {
        s.call(Remove(key(sn, k))).await.expect("remove");
    }
}

use berth_ipc::snapshot::Layer as Layer_;

async fn suite<S: Snapshotter>(s: &S, sn: &str, blobs: &DirBlobs) {
    lifecycle(s, sn, blobs).await;
    unpack_and_diff(s, sn, blobs).await;
}

fn local(root: &std::path::Path, blobs: Arc<DirBlobs>) -> Local {
    let env = berth_service_kit::ServiceEnv::new("snapshot", common::service::config(root));
    Local(berth_snapshot::build(&env, blobs).expect("build"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_process_conforms() {
    for sn in ["overlayfs", "native"] {
        let dir = tempfile::tempdir().expect("dir");
        let (_b, blobs) = common::blob_dir();
        suite(&local(dir.path(), blobs.clone()), sn, &blobs).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_the_socket_conforms() {
    for sn in ["overlayfs", "native"] {
        let dir = tempfile::tempdir().expect("dir");
        let (_b, blobs) = common::blob_dir();
        let svc = common::service::start(dir.path(), Some(blobs.clone())).await;
        suite(&Remote(svc.client.clone()), sn, &blobs).await;
        svc.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cleanup_removes_orphan_dirs_and_the_index_survives_a_restart() {
    let dir = tempfile::tempdir().expect("dir");
    let (_b, blobs) = common::blob_dir();
    let s = local(dir.path(), blobs.clone());
    prepare(&s, "", "keep", None).await.expect("prepare");
    let orphan = dir.path().join("root/snapshots/overlayfs/snapshots/999/fs");
    std::fs::create_dir_all(&orphan).expect("orphan");
    assert_eq!(s.call(Cleanup { snapshotter: String::new() }).await.expect("cleanup"), 1);
    assert!(!orphan.exists());
    let again = local(dir.path(), blobs);
    assert_eq!(again.call(Stat(key("", "keep"))).await.expect("kept").kind, Kind::Active);
    let meta = std::fs::metadata(dir.path().join("root/snapshots/overlayfs/snapshots")).expect("dir");
    assert_eq!(std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o777, 0o700);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_unpacks_of_one_image_agree_and_leave_nothing_behind() {
    for sn in ["overlayfs", "native"] {
        let dir = tempfile::tempdir().expect("dir");
        let (_b, blobs) = common::blob_dir();
        let s = local(dir.path(), blobs.clone());
        let tars: Vec<Vec<u8>> = (0..3).map(|i| Layer::new().file(&format!("f{i}"), b"x").tar()).collect();
        let layers: Vec<Layer_> = tars
            .iter()
            .map(|t| Layer_ {
                digest: blobs.add(t).expect("blob"),
                media_type: String::new(),
                diff_id: Digest::of(t),
            })
            .collect();
        let req =
            Unpack { namespace: "default".into(), snapshotter: sn.into(), layers, labels: BTreeMap::new() };
        let (a, b) = tokio::join!(s.call(req.clone()), s.call(req.clone()));
        let (a, b) = (a.expect("first"), b.expect("second"));
        assert_eq!(a.chain_id, b.chain_id);
        let all = s
            .call(List {
                namespace: "default".into(),
                all_namespaces: false,
                snapshotter: sn.into(),
                filters: vec![],
            })
            .await
            .expect("list");
        assert_eq!(all.len(), 3, "{sn}: exactly the chain, no extract-* leftovers: {all:?}");
        assert!(all.iter().all(|i| i.kind == Kind::Committed));
    }
}
