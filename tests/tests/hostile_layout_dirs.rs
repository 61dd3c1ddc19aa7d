//! OCI layout directories that point outside themselves, for `berth images import DIR`: a
//! blob (or `index.json`) that is a symlink to a file elsewhere is not followed, even when
//! that file holds exactly the bytes the manifest wants, so an import cannot be made to
//! read what the layout's owner could not put in it. Each ends in an error, no image.

use std::process::Command;

use berth_system_tests::Berth;
use berth_system_tests::dist::{LayoutImage, berth_err, busybox_rootfs, image_digest, layout_tar, sh};

/// An unpacked layout of one image `name`; returns its directory.
fn layout_dir(berth: &Berth, name: &str) -> std::path::PathBuf {
    let work = berth.dir.path();
    let rootfs = work.join("rootfs");
    busybox_rootfs(&rootfs, "hostile");
    let archive = work.join("layout.tar");
    let image = LayoutImage { name, layers: std::slice::from_ref(&rootfs), fake_diff_ids: None, index: None };
    layout_tar(work, &[image], &archive);
    let dir = work.join("layout");
    std::fs::create_dir(&dir).expect("mkdir");
    sh(Command::new("tar").arg("-C").arg(&dir).arg("-xf").arg(&archive));
    dir
}

/// The largest blob of the layout (its layer).
fn largest_blob(dir: &std::path::Path) -> std::path::PathBuf {
    let blobs = std::fs::read_dir(dir.join("blobs/sha256")).expect("blobs").flatten();
    blobs.max_by_key(|e| e.metadata().map(|m| m.len()).unwrap_or(0)).expect("a blob").path()
}

#[test]
fn symlinked_blobs_are_not_followed() {
    let berth = Berth::start();
    let dir = layout_dir(&berth, "hostile/linked:v1");
    let blob = largest_blob(&dir);
    let outside = berth.dir.path().join("outside");
    std::fs::rename(&blob, &outside).expect("move blob out");
    std::os::unix::fs::symlink(&outside, &blob).expect("symlink");
    let err = berth_err(&berth, &["images", "import", dir.to_str().expect("utf8")]);
    let name = blob.file_name().and_then(|n| n.to_str()).expect("name");
    assert!(err.contains(name) || err.contains("not in"), "{err}");
    assert_eq!(image_digest(&berth, "default", "docker.io/hostile/linked:v1"), None);
}

#[test]
fn a_symlinked_index_is_not_followed() {
    let berth = Berth::start();
    let dir = layout_dir(&berth, "hostile/index:v1");
    let outside = berth.dir.path().join("index-outside.json");
    std::fs::rename(dir.join("index.json"), &outside).expect("move index out");
    std::os::unix::fs::symlink(&outside, dir.join("index.json")).expect("symlink");
    let err = berth_err(&berth, &["images", "import", dir.to_str().expect("utf8")]);
    assert!(err.contains("index.json"), "{err}");
    assert_eq!(image_digest(&berth, "default", "docker.io/hostile/index:v1"), None);
}
