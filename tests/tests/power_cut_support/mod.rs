//! Shared by the power-cut tests: cutting the power at a failpoint during one CLI command,
//! booting again on the same root, and the two promises checked after every cut —
//! everything committed is intact, and nothing unreferenced outlives a GC pass.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use berth_ipc::metadata::{DeleteLease, ListContent, ListIn, ListLeases, ListSnapshots};
use berth_system_tests::dist::{LayoutImage, busybox_rootfs, layout_tar};
use berth_system_tests::{Berth, bin, block_on, pid_alive, signal};
use nix::sys::signal::Signal;

/// No GC unless asked (`berth gc`, `images rm --sync`), and no grace: a pass frees every
/// unreferenced object, so "nothing unreferenced stays" is checked right after one.
pub const CONFIG: &str = "[metadata]\ngc_mutations = 0\ngc_interval_s = 0\ngc_grace_ms = 0\n";

/// The same with the default grace period (1 hour).
pub const CONFIG_GRACE: &str = "[metadata]\ngc_mutations = 0\ngc_interval_s = 0\n";

/// The namespace every test works in.
pub const NS: &str = "default";

/// A two-layer OCI layout tar named `name`: the busybox base shared by every image, and a
/// layer of its own holding `marker` (so its blobs and its top snapshot are new).
pub fn image_tar(work: &Path, name: &str, marker: &str) -> PathBuf {
    let base = work.join("base");
    if !base.exists() {
        busybox_rootfs(&base, "base");
    }
    let top = work.join(format!("top-{marker}"));
    std::fs::create_dir_all(top.join("srv")).expect("mkdir top");
    std::fs::write(top.join("srv/marker"), marker).expect("marker");
    std::fs::write(top.join("srv/bulk"), marker.repeat(200_000)).expect("bulk");
    let out = work.join(format!("{marker}.tar"));
    let layers = [base, top];
    layout_tar(work, &[LayoutImage { name, layers: &layers, fake_diff_ids: None, index: None }], &out);
    out
}

/// `points`, or those of them named in `POWER_CUT_POINTS` (a comma list) when it is set.
pub fn selected<'a>(points: &[&'a str]) -> Vec<&'a str> {
    let only = std::env::var("POWER_CUT_POINTS").unwrap_or_default();
    let only: Vec<&str> = only.split(',').map(str::trim).filter(|s| !s.is_empty()).collect();
    points.iter().copied().filter(|p| only.is_empty() || only.contains(p)).collect()
}

/// What a cut looked like.
pub struct Cut {
    /// The command's exit status, if it finished before the cut (it may: the cut can come
    /// after its last reply, e.g. in a background GC).
    pub finished: Option<std::process::ExitStatus>,
}

/// Relaunches `berth` with `failpoint` armed, runs `berth ARGS…`, and waits for the power
/// cut: asserts the failpoint fired and every berth process died, kills the command (the
/// client dies with the power too), removes mounts left under the test dir, and boots
/// again on the same root with nothing armed.
pub fn cut_during(berth: &mut Berth, failpoint: &str, args: &[&str]) -> Cut {
    berth.stop();
    let log = berth.dir.path().join("failpoints.log");
    let _ = std::fs::remove_file(&log);
    berth.env = vec![
        ("BERTH_FAILPOINTS".into(), failpoint.into()),
        ("BERTH_FAILPOINT_LOG".into(), log.display().to_string()),
    ];
    berth.launch();
    let mut pids: Vec<u32> = berth.list().iter().filter_map(|s| s.pid).collect();
    pids.push(berth.launcher_pid());
    let out = berth.dir.path().join("cut-command.out");
    let mut child = Command::new(bin("berth"))
        .arg("--state")
        .arg(&berth.state)
        .args(args)
        .stdout(Stdio::from(std::fs::File::create(&out).expect("out file")))
        .stderr(Stdio::from(std::fs::File::create(out.with_extension("err")).expect("err file")))
        .spawn()
        .expect("spawn berth");
    let start = Instant::now();
    let (mut finished, mut finished_at) = (None, None);
    let status = loop {
        if let Some(s) = berth.wait_launcher_exit(Duration::from_millis(20)) {
            break s;
        }
        if finished.is_none() {
            finished = child.try_wait().expect("wait berth");
            finished_at = finished.map(|_| Instant::now());
        }
        let limit = finished_at.map_or(start + Duration::from_secs(120), |t| t + Duration::from_secs(5));
        assert!(
            Instant::now() < limit,
            "{failpoint}: never reached by berth {args:?} (finished: {finished:?})\n{}\nlog:\n{}",
            std::fs::read_to_string(out.with_extension("err")).unwrap_or_default(),
            berth.log()
        );
    };
    let fired = std::fs::read_to_string(&log).unwrap_or_default();
    let name = failpoint.split('@').next().unwrap_or(failpoint);
    assert!(fired.lines().any(|l| l == name), "{failpoint}: berthd died ({status}) without it");
    let gone = Instant::now() + Duration::from_secs(5);
    while pids.iter().any(|p| pid_alive(*p)) {
        assert!(Instant::now() < gone, "{failpoint}: berth processes outlived the cut: {pids:?}");
        std::thread::sleep(Duration::from_millis(10));
    }
    if finished.is_none() {
        signal(child.id(), Signal::SIGKILL);
    }
    let _ = child.wait();
    unmount_under(berth.dir.path());
    berth.env.clear();
    berth.launch();
    Cut { finished }
}

/// Detaches every mount under `dir`, deepest first.
pub fn unmount_under(dir: &Path) {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let d = dir.to_string_lossy();
    let mut points: Vec<&str> =
        info.lines().filter_map(|l| l.split(' ').nth(4)).filter(|m| m.starts_with(&*d)).collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.len()));
    for p in points {
        let _ = nix::mount::umount2(p, nix::mount::MntFlags::MNT_DETACH);
    }
}

/// Runs `berth ARGS…`; panics with both streams and the log unless it succeeds.
pub fn ok(berth: &Berth, args: &[&str]) -> String {
    let o = berth.cli(args);
    assert!(
        o.status.success(),
        "berth {args:?}: {}\n{}\nlog:\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr),
        berth.log()
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Names of the images in [`NS`].
pub fn images(berth: &Berth) -> BTreeSet<String> {
    ok(berth, &["images", "ls", "-q"]).lines().map(str::to_string).collect()
}

/// Promise one: every blob re-hashes to its name and every image named resolves to all
/// its content and its unpacked snapshots.
pub fn assert_intact(berth: &Berth, names: &[String]) {
    assert_intact_on(berth, names, "overlayfs");
}

/// [`assert_intact`] for images unpacked on `snapshotter`.
pub fn assert_intact_on(berth: &Berth, names: &[String], snapshotter: &str) {
    ok(berth, &["content", "check"]);
    for n in names {
        let out = ok(berth, &["images", "check", "--snapshotter", snapshotter, n]);
        assert!(out.contains("\tcomplete\t") && out.contains("\tunpacked"), "image {n}: {out}");
    }
}

/// Promise two: once the leases of clients that died are gone and a GC pass ran, the
/// disk holds exactly what the records hold — every blob has a content record, no ingest
/// is left, every snapshot dir has an index entry and every index entry a record.
pub fn assert_no_orphans(berth: &Berth) {
    assert_no_orphans_on(berth, "overlayfs");
}

/// Retries the interrupted job `args` after a cut: it must add exactly one image to
/// `committed`, every image then intact on `snapshotter`, before and after a GC pass that
/// leaves no orphan.
pub fn assert_retry_adds_one(
    berth: &Berth,
    committed: &BTreeSet<String>,
    fp: &str,
    args: &[&str],
    snapshotter: &str,
) {
    ok(berth, args);
    let all: Vec<String> = images(berth).into_iter().collect();
    assert_eq!(all.len(), committed.len() + 1, "{fp}: {all:?}");
    assert_intact_on(berth, &all, snapshotter);
    assert_no_orphans_on(berth, snapshotter);
    assert_intact_on(berth, &all, snapshotter);
}

/// [`assert_no_orphans`] with the snapshots of `snapshotter`.
pub fn assert_no_orphans_on(berth: &Berth, snapshotter: &str) {
    drop_leases(berth);
    let report = ok(berth, &["gc"]);
    let contents = content_records(berth);
    let s = berth.clients(Duration::from_secs(20));
    let snaps = block_on(async {
        let mut snaps = BTreeSet::new();
        let req = ListSnapshots {
            list: ListIn { namespace: NS.into(), filters: vec![] },
            snapshotter: snapshotter.into(),
        };
        let mut st = s.metadata.stream(req).await.expect("list snapshots");
        while let Some(page) = st.next().await {
            // The snapshot service keys its index `<namespace>/<key>`.
            snaps.extend(page.expect("snapshot page").into_iter().map(|r| format!("{NS}/{}", r.key)));
        }
        snaps
    });
    let root = &berth.root;
    let blobs = names(&root.join("content/blobs/sha256"));
    assert_eq!(blobs, contents, "blobs on disk vs content records (gc: {report})");
    let ingests = names(&root.join("content/ingest"));
    assert!(ingests.is_empty(), "ingests left after GC: {ingests:?}");
    let sdir = root.join("snapshots").join(snapshotter);
    let index = snapshot_index_of(berth, snapshotter);
    let keys: BTreeSet<String> = index.keys().cloned().collect();
    assert_eq!(keys, snaps, "snapshot index vs snapshot records (gc: {report})");
    let ids: BTreeSet<String> = index.values().map(u64::to_string).collect();
    assert_eq!(names(&sdir.join("snapshots")), ids, "snapshot dirs vs index ids");
    assert!(names(&sdir.join("tmp")).is_empty(), "snapshot tmp not empty");
}

/// The hex digests of the content records of [`NS`].
pub fn content_records(berth: &Berth) -> BTreeSet<String> {
    let s = berth.clients(Duration::from_secs(20));
    block_on(async {
        let mut contents = BTreeSet::new();
        let list = ListContent(ListIn { namespace: NS.into(), filters: vec![] });
        let mut st = s.metadata.stream(list).await.expect("list content");
        while let Some(page) = st.next().await {
            contents.extend(page.expect("content page").into_iter().map(|r| r.digest.hex().to_string()));
        }
        contents
    })
}

/// The overlayfs index as read from disk: key -> dir number.
pub fn snapshot_index(berth: &Berth) -> BTreeMap<String, u64> {
    snapshot_index_of(berth, "overlayfs")
}

/// The index of `snapshotter` as read from disk: key -> dir number.
pub fn snapshot_index_of(berth: &Berth, snapshotter: &str) -> BTreeMap<String, u64> {
    let path = berth.root.join("snapshots").join(snapshotter).join("index.json");
    let bytes = std::fs::read(path).unwrap_or_else(|_| b"{}".to_vec());
    let index: serde_json::Value = serde_json::from_slice(&bytes).expect("index.json");
    let empty = serde_json::Map::new();
    let entries = index["snapshots"].as_object().unwrap_or(&empty);
    entries.iter().map(|(k, r)| (k.clone(), r["id"].as_u64().expect("id"))).collect()
}

/// Deletes every lease of [`NS`] (what expiry does to a dead client's lease).
pub fn drop_leases(berth: &Berth) {
    let s = berth.clients(Duration::from_secs(20));
    block_on(async {
        let list = ListLeases(ListIn { namespace: NS.into(), filters: Vec::new() });
        for lease in s.metadata.call(list).await.expect("leases") {
            let del = DeleteLease { namespace: NS.into(), id: lease.id, sync: false };
            s.metadata.call(del).await.expect("delete lease");
        }
    });
}

/// The entry names of a directory (empty if it does not exist).
pub fn names(dir: &Path) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .map(|rd| rd.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default()
}
