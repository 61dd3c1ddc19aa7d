//! Dead ends a new user hit, each driven through the CLI as they did: running an image that
//! is not unpacked (it is unpacked first, as ctr does; `images unpack` does it on demand),
//! a piped pull's unpack lines, importing an OCI layout directory, and a docker-archive
//! without tags whose hint must name the flag that then works.

mod runtime_support;

use std::process::Command;

use berth_system_tests::Berth;
use berth_system_tests::dist::{LayoutImage, Registry, berth_err, berth_ok, busybox_rootfs, layout_tar, sh};
use runtime_support::{can_run, out, show, teardown};

/// An OCI layout tar of one busybox image `name` whose marker file says `marker`.
fn layout(berth: &Berth, name: &str, marker: &str) -> std::path::PathBuf {
    let work = berth.dir.path();
    let rootfs = work.join(format!("rootfs-{marker}"));
    busybox_rootfs(&rootfs, marker);
    let archive = work.join(format!("{marker}.tar"));
    let image = LayoutImage { name, layers: std::slice::from_ref(&rootfs), fake_diff_ids: None, index: None };
    layout_tar(work, &[image], &archive);
    archive
}

fn check_line(berth: &Berth, name: &str) -> String {
    berth_ok(berth, &["images", "check", name])
}

#[test]
fn an_image_not_unpacked_is_unpacked_by_run_and_by_images_unpack() {
    let berth = Berth::start();
    let a = layout(&berth, "stored-a", "a");
    let b = layout(&berth, "stored-b", "b");
    for f in [&a, &b] {
        berth_ok(&berth, &["images", "import", "--no-unpack", f.to_str().expect("utf8")]);
    }
    assert!(check_line(&berth, "stored-a").contains("\tnot unpacked"));
    if can_run("runc") {
        let o = berth.cli(&["run", "--rm", "stored-a", "d1", "/bin/busybox", "cat", "/etc/berth-test"]);
        assert!(o.status.success(), "{}", show(&o));
        assert_eq!(out(&o), "a");
        assert!(check_line(&berth, "stored-a").contains("\tunpacked"));
    }

    let u = berth_ok(&berth, &["images", "unpack", "stored-b"]);
    assert!(u.contains("1 of 1 layers unpacked now"), "{u}");
    assert!(check_line(&berth, "stored-b").contains("\tunpacked"));
    let again = berth_ok(&berth, &["images", "unpack", "stored-b"]);
    assert!(again.contains("0 of 1 layers unpacked now"), "{again}");
    let err = berth_err(&berth, &["images", "unpack", "nosuch"]);
    assert!(err.contains("docker.io/library/nosuch:latest") && err.contains("not found"), "{err}");

    teardown(&berth);
}

#[test]
fn a_piped_pull_reports_the_layers_it_unpacked() {
    let berth = Berth::start();
    let reg = Registry::start(None);
    let name = format!("{}/dead/ends:v1", reg.addr);
    let archive = layout(&berth, &name, "p");
    berth_ok(&berth, &["images", "import", "--no-unpack", archive.to_str().expect("utf8")]);
    berth_ok(&berth, &["images", "push", "-q", &name]);
    berth_ok(&berth, &["images", "rm", "--sync", &name]);
    let o = berth.cli(&["-n", "fresh", "images", "pull", &name]);
    assert!(o.status.success(), "{}", show(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!err.contains("unpacked 0/0"), "{err}");
    assert!(err.contains("unpacked 1 of 1 layers"), "{err}");
    // Pulled again, nothing is unpacked: no count is printed.
    let o = berth.cli(&["-n", "fresh", "images", "pull", &name]);
    assert!(o.status.success(), "{}", show(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!err.contains("layers") && !err.contains("0/0"), "{err}");
}

#[test]
fn an_oci_layout_directory_imports() {
    let berth = Berth::start();
    let archive = layout(&berth, "fromdir", "dir");
    let dir = berth.dir.path().join("layout-dir");
    std::fs::create_dir(&dir).expect("mkdir");
    sh(Command::new("tar").arg("-C").arg(&dir).arg("-xf").arg(&archive));
    let o = berth_ok(&berth, &["images", "import", dir.to_str().expect("utf8")]);
    assert!(o.starts_with("docker.io/library/fromdir:latest"), "{o}");
    assert!(check_line(&berth, "fromdir").contains("\tcomplete\t"));
    // A directory that is no layout says so.
    let empty = berth.dir.path().join("empty-dir");
    std::fs::create_dir(&empty).expect("mkdir");
    let err = berth_err(&berth, &["images", "import", empty.to_str().expect("utf8")]);
    assert!(err.contains("not an OCI layout") && !err.contains("Is a directory"), "{err}");
}

#[test]
fn an_untagged_docker_archive_imports_under_the_flag_its_hint_names() {
    let berth = Berth::start();
    let work = berth.dir.path().join("docker");
    let rootfs = berth.dir.path().join("rootfs-docker");
    busybox_rootfs(&rootfs, "docker");
    std::fs::create_dir_all(&work).expect("mkdir");
    sh(Command::new("tar")
        .arg("-C")
        .arg(&rootfs)
        .args(["--numeric-owner", "-cf"])
        .arg(work.join("layer.tar"))
        .arg("."));
    let layer = std::fs::read(work.join("layer.tar")).expect("layer");
    let diff_id = berth_ipc::Digest::of(&layer).to_string();
    let host = berth_client::oci::Platform::host();
    let config = serde_json::json!({"architecture": host.architecture, "os": host.os,
        "rootfs": {"type": "layers", "diff_ids": [diff_id]}});
    std::fs::write(work.join("config.json"), config.to_string()).expect("config");
    let manifest = serde_json::json!([{"Config": "config.json", "RepoTags": null, "Layers": ["layer.tar"]}]);
    std::fs::write(work.join("manifest.json"), manifest.to_string()).expect("manifest");
    let archive = berth.dir.path().join("untagged.tar");
    sh(Command::new("tar").arg("-C").arg(&work).arg("-cf").arg(&archive).arg("."));
    let file = archive.to_str().expect("utf8");

    let err = berth_err(&berth, &["images", "import", file]);
    assert!(err.contains("--name NAME"), "{err}");
    let o = berth_ok(&berth, &["images", "import", file, "--name", "untagged"]);
    assert!(o.starts_with("docker.io/library/untagged:latest"), "{o}");
    // The positional NAME the user tried first means the same.
    let o = berth_ok(&berth, &["images", "import", file, "named"]);
    assert!(o.starts_with("docker.io/library/named:latest"), "{o}");
    let err = berth_err(&berth, &["images", "import", file, "a", "--name", "b"]);
    assert!(err.contains("either NAME or --name"), "{err}");
}
