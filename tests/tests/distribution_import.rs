//! `berth images import`: a rootfs tarball (plain and gzip), an OCI layout tar made by
//! umoci, and skopeo's oci-archive and docker-archive of the same image; each image is
//! recorded, unpacked, survives garbage collection, mounts read-only with the expected files,
//! and its blobs go away with `images rm --sync`.

use std::process::Command;

use berth_system_tests::Berth;
use berth_system_tests::dist::{busybox_rootfs, have, sh, tar_dir, umoci_image};

fn ok(berth: &Berth, args: &[&str]) -> String {
    let out = berth.cli(args);
    assert!(
        out.status.success(),
        "berth {args:?}: {}{}\nlog:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        berth.log()
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Mounts `name`, checks the marker file and busybox, unmounts.
fn check_mount(berth: &Berth, name: &str, marker: &str) {
    let mnt = berth.dir.path().join(format!("mnt-{}", name.replace(['/', ':'], "_")));
    std::fs::create_dir_all(&mnt).expect("mkdir");
    ok(berth, &["images", "mount", name, mnt.to_str().expect("utf8")]);
    let seen = std::fs::read_to_string(mnt.join("etc/berth-test"));
    let busybox = mnt.join("bin/busybox").exists();
    let writable = std::fs::write(mnt.join("x"), b"x").is_ok();
    ok(berth, &["images", "unmount", mnt.to_str().expect("utf8")]);
    assert_eq!(seen.expect("marker in the mounted rootfs"), marker);
    assert!(busybox, "bin/busybox missing in {name}");
    assert!(!writable, "the mount of {name} is writable");
    assert!(!mnt.join("etc").exists(), "still mounted after unmount");
}

/// How many items `berth --format json ARGS` lists.
fn count(berth: &Berth, args: &[&str]) -> usize {
    let mut all = vec!["--format", "json"];
    all.extend_from_slice(args);
    let out = ok(berth, &all);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{out}: {e}"));
    v.as_array().map_or(0, Vec::len)
}

fn image_digest(berth: &Berth, name: &str) -> String {
    let out = ok(berth, &["--format", "json", "images", "ls"]);
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    v.as_array()
        .expect("array")
        .iter()
        .find(|i| i["name"] == name)
        .unwrap_or_else(|| panic!("no image {name} in {out}"))["digest"]
        .as_str()
        .expect("digest")
        .to_string()
}

#[test]
fn import_rootfs_tarballs() {
    let berth = Berth::start();
    let tmp = berth.dir.path();
    let rootfs = tmp.join("rootfs");
    busybox_rootfs(&rootfs, "plain");
    tar_dir(&rootfs, &tmp.join("rootfs.tar"), false);
    tar_dir(&rootfs, &tmp.join("rootfs.tar.gz"), true);

    let out = ok(
        &berth,
        &["images", "import", "--rootfs", tmp.join("rootfs.tar").to_str().expect("utf8"), "busybox"],
    );
    assert!(out.starts_with("docker.io/library/busybox:latest sha256:"), "{out}");
    ok(&berth, &["images", "import", "--rootfs", tmp.join("rootfs.tar.gz").to_str().expect("utf8"), "bb:gz"]);
    // Same tarball twice: same digest (no timestamps in the config).
    let first = image_digest(&berth, "docker.io/library/busybox:latest");
    ok(&berth, &["images", "import", "--rootfs", tmp.join("rootfs.tar").to_str().expect("utf8"), "again"]);
    assert_eq!(first, image_digest(&berth, "docker.io/library/again:latest"));

    // GC keeps everything an image references; the lease is gone.
    ok(&berth, &["gc"]);
    check_mount(&berth, "busybox", "plain");
    check_mount(&berth, "docker.io/library/bb:gz", "plain");
    let leases = ok(&berth, &["leases", "ls", "-q"]);
    assert!(leases.trim().is_empty(), "leases left: {leases}");
    ok(&berth, &["content", "check"]);

    // Removing every image frees content and snapshots.
    for n in ["busybox", "bb:gz", "again"] {
        ok(
            &berth,
            &[
                "images",
                "rm",
                "--sync",
                &format!("docker.io/library/{n}{}", if n.contains(':') { "" } else { ":latest" }),
            ],
        );
    }
    ok(&berth, &["gc"]);
    assert_eq!(count(&berth, &["content", "ls"]), 0, "blobs left");
    // Snapshots are freed once the metadata GC has a snapshot backend (it has content only).
}

#[test]
fn import_oci_and_docker_archives() {
    for tool in ["umoci", "skopeo"] {
        if !have(tool) {
            eprintln!("skipping: {tool} is not installed");
            return;
        }
    }
    let berth = Berth::start();
    let tmp = berth.dir.path();
    let rootfs = tmp.join("rootfs");
    busybox_rootfs(&rootfs, "umoci");
    let layout = tmp.join("layout");
    umoci_image(&rootfs, &layout, "v1", tmp);

    // The layout itself, tarred (ref.name is a bare tag: a name must be given).
    let layout_tar = tmp.join("layout.tar");
    tar_dir(&layout, &layout_tar, false);
    let out = berth.cli(&["images", "import", layout_tar.to_str().expect("utf8")]);
    assert!(!out.status.success(), "a bare tag should need --name");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("name"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    ok(&berth, &["images", "import", "--name", "umoci/bb:v1", layout_tar.to_str().expect("utf8")]);

    // skopeo's oci-archive and docker-archive of the same image.
    let src = format!("oci:{}:v1", layout.display());
    let oci = tmp.join("oci.tar");
    let docker = tmp.join("docker.tar");
    sh(Command::new("skopeo").args([
        "copy",
        &src,
        &format!("oci-archive:{}:example.com/bb:oci", oci.display()),
    ]));
    sh(Command::new("skopeo").args([
        "copy",
        &src,
        &format!("docker-archive:{}:example.com/bb:docker", docker.display()),
    ]));
    ok(&berth, &["images", "import", oci.to_str().expect("utf8")]);
    ok(&berth, &["images", "import", docker.to_str().expect("utf8")]);

    let raw = sh(Command::new("skopeo").args(["inspect", "--raw", &src]));
    let want = berth_ipc::Digest::of(raw.as_bytes()).to_string();
    assert_eq!(image_digest(&berth, "docker.io/umoci/bb:v1"), want);
    assert_eq!(image_digest(&berth, "example.com/bb:oci"), want);
    // The docker-archive's manifest is rewritten as Docker schema 2, the layers are the same.
    assert_eq!(count(&berth, &["snapshots", "ls"]), 1, "one shared layer expected");

    ok(&berth, &["gc"]);
    for name in ["docker.io/umoci/bb:v1", "example.com/bb:oci", "example.com/bb:docker"] {
        check_mount(&berth, name, "umoci");
    }
    // Re-importing is idempotent.
    ok(&berth, &["images", "import", oci.to_str().expect("utf8")]);
    assert_eq!(image_digest(&berth, "example.com/bb:oci"), want);
}

/// skopeo and umoci name an image in `index.json` by a bare tag (`ref.name: tiny`): imported
/// under `--base-name`, every image of a multi-image archive, as `ctr images import` does.
#[test]
fn bare_tags_import_under_a_base_name() {
    for tool in ["umoci", "skopeo"] {
        if !have(tool) {
            eprintln!("skipping: {tool} is not installed");
            return;
        }
    }
    let berth = Berth::start();
    let tmp = berth.dir.path();
    let rootfs = tmp.join("rootfs");
    busybox_rootfs(&rootfs, "bare");
    let layout = tmp.join("layout");
    umoci_image(&rootfs, &layout, "v1", tmp);
    sh(Command::new("umoci").args(["tag", "--image", &format!("{}:v1", layout.display()), "v2"]));

    // skopeo's oci-archive with a bare tag.
    let tiny = tmp.join("tiny.tar");
    let src = format!("oci:{}:v1", layout.display());
    sh(Command::new("skopeo").args(["copy", &src, &format!("oci-archive:{}:tiny", tiny.display())]));
    let out = berth.cli(&["images", "import", tiny.to_str().expect("utf8")]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "a bare tag without --base-name was imported");
    assert!(stderr.contains("\"tiny\"") && stderr.contains("--base-name"), "{stderr}");
    ok(&berth, &["images", "import", "--base-name", "example.com/skopeo", tiny.to_str().expect("utf8")]);

    // umoci's layout with two tags: both images.
    let two = tmp.join("two.tar");
    tar_dir(&layout, &two, false);
    let out =
        ok(&berth, &["images", "import", "--base-name", "example.com/umoci", two.to_str().expect("utf8")]);
    println!("{out}");

    let raw = sh(Command::new("skopeo").args(["inspect", "--raw", &src]));
    let want = berth_ipc::Digest::of(raw.as_bytes()).to_string();
    for name in ["example.com/skopeo:tiny", "example.com/umoci:v1", "example.com/umoci:v2"] {
        assert_eq!(image_digest(&berth, name), want, "{name}");
    }
    check_mount(&berth, "example.com/skopeo:tiny", "bare");
    // A bad base name is an error naming it.
    let out = berth.cli(&["images", "import", "--base-name", "Bad Name", tiny.to_str().expect("utf8")]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && stderr.contains("Bad Name"), "{stderr}");
}
