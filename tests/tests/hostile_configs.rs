//! Image configs that lie or aim outside: a `User` that is not user[:group] or wraps
//! (`0:0:0`, `-1`, `4294967296`, a 1000-byte name), a `WorkingDir` or `Volumes` entry that
//! climbs out with `..`, refused at import and pull with an error naming the config; a
//! `WorkingDir` through a symlink into `/proc` and an unknown user, refused when a container
//! is made; and labels in berth's own label space (`containerd.io/gc.*`, `berth.io/*`), which
//! an image config never carries into any record, and neither `--label` nor `images label`
//! or `containers label` can set.

mod runtime_support;

use std::sync::Arc;

use berth_ipc::Digest;
use berth_system_tests::Berth;
use berth_system_tests::dist::{berth_err, berth_ok, image_digest};
use berth_system_tests::hostile::{FakeRegistry, RawImage, Reply, Seen, assert_clean, serve_image};
use runtime_support::{busybox_tar, can_run, show};
use serde_json::{Value, json};

fn image(exec: Value, extra: Value) -> RawImage {
    RawImage::new(vec![busybox_tar()], exec, extra)
}

fn import(berth: &Berth, ns: &str, name: &str, img: &RawImage) -> std::process::Output {
    let archive = berth.dir.path().join(format!("{ns}.tar"));
    img.layout_tar(name, &[], &archive);
    berth.cli(&["-n", ns, "images", "import", archive.to_str().expect("utf8")])
}

#[test]
fn hostile_exec_configs_are_refused_on_the_way_in() {
    let berth = Berth::start();
    let long = "u".repeat(1000);
    let cases: Vec<(&str, Value, &str)> = vec![
        ("user3", json!({"User": "0:0:0", "Cmd": ["sh"]}), "User"),
        ("userneg", json!({"User": "-1", "Cmd": ["sh"]}), "User"),
        ("userwrap", json!({"User": "4294967296", "Cmd": ["sh"]}), "User"),
        ("userlong", json!({"User": long, "Cmd": ["sh"]}), "User"),
        ("wdup", json!({"WorkingDir": "/../../../etc", "Cmd": ["sh"]}), "WorkingDir"),
        ("vol", json!({"Volumes": {"/data": {}, "/../../host": {}}, "Cmd": ["sh"]}), "volume"),
    ];
    for (ns, exec, field) in cases {
        let img = image(exec, json!({}));
        let config = Digest::of(&img.config).to_string();
        let name = format!("docker.io/hostile/{ns}:v1");
        let o = import(&berth, ns, &name, &img);
        let e = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "{ns}: imported");
        assert!(e.contains(field) && e.contains(&config), "{ns}: {e}");
        assert_clean(&berth, ns, &name, &img.layers);
    }
    // The same through a pull.
    let img = Arc::new(image(json!({"User": "0:0:0", "Cmd": ["sh"]}), json!({"marker": "pull"})));
    let i = img.clone();
    let reg = FakeRegistry::start(move |r: &Seen| serve_image(&i, r).unwrap_or(Reply::status(404, None)));
    let name = format!("{}/hostile/user:v1", reg.addr);
    let e = berth_err(&berth, &["-n", "pulled", "images", "pull", &name]);
    assert!(e.contains("User") && e.contains(&Digest::of(&img.config).to_string()), "{e}");
    assert_clean(&berth, "pulled", &name, &img.layers);
}

#[test]
fn hostile_paths_and_users_are_refused_at_run() {
    if !can_run("runc") {
        return;
    }
    let berth = Berth::start();
    // busybox_tar has /leak -> /proc/self/fd/3 and /escape -> ../../../../etc: each refused
    // when the container is made, and nothing of it is left.
    let cases = [
        ("leak", json!({"WorkingDir": "/leak", "Cmd": ["pwd"]}), "/proc"),
        ("escape", json!({"WorkingDir": "/escape", "Cmd": ["pwd"]}), "escapes the rootfs"),
        ("nouser", json!({"User": "nosuchuser", "Cmd": ["id"]}), "nosuchuser"),
    ];
    for (id, exec, want) in cases {
        let name = format!("docker.io/hostile/{id}:v1");
        let img = image(exec, json!({}));
        let o = import(&berth, "default", &name, &img);
        assert!(o.status.success(), "{}", show(&o));
        let o = berth.cli(&["run", "--rm", &name, id]);
        let e = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "{id}: ran: {}", show(&o));
        assert!(e.contains(want), "{id}: {e}");
        let list = berth_ok(&berth, &["--format", "json", "containers", "ls"]);
        assert_eq!(list.trim(), "[]", "{id}: container record left");
    }
    berth_ok(&berth, &["gc"]);
    assert!(berth_ok(&berth, &["leases", "ls", "-q"]).trim().is_empty());
}

#[test]
fn reserved_labels_never_land() {
    if !can_run("runc") {
        return;
    }
    let berth = Berth::start();
    let labels = json!({
        "containerd.io/gc.root": "x",
        "containerd.io/gc.ref.content.l.9": format!("sha256:{}", "1".repeat(64)),
        "containerd.io/gc.ref.snapshot.overlayfs": "someone-elses-snapshot",
        "berth.io/unpack": "x",
    });
    let img = image(json!({"Cmd": ["true"], "Labels": labels}), json!({}));
    let name = "docker.io/hostile/labels:v1";
    let o = import(&berth, "default", name, &img);
    assert!(o.status.success(), "{}", show(&o));
    assert!(image_digest(&berth, "default", name).is_some());
    let o = berth.cli(&["run", "--rm", name, "labelled"]);
    assert!(o.status.success(), "{}", show(&o));
    let images = berth_ok(&berth, &["--format", "json", "images", "ls"]);
    assert!(!images.contains("gc.root") && !images.contains("berth.io/"), "{images}");
    let o = berth.cli(&["run", "-d", name, "keep", "sleep", "60"]);
    println!("{}", show(&o));
    let containers = berth_ok(&berth, &["--format", "json", "containers", "ls"]);
    assert!(!containers.contains("gc.") && !containers.contains("berth.io/"), "{containers}");
    let snaps = berth_ok(&berth, &["--format", "json", "snapshots", "ls"]);
    assert!(!snaps.contains("someone-elses") && !snaps.contains("gc.root"), "{snaps}");
    // Set by hand on a container: refused, naming the label.
    for label in ["containerd.io/gc.root=x", "containerd.io/gc.ref.content=sha256:00", "berth.io/unpack=x"] {
        let e = berth_err(&berth, &["run", "--rm", "--label", label, name, "by-hand"]);
        let key = label.split('=').next().expect("key");
        assert!(e.contains(key) && e.contains("reserved"), "{label}: {e}");
    }
    // Set on records through the metadata service: refused too.
    let e = berth_err(&berth, &["images", "label", name, "containerd.io/gc.root=x"]);
    assert!(e.contains("containerd.io/gc.root") && e.contains("reserved"), "{e}");
    let e = berth_err(&berth, &["containers", "label", "keep", "berth.io/unpack=x"]);
    assert!(e.contains("berth.io/unpack") && e.contains("reserved"), "{e}");
    berth_ok(&berth, &["images", "label", name, "org.example/ok=yes"]);
    let _ = berth.cli(&["tasks", "kill", "--signal", "KILL", "keep"]);
    runtime_support::teardown(&berth);
}

/// An image whose `/etc/passwd` is a FIFO (which a host-side open would wait on forever, the
/// create's spec mount with it) or whose `/etc/group` is a device node (read on the host,
/// outside the container's device cgroup): the create fails at once, naming the file and
/// what it is, and leaves no mount, record or snapshot behind.
#[test]
fn hostile_image_files_are_not_opened_on_the_host() {
    use berth_system_tests::hostile::{RawTar, berth_bounded};
    if !can_run("runc") {
        return;
    }
    let berth = Berth::start();
    let cases = [
        (
            "fifo",
            RawTar::new().dir("etc").node("etc/passwd", tar::EntryType::Fifo, 0, 0),
            "/etc/passwd",
            "FIFO",
        ),
        // 1:5 is /dev/zero: the old code read 4 MiB of it and went on.
        (
            "chardev",
            RawTar::new().dir("etc").node("etc/group", tar::EntryType::Char, 1, 5),
            "/etc/group",
            "character device",
        ),
        (
            "linked",
            RawTar::new().dir("etc").node("fifo", tar::EntryType::Fifo, 0, 0).symlink("etc/passwd", "/fifo"),
            "/etc/passwd",
            "FIFO",
        ),
    ];
    for (id, layer, file, kind) in cases {
        let name = format!("docker.io/hostile/{id}:v1");
        let img = RawImage::new(
            vec![busybox_tar(), layer.finish()],
            json!({"User": "web", "Cmd": ["id"]}),
            json!({}),
        );
        let o = import(&berth, "default", &name, &img);
        assert!(o.status.success(), "{}", show(&o));
        let (ok, e) = berth_bounded(&berth, &["run", "--rm", &name, id], std::time::Duration::from_secs(30));
        assert!(!ok, "{id}: ran");
        assert!(e.contains(file) && e.contains(kind), "{id}: {e}");
        let list = berth_ok(&berth, &["--format", "json", "containers", "ls"]);
        assert_eq!(list.trim(), "[]", "{id}: container record left");
        let mounts = berth_system_tests::mounts_under(&berth.state);
        assert!(mounts.is_empty(), "{id}: mounts left: {mounts:?}");
    }
    runtime_support::teardown(&berth);
}

/// `berth images mount` shows an image to the host: a device node it holds cannot be opened
/// there and its setuid bits are inert (the mount is `nosuid,nodev`).
#[test]
fn hostile_image_mount_is_nosuid_nodev() {
    use berth_system_tests::hostile::RawTar;
    if !can_run("runc") {
        return;
    }
    let berth = Berth::start();
    let layer = RawTar::new().dir("dev").node("dev/zero", tar::EntryType::Char, 1, 5).file_mode(
        "suid",
        b"#!/bin/sh\n",
        0o4755,
    );
    let name = "docker.io/hostile/nodes:v1";
    let img = RawImage::new(vec![busybox_tar(), layer.finish()], json!({"Cmd": ["sh"]}), json!({}));
    let o = import(&berth, "default", name, &img);
    assert!(o.status.success(), "{}", show(&o));
    let mnt = berth.dir.path().join("mnt");
    std::fs::create_dir_all(&mnt).expect("mkdir");
    let m = mnt.to_str().expect("utf8");
    berth_ok(&berth, &["images", "mount", name, m]);
    let info = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    let options = info
        .lines()
        .find(|l| l.split(' ').nth(4) == Some(m))
        .map(|l| l.split(' ').nth(5).unwrap_or("").to_string());
    let opened = std::fs::File::open(mnt.join("dev/zero")).is_ok();
    berth_ok(&berth, &["images", "unmount", m]);
    let options = options.expect("the mount point in mountinfo");
    let options: Vec<&str> = options.split(',').collect();
    assert!(options.contains(&"nosuid") && options.contains(&"nodev"), "{options:?}");
    assert!(!opened, "the image's device node opened through the mount");
    runtime_support::teardown(&berth);
}
