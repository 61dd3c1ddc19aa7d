//! The runtime picks the manifest of an index that pull and import unpacked: one platform
//! choice (`berth_oci::resolve::choose`) for both. Before, the runtime preferred an entry
//! naming the host's architecture over an earlier entry naming no platform (and ignored
//! variants), so a container of such an image got a parent snapshot nobody had unpacked.

mod runtime_support;

use berth_ipc::Digest;
use berth_system_tests::Berth;
use berth_system_tests::hostile::{RawImage, RawTar};
use runtime_support::{busybox_tar, can_run, out, show, teardown};
use serde_json::json;

fn marked(marker: &str) -> RawImage {
    let layer = RawTar::new().file("marker", marker.as_bytes()).finish();
    RawImage::new(vec![busybox_tar(), layer], json!({"Cmd": ["cat", "/marker"]}), json!({}))
}

fn entry(img: &RawImage, platform: Option<serde_json::Value>) -> serde_json::Value {
    let mut d = json!({
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": img.digest().to_string(), "size": img.manifest.len(),
    });
    if let Some(p) = platform {
        d["platform"] = p;
    }
    d
}

#[test]
fn a_container_runs_the_platform_its_image_was_unpacked_for() {
    if !can_run("runc") {
        return;
    }
    let berth = Berth::start();
    let host = berth_client::oci::Platform::host();
    // First an entry naming no platform (chosen by import), then one naming the host's.
    let (a, b) = (marked("A"), marked("B"));
    let inner =
        json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": [
            entry(&a, None),
            entry(&b, Some(json!({"os": host.os, "architecture": host.architecture}))),
        ]})
        .to_string()
        .into_bytes();
    let name = "docker.io/test/platforms:v1";
    let outer = json!({"schemaVersion": 2, "manifests": [{
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "digest": Digest::of(&inner).to_string(), "size": inner.len(),
        "annotations": {"io.containerd.image.name": name},
    }]});
    let mut t = RawTar::new().file("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#);
    t = t.file("index.json", outer.to_string().as_bytes());
    t = t.file(&format!("blobs/sha256/{}", Digest::of(&inner).hex()), &inner);
    for (d, bytes) in a.blobs().into_iter().chain(b.blobs()) {
        t = t.file(&format!("blobs/sha256/{}", d.hex()), &bytes);
    }
    let archive = berth.dir.path().join("platforms.tar");
    std::fs::write(&archive, t.finish()).expect("write archive");
    let o = berth.cli(&["images", "import", archive.to_str().expect("utf8")]);
    assert!(o.status.success(), "{}", show(&o));
    let o = berth.cli(&["run", "--rm", name, "which"]);
    assert!(o.status.success(), "{}", show(&o));
    assert_eq!(out(&o).trim(), "A", "{}", show(&o));
    teardown(&berth);
}
