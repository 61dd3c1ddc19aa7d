//! Namespaces in the snapshot service: the same key in two namespaces is two snapshots; a
//! namespace cannot stat, mount, remove, commit onto or list another's snapshots; an unpack
//! never trusts a chain another namespace committed; an index written before namespaces
//! becomes `default`'s.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;

use berth_ipc::Code;
use berth_ipc::digest::Digest;
use berth_ipc::snapshot::{
    Commit, KeyRef, Kind, Layer as Wire, List, Mounts, Prepare, Remove, Stat, Unpack, Update,
};
use berth_snapshot::DirBlobs;
use berth_snapshot::store::{Local, Snapshotter};
use common::Layer;

fn local(root: &std::path::Path, blobs: Arc<DirBlobs>) -> Local {
    let env = berth_service_kit::ServiceEnv::new("snapshot", common::service::config(root));
    Local(berth_snapshot::build(&env, blobs).expect("build"))
}

fn at(ns: &str, key: &str) -> KeyRef {
    KeyRef { snapshotter: "native".into(), key: key.into(), namespace: ns.into() }
}

fn prepare(ns: &str, key: &str, parent: Option<&str>) -> Prepare {
    Prepare {
        snapshotter: "native".into(),
        key: key.into(),
        parent: parent.map(str::to_string),
        labels: BTreeMap::from([("owner".to_string(), ns.to_string())]),
        namespace: ns.into(),
    }
}

fn commit(ns: &str, name: &str, key: &str) -> Commit {
    Commit {
        snapshotter: "native".into(),
        name: name.into(),
        key: key.into(),
        labels: BTreeMap::new(),
        namespace: ns.into(),
    }
}

fn list(ns: &str) -> List {
    List { snapshotter: "native".into(), filters: vec![], namespace: ns.into(), all_namespaces: false }
}

async fn code<T: std::fmt::Debug>(r: impl std::future::Future<Output = berth_ipc::Result<T>>) -> Code {
    r.await.expect_err("refused").code
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn namespaces_sharing_a_dash_never_reach_each_other() {
    let dir = tempfile::tempdir().expect("dir");
    let (_b, blobs) = common::blob_dir();
    let s = local(dir.path(), blobs);
    // `a` + `b-c` and `a-b` + `c`: once joined as `a-b-c` both.
    s.call(prepare("a", "b-c", None)).await.expect("a/b-c");
    s.call(prepare("a-b", "c", None)).await.expect("a-b/c");
    assert_eq!(code(s.call(Stat(at("a", "c")))).await, Code::NotFound);
    assert_eq!(code(s.call(Stat(at("a-b", "b-c")))).await, Code::NotFound);
    assert_eq!(s.call(Stat(at("a", "b-c"))).await.expect("stat").labels["owner"], "a");
    assert_eq!(s.call(Stat(at("a-b", "c"))).await.expect("stat").labels["owner"], "a-b");

    // The same key in two namespaces: two snapshots, each seen only by its own.
    s.call(prepare("default", "base-a", None)).await.expect("prepare");
    s.call(commit("default", "base", "base-a")).await.expect("commit");
    s.call(prepare("other", "base", None)).await.expect("same key, other namespace");
    assert_eq!(s.call(Stat(at("other", "base"))).await.expect("stat").kind, Kind::Active);
    assert_eq!(s.call(Stat(at("default", "base"))).await.expect("stat").kind, Kind::Committed);

    // From `nosuch`, `default`'s snapshot is not there at all.
    for r in [
        code(s.call(Remove(at("nosuch", "base")))).await,
        code(s.call(Mounts(at("nosuch", "base")))).await,
        code(s.call(Stat(at("nosuch", "base")))).await,
        code(s.call(prepare("nosuch", "child", Some("base")))).await,
        code(s.call(commit("nosuch", "stolen", "base"))).await,
    ] {
        assert_eq!(r, Code::NotFound);
    }
    let upd = Update {
        snapshotter: "native".into(),
        key: "base".into(),
        labels: BTreeMap::new(),
        fieldpaths: vec![],
        namespace: "nosuch".into(),
    };
    assert_eq!(code(s.call(upd)).await, Code::NotFound);
    assert!(s.call(list("nosuch")).await.expect("ls").is_empty());
    let names = |v: Vec<berth_ipc::snapshot::Info>| v.into_iter().map(|i| i.name).collect::<Vec<_>>();
    assert_eq!(names(s.call(list("a")).await.expect("ls a")), ["b-c"]);
    assert_eq!(names(s.call(list("a-b")).await.expect("ls a-b")), ["c"]);
    // The error names the namespace and the key.
    let e = s.call(Remove(at("nosuch", "base"))).await.expect_err("rm");
    assert!(e.message.contains("nosuch/base"), "{e}");
    s.call(Stat(at("default", "base"))).await.expect("default's base survived");

    // Children are found in their own namespace only: `default`'s child keeps its base.
    s.call(prepare("default", "child", Some("base"))).await.expect("child");
    assert_eq!(s.call(Stat(at("default", "child"))).await.expect("child").parent.as_deref(), Some("base"));
    assert_eq!(code(s.call(Remove(at("default", "base")))).await, Code::FailedPrecondition);
    s.call(Remove(at("other", "base"))).await.expect("other's base has no children");

    // GC's view: everything, under index keys.
    let all = List { all_namespaces: true, ..list("") };
    let mut every = names(s.call(all).await.expect("ls all"));
    every.sort();
    assert_eq!(every, ["a-b/c", "a/b-c", "default/base", "default/child"]);
    // A namespace that is not an identifier is refused, naming it.
    let e = s.call(Stat(at("a/b", "c"))).await.expect_err("bad namespace");
    assert_eq!(e.code, Code::InvalidArgument);
    assert!(e.message.contains("a/b"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unpack_never_trusts_a_chain_another_namespace_committed() {
    let dir = tempfile::tempdir().expect("dir");
    let (_b, blobs) = common::blob_dir();
    let s = local(dir.path(), blobs.clone());
    let good = Layer::new().file("real", b"the image's file").tar();
    let diff_id = Digest::of(&good);
    let layer = Wire { digest: blobs.add(&good).expect("blob"), media_type: String::new(), diff_id };
    // A peer in `evil` commits a snapshot of its own making under the layer's chainID.
    s.call(prepare("evil", "forged-a", None)).await.expect("prepare");
    s.call(commit("evil", &diff_id.to_string(), "forged-a")).await.expect("forge the chain");
    let unpack = Unpack {
        snapshotter: "native".into(),
        layers: vec![layer],
        labels: BTreeMap::new(),
        namespace: "default".into(),
    };
    let u = s.call(unpack.clone()).await.expect("unpack");
    assert_eq!(u.extracted, 1, "default unpacked its own chain rather than trusting evil's");
    assert_eq!(u.chain_id, diff_id);
    let info = s.call(Stat(at("default", &diff_id.to_string()))).await.expect("default's chain");
    assert!(!info.labels.contains_key("owner"), "default's chain is not evil's: {info:?}");
    assert_eq!(s.call(unpack).await.expect("again").extracted, 0, "its own chain is reused");
}

#[test]
fn an_index_from_before_namespaces_becomes_defaults() {
    let dir = tempfile::tempdir().expect("dir");
    let backend_dir = dir.path().join("root/snapshots/native");
    std::fs::create_dir_all(backend_dir.join("snapshots/1/fs")).expect("dirs");
    std::fs::create_dir_all(backend_dir.join("snapshots/2/fs")).expect("dirs");
    let old = serde_json::json!({
        "next_id": 3,
        "snapshots": {
            "sha256:base": {"id": 1, "kind": "Committed", "parent": null, "labels": {}, "created_ms": 1, "updated_ms": 1},
            "berth-container-default-web": {"id": 2, "kind": "Active", "parent": "sha256:base", "labels": {}, "created_ms": 2, "updated_ms": 2},
        },
    });
    std::fs::write(backend_dir.join("index.json"), serde_json::to_vec(&old).expect("json")).expect("write");
    let (_b, blobs) = common::blob_dir();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().expect("rt");
    rt.block_on(async {
        let s = local(dir.path(), blobs);
        let child = s.call(Stat(at("default", "berth-container-default-web"))).await.expect("migrated");
        assert_eq!(child.parent.as_deref(), Some("sha256:base"));
        assert_eq!(s.call(Stat(at("default", "sha256:base"))).await.expect("base").kind, Kind::Committed);
        assert_eq!(code(s.call(Stat(at("other", "sha256:base")))).await, Code::NotFound);
        assert!(dir.path().join("root/snapshots/native/snapshots/2/fs").exists(), "dirs kept");
    });
    let saved: serde_json::Value =
        serde_json::from_slice(&std::fs::read(backend_dir.join("index.json")).expect("read")).expect("json");
    assert_eq!(saved["version"], 1);
    assert!(saved["snapshots"].get("default/sha256:base").is_some(), "{saved}");
}
