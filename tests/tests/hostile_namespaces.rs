//! One namespace against another, through the CLI as a user: keys that once collided
//! (`a` + `b-c`, `a-b` + `c`), another namespace's blobs and snapshots out of reach
//! (`content ls|get|rm`, `snapshots ls|rm`), a forged chainID snapshot never trusted, and
//! the same image in two namespaces freed only with the last one.

mod runtime_support;

use std::path::Path;

use berth_system_tests::Berth;
use berth_system_tests::dist::{LayoutImage, berth_err, berth_ok, busybox_rootfs, layout_tar};
use runtime_support::{busybox_tar, can_run, teardown};

const IMAGE: &str = "example.com/ns/img:v1";

/// An OCI archive of a one-layer busybox image whose `/etc/berth-test` says `marker`.
fn archive(work: &Path, marker: &str) -> String {
    let rootfs = work.join(format!("rootfs-{marker}"));
    busybox_rootfs(&rootfs, marker);
    let out = work.join(format!("img-{marker}.tar"));
    layout_tar(
        work,
        &[LayoutImage { name: IMAGE, layers: &[rootfs], fake_diff_ids: None, index: None }],
        &out,
    );
    out.to_str().expect("utf8").to_string()
}

fn json(berth: &Berth, ns: &str, args: &[&str]) -> Vec<serde_json::Value> {
    let mut all = vec!["-n", ns, "--format", "json"];
    all.extend_from_slice(args);
    let out = berth_ok(berth, &all);
    serde_json::from_str::<serde_json::Value>(&out).expect("json").as_array().cloned().unwrap_or_default()
}

fn blobs(berth: &Berth, ns: &str) -> Vec<String> {
    json(berth, ns, &["content", "ls"])
        .iter()
        .map(|b| b["digest"].as_str().expect("digest").to_string())
        .collect()
}

fn snapshots(berth: &Berth, ns: &str) -> Vec<(String, String)> {
    json(berth, ns, &["snapshots", "ls"])
        .iter()
        .map(|s| {
            (s["name"].as_str().expect("name").to_string(), s["kind"].as_str().expect("kind").to_string())
        })
        .collect()
}

/// Blob files in the content store, whoever references them.
fn blob_files(berth: &Berth) -> usize {
    std::fs::read_dir(berth.root.join("content/blobs/sha256")).map_or(0, |d| d.count())
}

/// `images mount` the image of `ns` and read its marker.
fn marker(berth: &Berth, ns: &str) -> String {
    let mnt = berth.dir.path().join(format!("mnt-{ns}"));
    std::fs::create_dir_all(&mnt).expect("mkdir");
    let dir = mnt.to_str().expect("utf8");
    berth_ok(berth, &["-n", ns, "images", "mount", IMAGE, dir]);
    let seen = std::fs::read_to_string(mnt.join("etc/berth-test")).unwrap_or_default();
    berth_ok(berth, &["-n", ns, "images", "unmount", dir]);
    seen
}

fn check_line(berth: &Berth, ns: &str) -> String {
    berth_ok(berth, &["-n", ns, "images", "check", IMAGE])
}

#[test]
fn another_namespace_cannot_list_read_or_remove_blobs_and_snapshots() {
    let berth = Berth::start();
    let tar = archive(berth.dir.path(), "mine");
    berth_ok(&berth, &["images", "import", &tar]);
    let mine = blobs(&berth, "default");
    assert_eq!(mine.len(), 3, "manifest, config, layer: {mine:?}");
    let snaps = snapshots(&berth, "default");
    assert_eq!(snaps.len(), 1, "{snaps:?}");

    assert!(blobs(&berth, "nosuch").is_empty(), "an empty namespace lists no blobs");
    assert!(snapshots(&berth, "nosuch").is_empty(), "an empty namespace lists no snapshots");
    for d in &mine {
        let e = berth_err(&berth, &["-n", "nosuch", "content", "rm", d]);
        assert!(e.contains(&format!("blob {d}: not found in namespace nosuch")), "{e}");
        let e = berth_err(&berth, &["-n", "nosuch", "content", "get", d]);
        assert!(e.contains("not found in namespace nosuch"), "{e}");
    }
    let e = berth_err(&berth, &["-n", "nosuch", "snapshots", "rm", &snaps[0].0]);
    assert!(e.contains(&format!("snapshot nosuch/{}: not found", snaps[0].0)), "{e}");
    let e = berth_err(&berth, &["-n", "nosuch", "snapshots", "info", &snaps[0].0]);
    assert!(e.contains("not found"), "{e}");

    let check = check_line(&berth, "default");
    assert!(check.contains("\tcomplete\t") && check.contains("\tunpacked"), "{check}");
    assert_eq!(blobs(&berth, "default"), mine);
    assert_eq!(snapshots(&berth, "default"), snaps);
    assert_eq!(marker(&berth, "default"), "mine");
    berth_ok(&berth, &["content", "check"]);

    // Ingesting bytes another namespace stored gives this namespace its own record (the
    // bytes are written and verified); removing it drops only that record.
    let layer = berth.cli(&["content", "get", &mine[0]]).stdout;
    let out = berth.cli_with_input(&["-n", "nosuch", "content", "ingest", "mine-0"], &layer);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(blobs(&berth, "nosuch"), [mine[0].clone()]);
    let wrong = berth.cli_with_input(
        &["-n", "nosuch", "content", "ingest", "--expected-digest", &mine[1], "lie"],
        b"not those bytes",
    );
    assert!(!wrong.status.success(), "a claim of another namespace's blob without its bytes is refused");
    assert_eq!(blobs(&berth, "nosuch"), [mine[0].clone()]);
    berth_ok(&berth, &["-n", "nosuch", "content", "rm", &mine[0]]);
    berth_ok(&berth, &["gc"]);
    assert!(blobs(&berth, "nosuch").is_empty());
    let check = check_line(&berth, "default");
    assert!(check.contains("\tcomplete\t"), "{check}");
}

#[test]
fn a_chain_committed_by_another_namespace_is_not_trusted_by_an_unpack() {
    let berth = Berth::start();
    let tar = archive(berth.dir.path(), "real");
    berth_ok(&berth, &["-n", "probe", "images", "import", &tar]);
    let chain = snapshots(&berth, "probe").remove(0).0;
    berth_ok(&berth, &["-n", "probe", "images", "rm", "--sync", IMAGE]);
    // A peer in `evil` commits an empty tree under the image's chainID.
    berth_ok(&berth, &["-n", "evil", "snapshots", "prepare", "forge"]);
    berth_ok(&berth, &["-n", "evil", "snapshots", "commit", &chain, "forge"]);
    berth_ok(&berth, &["-n", "victim", "images", "import", &tar]);
    assert_eq!(marker(&berth, "victim"), "real", "the victim's unpack used its own chain");
    assert_eq!(snapshots(&berth, "evil"), [(chain.clone(), "committed".to_string())]);
    assert_eq!(snapshots(&berth, "victim"), [(chain, "committed".to_string())]);
}

#[test]
fn an_image_in_two_namespaces_is_freed_with_the_last() {
    let berth = Berth::start();
    let tar = archive(berth.dir.path(), "shared");
    berth_ok(&berth, &["images", "import", &tar]);
    berth_ok(&berth, &["-n", "other", "images", "import", &tar]);
    assert_eq!(blobs(&berth, "default"), blobs(&berth, "other"));
    assert_eq!(blob_files(&berth), 3, "the bytes are stored once");

    berth_ok(&berth, &["-n", "other", "images", "rm", "--sync", IMAGE]);
    assert!(blobs(&berth, "other").is_empty());
    assert!(snapshots(&berth, "other").is_empty());
    assert_eq!(blob_files(&berth), 3, "default still needs every blob");
    let check = check_line(&berth, "default");
    assert!(check.contains("\tcomplete\t") && check.contains("\tunpacked"), "{check}");
    assert_eq!(marker(&berth, "default"), "shared");

    berth_ok(&berth, &["images", "rm", "--sync", IMAGE]);
    assert_eq!(blob_files(&berth), 0, "the last reference gone, the bytes go");
    assert!(snapshots(&berth, "default").is_empty());
}

#[test]
fn images_check_counts_only_the_namespace_s_own_blobs() {
    let berth = Berth::start();
    let tar = archive(berth.dir.path(), "own");
    berth_ok(&berth, &["images", "import", &tar]);
    berth_ok(&berth, &["-n", "other", "images", "import", &tar]);
    // `other` drops its records of every blob; the bytes stay, for `default` needs them.
    let digests = blobs(&berth, "other");
    assert_eq!(digests.len(), 3, "{digests:?}");
    let mut args = vec!["-n", "other", "content", "rm"];
    args.extend(digests.iter().map(String::as_str));
    berth_ok(&berth, &args);
    assert_eq!(blob_files(&berth), 3);

    let out = berth.cli(&["-n", "other", "images", "check", IMAGE]);
    let check = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{check}");
    assert!(
        check.contains("\tincomplete\t0/1 blobs"),
        "blobs only default records are missing in other: {check}"
    );
    let check = check_line(&berth, "default");
    assert!(check.contains("\tcomplete\t"), "{check}");
}

#[test]
fn containers_of_namespaces_sharing_a_dash_run_side_by_side() {
    if !can_run("runc") {
        return;
    }
    let berth = Berth::start();
    let rootfs = berth.dir.path().join("rootfs.tar");
    std::fs::write(&rootfs, busybox_tar()).expect("tar");
    let rootfs = rootfs.to_str().expect("utf8");
    for ns in ["a", "a-b"] {
        berth_ok(&berth, &["-n", ns, "images", "import", "--rootfs", rootfs, "tiny"]);
    }
    // `a` + `b-c` and `a-b` + `c` were one snapshot key; the second create took the first's
    // live snapshot for a crashed create's and removed it.
    berth_ok(&berth, &["-n", "a", "run", "-d", "tiny", "b-c", "sleep", "1000"]);
    berth_ok(&berth, &["-n", "a-b", "run", "-d", "tiny", "c", "sleep", "1000"]);
    for (ns, id) in [("a", "b-c"), ("a-b", "c")] {
        let tasks = json(&berth, ns, &["tasks", "ls"]);
        assert!(
            tasks
                .iter()
                .any(|t| t["id"] == id
                    && t["status"].as_str().is_some_and(|s| s.eq_ignore_ascii_case("running"))),
            "{ns}/{id}: {tasks:?}"
        );
        let containers = json(&berth, ns, &["containers", "ls"]);
        let c = containers.iter().find(|c| c["id"] == id).expect("container record");
        let key = c["snapshot_key"].as_str().expect("snapshot key").to_string();
        let info = berth_ok(&berth, &["-n", ns, "snapshots", "info", &key]);
        let info: serde_json::Value = serde_json::from_str(&info).expect("json");
        assert_eq!(
            (info["labels"]["berth.io/namespace"].as_str(), info["labels"]["berth.io/container"].as_str()),
            (Some(ns), Some(id))
        );
        let out =
            berth_ok(&berth, &["-n", ns, "tasks", "exec", "--exec-id", "look", id, "cat", "/etc/passwd"]);
        assert!(out.contains("root:"), "{ns}/{id}'s rootfs is whole: {out}");
    }

    // A snapshot under a container's key that its labels do not tie to that container is
    // never taken for a crashed create's: the create fails and the snapshot stays.
    let chain = snapshots(&berth, "a").into_iter().find(|s| s.1 == "committed").expect("chain").0;
    berth_ok(&berth, &["-n", "a", "snapshots", "prepare", "berth-container-x", &chain]);
    let e = berth_err(&berth, &["-n", "a", "run", "--rm", "tiny", "x", "true"]);
    assert!(e.contains("not container x's"), "{e}");
    berth_ok(&berth, &["-n", "a", "snapshots", "info", "berth-container-x"]);
    // One whose labels prove it is this container's is what a crashed create left: removed.
    berth_ok(
        &berth,
        &[
            "-n",
            "a",
            "snapshots",
            "label",
            "berth-container-x",
            "berth.io/namespace=a",
            "berth.io/container=x",
        ],
    );
    berth_ok(&berth, &["-n", "a", "run", "--rm", "tiny", "x", "true"]);
    assert!(!snapshots(&berth, "a").iter().any(|s| s.0 == "berth-container-x"));
    teardown(&berth);
}
