//! Pull and push against a real `docker-registry` on 127.0.0.1: a round trip between
//! namespaces with whiteouts and opaque directories, export and re-import, Basic auth, and
//! registries or images that lie (corrupted blob, lying config, no entry for the platform):
//! each a clear error and no image record.

use std::path::{Path, PathBuf};
use std::process::Command;

use berth_system_tests::Berth;
use berth_system_tests::dist::{
    LayoutImage, Registry, berth_err, berth_ok, busybox_rootfs, have, image_digest, layout_tar, sh,
};

/// Base layer: busybox, `data/{a,b}`, `opq/old`. Top layer: whiteout of `data/a`, `opq`
/// made opaque with `opq/new`, and a new marker.
fn layered(work: &Path) -> Vec<PathBuf> {
    let l1 = work.join("l1");
    busybox_rootfs(&l1, "base");
    for (p, c) in [("data/a", "a"), ("data/b", "b"), ("opq/old", "old")] {
        std::fs::create_dir_all(l1.join(p).parent().expect("parent")).expect("mkdir");
        std::fs::write(l1.join(p), c).expect("write");
    }
    let l2 = work.join("l2");
    for (p, c) in
        [("data/.wh.a", ""), ("opq/.wh..wh..opq", ""), ("opq/new", "new"), ("etc/berth-test", "top")]
    {
        std::fs::create_dir_all(l2.join(p).parent().expect("parent")).expect("mkdir");
        std::fs::write(l2.join(p), c).expect("write");
    }
    vec![l1, l2]
}

fn mounted_view(berth: &Berth, ns: &str, name: &str) -> Vec<(String, bool)> {
    let mnt = berth.dir.path().join(format!("mnt-{ns}"));
    std::fs::create_dir_all(&mnt).expect("mkdir");
    berth_ok(berth, &["-n", ns, "images", "mount", name, mnt.to_str().expect("utf8")]);
    let seen = ["data/a", "data/b", "opq/old", "opq/new", "bin/busybox"]
        .iter()
        .map(|p| (p.to_string(), mnt.join(p).exists()))
        .collect();
    let marker = std::fs::read_to_string(mnt.join("etc/berth-test")).unwrap_or_default();
    berth_ok(berth, &["-n", ns, "images", "unmount", mnt.to_str().expect("utf8")]);
    let mut out: Vec<(String, bool)> = seen;
    out.push((marker, true));
    out
}

#[test]
fn push_pull_round_trip() {
    let berth = Berth::start();
    let reg = Registry::start(None);
    let work = berth.dir.path();
    let name = format!("{}/test/img:v1", reg.addr);
    let archive = work.join("img.tar");
    layout_tar(
        work,
        &[LayoutImage { name: &name, layers: &layered(work), fake_diff_ids: None, index: None }],
        &archive,
    );
    berth_ok(&berth, &["images", "import", archive.to_str().expect("utf8")]);
    berth_ok(&berth, &["images", "push", &name]);
    // A second push finds every blob there.
    let again = berth.cli(&["images", "push", &name]);
    assert!(again.status.success());
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("exists"),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );

    berth_ok(&berth, &["-n", "other", "images", "pull", &name]);
    let want = image_digest(&berth, "default", &name).expect("pushed image");
    assert_eq!(image_digest(&berth, "other", &name), Some(want.clone()));
    let view = mounted_view(&berth, "other", &name);
    let expect: Vec<(String, bool)> = [
        ("data/a", false),
        ("data/b", true),
        ("opq/old", false),
        ("opq/new", true),
        ("bin/busybox", true),
        ("top", true),
    ]
    .iter()
    .map(|(p, e)| (p.to_string(), *e))
    .collect();
    assert_eq!(view, expect);
    let check = berth_ok(&berth, &["-n", "other", "images", "check"]);
    assert!(check.contains("\tcomplete\t") && check.contains("\tunpacked"), "{check}");

    // Export, re-import elsewhere: same digest; skopeo reads the export.
    let out = work.join("export.tar");
    berth_ok(&berth, &["-n", "other", "images", "export", out.to_str().expect("utf8"), &name]);
    berth_ok(&berth, &["-n", "third", "images", "import", out.to_str().expect("utf8")]);
    assert_eq!(image_digest(&berth, "third", &name), Some(want.clone()));
    if have("skopeo") {
        let raw =
            sh(Command::new("skopeo").args(["inspect", "--raw", &format!("oci-archive:{}", out.display())]));
        assert_eq!(berth_ipc::Digest::of(raw.as_bytes()).to_string(), want);
    }
}

#[test]
fn basic_auth() {
    let berth = Berth::start();
    let work = berth.dir.path();
    let htpasswd = work.join("htpasswd");
    std::fs::write(&htpasswd, "berth:$2b$04$M.IIIwCVWk81E4I4cPqI1ehFZ8pRURX.RSJZqe8S6LLh8.UvnfvAK\n")
        .expect("htpasswd");
    let reg = Registry::start(Some(&htpasswd));
    let name = format!("{}/auth/img:v1", reg.addr);
    let rootfs = work.join("rootfs");
    busybox_rootfs(&rootfs, "auth");
    let archive = work.join("img.tar");
    layout_tar(
        work,
        &[LayoutImage { name: &name, layers: &[rootfs], fake_diff_ids: None, index: None }],
        &archive,
    );
    berth_ok(&berth, &["images", "import", archive.to_str().expect("utf8")]);

    let e = berth_err(&berth, &["images", "push", &name]);
    assert!(e.contains("authentication required"), "{e}");
    berth_ok(&berth, &["images", "push", "--user", "berth:s3cret", &name]);
    let e = berth_err(&berth, &["-n", "pulled", "images", "pull", "--user", "berth:wrong", &name]);
    assert!(e.contains("credentials refused"), "{e}");
    assert_eq!(image_digest(&berth, "pulled", &name), None);
    berth_ok(&berth, &["-n", "pulled", "images", "pull", "--user", "berth:s3cret", &name]);
    assert!(image_digest(&berth, "pulled", &name).is_some());
}

#[test]
fn lying_images_and_registries() {
    let berth = Berth::start();
    let reg = Registry::start(None);
    let work = berth.dir.path();
    let rootfs = work.join("rootfs");
    busybox_rootfs(&rootfs, "lies");
    let layers = [rootfs];
    let bad_config = format!("{}/lies/config:v1", reg.addr);
    let no_platform = format!("{}/lies/platform:v1", reg.addr);
    let many = format!("{}/lies/many:v1", reg.addr);
    let corrupt = format!("{}/lies/corrupt:v1", reg.addr);
    let zero = format!("sha256:{}", "0".repeat(64));
    let images = [
        LayoutImage { name: &bad_config, layers: &layers, fake_diff_ids: Some(vec![zero]), index: None },
        LayoutImage {
            name: &no_platform,
            layers: &layers,
            fake_diff_ids: None,
            index: Some(("linux/s390x", 1)),
        },
        LayoutImage { name: &many, layers: &layers, fake_diff_ids: None, index: Some(("linux/s390x", 1000)) },
    ];
    // Import refuses each; nothing is named.
    for img in &images {
        let archive = work.join("one.tar");
        layout_tar(work, std::slice::from_ref(img), &archive);
        let e = berth_err(&berth, &["images", "import", archive.to_str().expect("utf8")]);
        assert!(e.contains("diff_id") || e.contains("platform") || e.contains("limit"), "{}: {e}", img.name);
        assert_eq!(image_digest(&berth, "default", img.name), None);
        // Stored without unpacking, it can be pushed, and a pull of it fails the same way
        // (the oversized index is refused even so).
        if img.name == many {
            berth_err(&berth, &["images", "import", "--no-unpack", archive.to_str().expect("utf8")]);
        } else {
            berth_ok(&berth, &["images", "import", "--no-unpack", archive.to_str().expect("utf8")]);
        }
    }
    berth_ok(&berth, &["images", "push", &bad_config]);
    let e = berth_err(&berth, &["-n", "p", "images", "pull", &bad_config]);
    assert!(e.contains("diff_id"), "{e}");
    berth_ok(&berth, &["images", "push", &no_platform]);
    let e = berth_err(&berth, &["-n", "p", "images", "pull", &no_platform]);
    assert!(e.contains("no manifest for platform"), "{e}");
    // Asked for that platform explicitly (and every platform), it is stored unpacked-less.
    berth_ok(
        &berth,
        &[
            "-n",
            "s390x",
            "images",
            "pull",
            "--platform",
            "linux/s390x",
            "--all-platforms",
            "--no-unpack",
            &no_platform,
        ],
    );
    assert!(image_digest(&berth, "s390x", &no_platform).is_some());
    let check = berth_ok(&berth, &["-n", "s390x", "images", "check", &no_platform]);
    assert!(check.contains("\tcomplete\t"), "{check}");

    // A registry whose stored blob no longer matches its digest.
    let archive = work.join("corrupt.tar");
    layout_tar(
        work,
        &[LayoutImage { name: &corrupt, layers: &layers, fake_diff_ids: None, index: None }],
        &archive,
    );
    berth_ok(&berth, &["images", "import", archive.to_str().expect("utf8")]);
    berth_ok(&berth, &["images", "push", &corrupt]);
    reg.corrupt_largest_blob();
    // A fresh berth, so the layer is not already in content.
    let fresh = Berth::start();
    let e = berth_err(&fresh, &["images", "pull", &corrupt]);
    assert!(e.contains("digest"), "{e}");
    assert_eq!(image_digest(&fresh, "default", &corrupt), None);
    berth_ok(&fresh, &["content", "check"]);
    for n in [&bad_config, &no_platform] {
        assert_eq!(image_digest(&berth, "p", n), None, "{n}");
    }
    for b in [&berth, &fresh] {
        berth_ok(b, &["gc"]);
        assert!(berth_ok(b, &["leases", "ls", "-q"]).trim().is_empty());
    }
}

/// A registry that answers every manifest request with `body_len` bytes of JSON-ish junk.
fn hostile_registry(body_len: usize) -> (String, std::thread::JoinHandle<()>) {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    let handle = std::thread::spawn(move || {
        for _ in 0..4 {
            let Ok((stream, _)) = listener.accept() else { return };
            let mut reader = BufReader::new(stream.try_clone().expect("clone"));
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                line.clear();
            }
            let mut s = stream;
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/vnd.oci.image.manifest.v1+json\r\nContent-Length: {body_len}\r\nConnection: close\r\n\r\n"
            );
            let _ = s.write_all(head.as_bytes());
            let _ = s.write_all(&vec![b' '; body_len]);
        }
    });
    (addr, handle)
}

#[test]
fn oversized_manifest_is_refused() {
    let berth = Berth::start();
    let (addr, _server) = hostile_registry(5 << 20);
    let name = format!("{addr}/huge/img:v1");
    let e = berth_err(&berth, &["images", "pull", &name]);
    assert!(e.contains("bound"), "{e}");
    assert_eq!(image_digest(&berth, "default", &name), None);
    berth_ok(&berth, &["gc"]);
    assert!(berth_ok(&berth, &["leases", "ls", "-q"]).trim().is_empty());
}
