//! The conformance suite against the local store and through the socket client.

mod common;

use berth_content::Store;
use berth_content::local::LocalStore;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_store_conforms() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(&dir.path().join("content")).expect("open");
    let blobs = dir.path().join("content/blobs/sha256");
    common::suite::run_all(&LocalStore::new(store), &blobs).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn socket_client_conforms() {
    let svc = common::start().await;
    common::suite::run_all(&svc.client, &svc.blobs()).await;
    svc.stop().await;
}
