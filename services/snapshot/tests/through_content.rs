//! The production path: layers read from a real content service (the blob's fd passed over
//! `content-fd.sock` with SCM_RIGHTS), and diffs written back into it through ingests.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use berth_ipc::content::Content;
use berth_ipc::content::proxy::ContentClient;
use berth_ipc::content::store::{ContentStore, ContentWriter};
use berth_ipc::digest::Digest;
use berth_ipc::snapshot::{Apply, Diff, KeyRef, Mounts, Prepare};
use berth_ipc::{Client, ClientOptions, Code};
use berth_service_kit::ServiceEnv;
use common::Layer;
use tokio_util::sync::CancellationToken;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_reads_blob_fds_from_content_and_diff_writes_back() {
    let dir = tempfile::tempdir().expect("dir");
    let config = common::service::config(dir.path());
    std::fs::create_dir_all(&config.state).expect("state");
    let listener = berth_ipc::socket::bind(&config.socket("content"), None).expect("bind content");
    let stop_content = CancellationToken::new();
    let content_task = tokio::spawn(berth_content::run(
        ServiceEnv::new("content", config.clone()),
        listener,
        stop_content.clone(),
    ));
    let options = ClientOptions { deadline: Duration::from_secs(5), client_name: "test".into() };
    let content = ContentClient::new(Client::<Content>::in_state_dir(&config.state, options));
    content.client().health().await.expect("content up");

    let tar = Layer::new().dir("srv").file("srv/index.html", b"hello").tar();
    let blob = common::gzip(&tar);
    let digest = Digest::of(&blob);
    let mut w = content.writer("layer-1", Some(digest), Some(blob.len() as u64)).await.expect("writer");
    w.write_at(0, blob.clone()).await.expect("write");
    w.commit(Some(blob.len() as u64), Some(digest)).await.expect("commit");

    let snap = common::service::start(dir.path(), None).await;
    let s = &snap.client;
    s.call(Prepare {
        namespace: "default".into(),
        snapshotter: String::new(),
        key: "k".into(),
        parent: None,
        labels: BTreeMap::new(),
    })
    .await
    .expect("prepare");
    let applied = s
        .call(Apply {
            namespace: "default".into(),
            snapshotter: String::new(),
            key: "k".into(),
            digest,
            media_type: String::new(),
        })
        .await
        .expect("apply through content");
    assert_eq!(applied.diff_id, Digest::of(&tar));
    let missing = Apply {
        namespace: "default".into(),
        snapshotter: String::new(),
        key: "k".into(),
        digest: Digest::of(b"absent"),
        media_type: String::new(),
    };
    assert_eq!(s.call(missing).await.expect_err("absent blob").code, Code::NotFound);
    let m = s
        .call(Mounts(KeyRef { namespace: "default".into(), snapshotter: String::new(), key: "k".into() }))
        .await
        .expect("mounts");
    assert_eq!(
        std::fs::read(std::path::Path::new(&m[0].source).join("srv/index.html")).expect("file"),
        b"hello"
    );

    let d = s
        .call(Diff {
            namespace: "default".into(),
            snapshotter: String::new(),
            lower: None,
            upper: "k".into(),
            labels: BTreeMap::new(),
        })
        .await
        .expect("diff into content");
    let info = content.info(&d.digest).await.expect("diff blob in content");
    assert_eq!(info.size, d.size);
    let again = s
        .call(Diff {
            namespace: "default".into(),
            snapshotter: String::new(),
            lower: None,
            upper: "k".into(),
            labels: BTreeMap::new(),
        })
        .await;
    assert_eq!(
        again.expect("same diff again").digest,
        d.digest,
        "diffs are reproducible and re-writes succeed"
    );

    snap.stop().await;
    stop_content.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(10), content_task).await;
}
