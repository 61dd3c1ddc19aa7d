//! A live container racing `Diff` (issue 14 item 1): while diffs of its snapshot run, a
//! thread keeps exchanging (`renameat2(RENAME_EXCHANGE)`) a directory of the upper dir with
//! a symlink to a host directory holding a secret, and a regular file with a FIFO. No diff
//! may carry the secret, none may hang, and a diff that fails names the entry that changed.
//! A second churn moves a directory out and puts a symlink to the host dir in its place, then
//! back, the pattern a by-path walk follows (listed as a directory, entered as the symlink).

mod common;

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use berth_ipc::snapshot::{Commit, Diff, Mount, Prepare};
use berth_snapshot::store::{Local, Snapshotter};
use common::Layer;
use nix::fcntl::{AT_FDCWD, RenameFlags, renameat2};

const SECRET: &[u8] = b"root:$6$host-shadow-secret-4f1c9a:19000:0:99999:7:::";
const DIFFS: usize = 60;
const SWAP_FOR: Duration = Duration::from_secs(20);

fn local(root: &Path) -> (Local, tempfile::TempDir, Arc<berth_snapshot::DirBlobs>) {
    let (d, blobs) = common::blob_dir();
    let env = berth_service_kit::ServiceEnv::new("snapshot", common::service::config(root));
    (Local(berth_snapshot::build(&env, blobs.clone()).expect("build")), d, blobs)
}

/// The writable directory of an active snapshot, from its mounts.
fn upper_of(m: &[Mount]) -> PathBuf {
    let m = &m[0];
    if m.kind == "bind" {
        return PathBuf::from(&m.source);
    }
    let o = m.options.iter().find_map(|o| o.strip_prefix("upperdir=")).expect("upperdir");
    PathBuf::from(o)
}

/// The uncompressed tar of blob `path`.
fn untar(path: &Path) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(std::fs::File::open(path).expect("blob"))
        .read_to_end(&mut out)
        .expect("gunzip");
    out
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// Prepares `ctr` on `sn` over a one-layer base and fills its upper dir with the swap pairs.
async fn prepare(s: &Local, sn: &str, blobs: &berth_snapshot::DirBlobs, host: &Path) -> PathBuf {
    let p = |key: &str, parent: Option<String>| Prepare {
        namespace: "default".into(),
        snapshotter: sn.into(),
        key: key.into(),
        parent,
        labels: BTreeMap::new(),
    };
    s.call(p("base", None)).await.expect("prepare base");
    let d = blobs.add(&Layer::new().dir("etc").file("etc/os", b"base").tar()).expect("blob");
    s.call(berth_ipc::snapshot::Apply {
        namespace: "default".into(),
        snapshotter: sn.into(),
        key: "base".into(),
        digest: d,
        media_type: String::new(),
    })
    .await
    .expect("apply");
    let c = Commit {
        namespace: "default".into(),
        snapshotter: sn.into(),
        name: "l0".into(),
        key: "base".into(),
        labels: BTreeMap::new(),
    };
    s.call(c).await.expect("commit");
    let m = s.call(p("ctr", Some("l0".into()))).await.expect("prepare ctr");
    let up = upper_of(&m);
    for i in 0..20 {
        let d = up.join(format!("d{i}"));
        std::fs::create_dir(&d).expect("dir");
        std::fs::write(d.join("marker"), b"inside the container").expect("inner");
        std::os::unix::fs::symlink(host, up.join(format!("d{i}.alt"))).expect("symlink");
        std::fs::write(up.join(format!("f{i}")), b"regular").expect("file");
        nix::unistd::mkfifo(&up.join(format!("f{i}.alt")), nix::sys::stat::Mode::from_bits_truncate(0o644))
            .expect("fifo");
    }
    up
}

/// How the container churns its upper dir.
#[derive(Clone, Copy)]
enum Churn {
    /// Every `d<i>` with `d<i>.alt` (a symlink to the host dir), every `f<i>` with
    /// `f<i>.alt` (a FIFO), atomically exchanged.
    Exchange,
    /// `d0` moved out of the tree, a symlink to the host dir put in its place, then back:
    /// the one name is a directory, a symlink or absent.
    Stash,
}

/// Churns until `stop`; returns how many swaps it made.
fn swapper(up: PathBuf, host: PathBuf, churn: Churn, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<u64> {
    std::thread::spawn(move || {
        let until = Instant::now() + SWAP_FOR;
        let mut n = 0u64;
        let stash = up.parent().expect("snapshot dir").join("stash");
        while !stop.load(Ordering::Relaxed) && Instant::now() < until {
            if let Churn::Stash = churn {
                let d = up.join("d0");
                std::fs::rename(&d, &stash).expect("stash");
                std::os::unix::fs::symlink(&host, &d).expect("symlink");
                std::thread::sleep(Duration::from_micros(50));
                std::fs::remove_file(&d).expect("unlink");
                std::fs::rename(&stash, &d).expect("unstash");
                std::thread::sleep(Duration::from_micros(50));
                n += 1;
                continue;
            }
            for i in 0..20 {
                for base in [format!("d{i}"), format!("f{i}")] {
                    let (a, b) = (up.join(&base), up.join(format!("{base}.alt")));
                    renameat2(AT_FDCWD, &a, AT_FDCWD, &b, RenameFlags::RENAME_EXCHANGE).expect("exchange");
                    n += 1;
                }
            }
        }
        n
    })
}

async fn race(sn: &str, churn: Churn) {
    let dir = tempfile::tempdir().expect("dir");
    let host = tempfile::tempdir().expect("host dir");
    std::fs::write(host.path().join("marker"), SECRET).expect("secret");
    let (s, _bd, blobs) = local(dir.path());
    let up = prepare(&s, sn, &blobs, host.path()).await;
    let stop = Arc::new(AtomicBool::new(false));
    let t = swapper(up.clone(), host.path().to_path_buf(), churn, stop.clone());
    let (mut ok, mut failed) = (0, Vec::new());
    for _ in 0..DIFFS {
        let call = s.call(Diff {
            namespace: "default".into(),
            snapshotter: sn.into(),
            lower: Some("l0".into()),
            upper: "ctr".into(),
            labels: BTreeMap::new(),
        });
        match tokio::time::timeout(Duration::from_secs(20), call).await {
            Err(_) => {
                stop.store(true, Ordering::Relaxed);
                panic!("{sn}: a diff hung");
            }
            Ok(Ok(d)) => {
                let tar = untar(&blobs.path(&d.digest));
                if contains(&tar, SECRET) {
                    stop.store(true, Ordering::Relaxed);
                    panic!("{sn}: the host's secret leaked into a diff");
                }
                ok += 1;
            }
            Ok(Err(e)) => {
                let m = e.to_string();
                let named = (0..20).any(|i| m.contains(&format!("\"d{i}")) || m.contains(&format!("\"f{i}")));
                if !named {
                    stop.store(true, Ordering::Relaxed);
                    panic!("{sn}: diff error names no entry: {m}");
                }
                failed.push(m);
            }
        }
    }
    stop.store(true, Ordering::Relaxed);
    let swaps = t.join().expect("swapper");
    println!(
        "{sn}: {ok} diffs clean, {} refused, {swaps} exchanges; e.g. {:?}",
        failed.len(),
        failed.first()
    );
    assert!(swaps > 0, "the swapper never ran");
    assert!(ok > 0, "{sn}: no diff completed under the race: {failed:?}");
    assert_eq!(std::fs::read(host.path().join("marker")).expect("secret"), SECRET, "host dir touched");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overlay_upper_walk_never_follows_a_swapped_in_symlink_or_reads_a_fifo() {
    if !common::can_mount_overlay() {
        println!("skipping: needs root and overlayfs");
        return;
    }
    race("overlayfs", Churn::Exchange).await;
    race("overlayfs", Churn::Stash).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn native_two_tree_walk_never_follows_a_swapped_in_symlink_or_reads_a_fifo() {
    race("native", Churn::Exchange).await;
    race("native", Churn::Stash).await;
}

/// `Usage` under the stash churn: the host dir's many files must never be counted (a
/// by-path walk enters `d0` while it is the symlink and counts what it points to).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_never_counts_what_a_swapped_in_symlink_points_to() {
    let dir = tempfile::tempdir().expect("dir");
    let host = tempfile::tempdir().expect("host dir");
    for i in 0..500 {
        std::fs::write(host.path().join(format!("h{i}")), b"host").expect("host file");
    }
    let (s, _bd, blobs) = local(dir.path());
    let up = prepare(&s, "native", &blobs, host.path()).await;
    let key = berth_ipc::snapshot::KeyRef {
        namespace: "default".into(),
        snapshotter: "native".into(),
        key: "ctr".into(),
    };
    let calm = s.call(berth_ipc::snapshot::GetUsage(key.clone())).await.expect("usage");
    let stop = Arc::new(AtomicBool::new(false));
    let t = swapper(up, host.path().to_path_buf(), Churn::Stash, stop.clone());
    let mut max = 0;
    for _ in 0..200 {
        let call = s.call(berth_ipc::snapshot::GetUsage(key.clone()));
        match tokio::time::timeout(Duration::from_secs(20), call).await {
            Ok(Ok(u)) => max = max.max(u.inodes),
            Ok(Err(e)) => {
                stop.store(true, Ordering::Relaxed);
                panic!("usage failed under the race: {e}");
            }
            Err(_) => {
                stop.store(true, Ordering::Relaxed);
                panic!("usage hung");
            }
        }
    }
    stop.store(true, Ordering::Relaxed);
    assert!(t.join().expect("swapper") > 0, "the swapper never ran");
    // d0 is its directory and marker (2 inodes) or a symlink (1) or absent: never more.
    assert!(max <= calm.inodes, "usage counted {max} inodes, the tree has at most {}", calm.inodes);
}
