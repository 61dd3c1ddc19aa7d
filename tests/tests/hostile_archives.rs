//! Archives that lie, for `berth images import`: members whose names leave the archive,
//! oversized `index.json`/`manifest.json`/manifests, missing blobs, index "loops" (a blob
//! claiming a digest it does not have) and an index fan-out that would explode a naive walk,
//! duplicate members and entries. Each ends in bounded time with an error naming the object,
//! no image record, and a clean store.

use std::path::Path;
use std::time::Duration;

use berth_ipc::Digest;
use berth_system_tests::Berth;
use berth_system_tests::dist::{berth_err, berth_ok, image_digest};
use berth_system_tests::hostile::{RawImage, RawTar, assert_clean, berth_bounded};
use serde_json::json;

const NAME: &str = "docker.io/hostile/archive:v1";

fn image() -> RawImage {
    image_marked("")
}

/// An image with blobs of its own (content is shared: a blob another case stored would
/// stand in for one an archive lacks).
fn image_marked(mark: &str) -> RawImage {
    RawImage::layer(
        RawTar::new().dir("etc").file("etc/hello", b"hello").file("etc/mark", mark.as_bytes()).finish(),
    )
}

fn import_err(berth: &Berth, ns: &str, archive: &Path, extra: &[&str]) -> String {
    let mut args = vec!["-n", ns, "images", "import"];
    args.extend_from_slice(extra);
    let a = archive.to_str().expect("utf8");
    args.push(a);
    berth_err(berth, &args)
}

/// A layout tar from raw members: (name, bytes).
fn members(out: &Path, files: &[(String, Vec<u8>)]) {
    let mut t = RawTar::new();
    for (n, b) in files {
        t = t.file(n, b);
    }
    std::fs::write(out, t.finish()).expect("write");
}

fn index_json(entries: &[(Digest, usize, &str)]) -> Vec<u8> {
    let m: Vec<_> = entries
        .iter()
        .map(|(d, size, mt)| {
            json!({"mediaType": mt, "digest": d.to_string(), "size": size,
                   "annotations": {"io.containerd.image.name": NAME}})
        })
        .collect();
    json!({"schemaVersion": 2, "manifests": m}).to_string().into_bytes()
}

fn blob_member(data: &[u8]) -> (String, Vec<u8>) {
    (format!("blobs/sha256/{}", Digest::of(data).hex()), data.to_vec())
}

const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const INDEX: &str = "application/vnd.oci.image.index.v1+json";

#[test]
fn traversal_in_member_names_is_refused() {
    let berth = Berth::start();
    let work = berth.dir.path();
    let img = image();
    let stamp = format!("berth-hostile-{}", std::process::id());
    for (n, evil) in [format!("../../../../tmp/{stamp}"), format!("blobs/sha256/../../../../../tmp/{stamp}")]
        .iter()
        .enumerate()
    {
        let archive = work.join(format!("trav{n}.tar"));
        img.layout_tar(NAME, &[(evil.as_str(), b"pwned")], &archive);
        let ns = format!("trav{n}");
        let e = import_err(&berth, &ns, &archive, &[]);
        assert!(e.contains("leaves the archive") && e.contains(&stamp), "{e}");
        assert!(!Path::new("/tmp").join(&stamp).exists(), "written outside");
        assert_clean(&berth, &ns, NAME, &img.layers);
    }
    // A docker-archive naming host paths for its config and layers.
    let archive = work.join("docker-trav.tar");
    let entry = json!([{"Config": "../../../etc/passwd", "RepoTags": [NAME], "Layers": ["/etc/passwd"]}]);
    members(&archive, &[("manifest.json".into(), entry.to_string().into_bytes())]);
    let e = import_err(&berth, "dtrav", &archive, &[]);
    assert!(e.contains("etc/passwd") && e.contains("not in the archive"), "{e}");
    assert_clean(&berth, "dtrav", NAME, &[]);
    // A blob that is a symlink to a host file: the host file is never read as the blob.
    let img = image_marked("link");
    let archive = work.join("link.tar");
    let layer = Digest::of(&img.layers[0]);
    let mut t = RawTar::new().file("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#);
    t = t.file("index.json", &index_json(&[(img.digest(), img.manifest.len(), MANIFEST)]));
    for (d, b) in img.blobs().into_iter().filter(|(d, _)| *d != layer) {
        t = t.file(&format!("blobs/sha256/{}", d.hex()), &b);
    }
    t = t.symlink(&format!("blobs/sha256/{}", layer.hex()), "/etc/passwd");
    std::fs::write(&archive, t.finish()).expect("write");
    let e = import_err(&berth, "link", &archive, &[]);
    assert!(e.contains(&layer.to_string()), "{e}");
    assert_clean(&berth, "link", NAME, &img.layers);
}

#[test]
fn oversized_json_is_refused() {
    let berth = Berth::start();
    let work = berth.dir.path();
    let huge = vec![b' '; 5 << 20];
    // index.json and manifest.json over the bound.
    for (n, member) in ["index.json", "manifest.json"].iter().enumerate() {
        let archive = work.join(format!("huge{n}.tar"));
        members(&archive, &[(member.to_string(), huge.clone())]);
        let ns = format!("huge{n}");
        let e = import_err(&berth, &ns, &archive, &[]);
        assert!(e.contains(member) && e.contains("bound"), "{e}");
        assert_clean(&berth, &ns, NAME, &[]);
    }
    // A docker-archive manifest.json within the bound but naming thousands of images.
    let archive = work.join("many.tar");
    let one = json!({"Config": "c.json", "RepoTags": ["x:1"], "Layers": []});
    let many = serde_json::Value::Array(vec![one; 5000]);
    members(&archive, &[("manifest.json".into(), many.to_string().into_bytes())]);
    let e = import_err(&berth, "many", &archive, &[]);
    assert!(e.contains("manifest.json") && e.contains("over the limit"), "{e}");
    assert_clean(&berth, "many", NAME, &[]);
    // A "manifest" blob over the bound, named by a small index.json.
    let mut big = json!({"schemaVersion": 2, "mediaType": MANIFEST, "config": {}, "layers": []}).to_string();
    big.push_str(&" ".repeat(5 << 20));
    let archive = work.join("huge-manifest.tar");
    let d = Digest::of(big.as_bytes());
    members(
        &archive,
        &[("index.json".into(), index_json(&[(d, big.len(), MANIFEST)])), blob_member(big.as_bytes())],
    );
    for (ns, extra) in [("hugem", vec![]), ("hugem-nounpack", vec!["--no-unpack"])] {
        let e = import_err(&berth, ns, &archive, &extra);
        assert!(e.contains(&d.to_string()) && e.contains("bound"), "{ns}: {e}");
        assert_clean(&berth, ns, NAME, &[]);
    }
}

#[test]
fn missing_blobs_are_named() {
    let berth = Berth::start();
    let work = berth.dir.path();
    for n in 0..3 {
        let img = image_marked(&format!("missing{n}"));
        let index = index_json(&[(img.digest(), img.manifest.len(), MANIFEST)]);
        let (missing, data) = img.blobs().swap_remove(n);
        let mut files = vec![("index.json".to_string(), index.clone())];
        files.extend(img.blobs().iter().filter(|(d, _)| *d != missing).map(|(_, b)| blob_member(b)));
        let archive = work.join(format!("missing{n}.tar"));
        members(&archive, &files);
        let ns = format!("missing{n}");
        let e = import_err(&berth, &ns, &archive, &[]);
        assert!(e.contains(&missing.to_string()), "{missing} ({} bytes): {e}", data.len());
        assert_clean(&berth, &ns, NAME, &img.layers);
    }
}

#[test]
fn index_loops_and_fan_out_end() {
    let berth = Berth::start();
    let work = berth.dir.path();
    let img = image();
    // An index that lists itself, or two that list each other: content addressing makes at
    // least one of them lie about its digest, and the lie is caught on the way in.
    let fake = Digest::of(b"the index's claimed digest");
    let self_loop = json!({"schemaVersion": 2, "mediaType": INDEX,
        "manifests": [{"mediaType": INDEX, "digest": fake.to_string(), "size": 100}]})
    .to_string();
    let archive = work.join("loop.tar");
    members(
        &archive,
        &[
            ("index.json".into(), index_json(&[(fake, self_loop.len(), INDEX)])),
            (format!("blobs/sha256/{}", fake.hex()), self_loop.into_bytes()),
        ],
    );
    for (ns, extra) in [("loop", vec![]), ("loop-nounpack", vec!["--no-unpack"])] {
        let e = import_err(&berth, ns, &archive, &extra);
        assert!(e.contains(&fake.hex()[..12]), "{ns}: {e}");
        assert_clean(&berth, ns, NAME, &img.layers);
    }
    // A real fan-out: four levels of indexes, each listing the next 200 times (1.6e9 paths
    // to a naive walk), then the image. Unpacking refuses nested indexes; recording them
    // (--no-unpack) visits each blob once.
    let mut files: Vec<(String, Vec<u8>)> = img.blobs().iter().map(|(_, b)| blob_member(b)).collect();
    let (mut child, mut size, mut mt) = (img.digest(), img.manifest.len(), MANIFEST);
    for level in 0..4 {
        let entry = json!({"mediaType": mt, "digest": child.to_string(), "size": size,
                           "platform": {"os": "linux", "architecture": std::env::consts::ARCH}});
        let idx = json!({"schemaVersion": 2, "mediaType": INDEX, "manifests": vec![entry; 200],
                         "annotations": {"level": level.to_string()}})
        .to_string()
        .into_bytes();
        (child, size, mt) = (Digest::of(&idx), idx.len(), INDEX);
        files.push(blob_member(&idx));
    }
    files.push(("index.json".into(), index_json(&[(child, size, INDEX)])));
    let archive = work.join("fanout.tar");
    members(&archive, &files);
    let a = archive.to_str().expect("utf8");
    let (ok, e) = berth_bounded(&berth, &["-n", "fan", "images", "import", a], Duration::from_secs(60));
    assert!(!ok && e.contains("index"), "{e}");
    assert_clean(&berth, "fan", NAME, &img.layers);
    let (ok, e) =
        berth_bounded(&berth, &["-n", "fan2", "images", "import", "--no-unpack", a], Duration::from_secs(60));
    assert!(ok, "{e}");
    assert!(image_digest(&berth, "fan2", NAME).is_some());
}

#[test]
fn duplicates_are_refused_or_harmless() {
    let berth = Berth::start();
    let work = berth.dir.path();
    let img = image();
    let other = RawImage::layer(RawTar::new().file("other", b"other").finish());
    let index = index_json(&[(img.digest(), img.manifest.len(), MANIFEST)]);
    let index2 = index_json(&[(other.digest(), other.manifest.len(), MANIFEST)]);
    let mut blobs: Vec<(String, Vec<u8>)> = img.blobs().iter().map(|(_, b)| blob_member(b)).collect();
    blobs.extend(other.blobs().iter().map(|(_, b)| blob_member(b)));
    // Two index.json members: which one is meant is ambiguous.
    let archive = work.join("two-index.tar");
    let mut files = vec![("index.json".to_string(), index.clone()), ("index.json".to_string(), index2)];
    files.extend(blobs.clone());
    members(&archive, &files);
    let e = import_err(&berth, "dup1", &archive, &[]);
    assert!(e.contains("index.json appears twice"), "{e}");
    assert_clean(&berth, "dup1", NAME, &img.layers);
    // One name for two different images.
    let both = json!({"schemaVersion": 2, "manifests": [
        {"mediaType": MANIFEST, "digest": img.digest().to_string(), "size": img.manifest.len(),
         "annotations": {"io.containerd.image.name": NAME}},
        {"mediaType": MANIFEST, "digest": other.digest().to_string(), "size": other.manifest.len(),
         "annotations": {"io.containerd.image.name": NAME}}]});
    let archive = work.join("two-names.tar");
    let mut files = vec![("index.json".to_string(), both.to_string().into_bytes())];
    files.extend(blobs.clone());
    members(&archive, &files);
    let e = import_err(&berth, "dup2", &archive, &[]);
    assert!(e.contains("names both"), "{e}");
    assert_clean(&berth, "dup2", NAME, &img.layers);
    // A blob member twice, the second copy corrupt: the verified first copy stands.
    let archive = work.join("dup-blob.tar");
    let layer = Digest::of(&img.layers[0]);
    let mut files = vec![("index.json".to_string(), index)];
    files.extend(blobs);
    files.push((format!("blobs/sha256/{}", layer.hex()), b"corrupt".to_vec()));
    members(&archive, &files);
    berth_ok(&berth, &["-n", "dup3", "images", "import", archive.to_str().expect("utf8")]);
    let check = berth_ok(&berth, &["-n", "dup3", "images", "check"]);
    assert!(check.contains("\tcomplete\t"), "{check}");
    berth_ok(&berth, &["content", "check"]);
}
