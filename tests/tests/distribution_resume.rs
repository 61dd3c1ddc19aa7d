//! Interrupted pulls resume: SIGKILL the client, and separately the content service, while a
//! large layer downloads; the ingest keeps what arrived, the next pull completes from there,
//! and `content check` is clean.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use berth_ipc::content::{ListStatuses, Status};
use berth_system_tests::dist::{LayoutImage, Registry, berth_ok, busybox_rootfs, image_digest, layout_tar};
use berth_system_tests::{Berth, bin, block_on, signal};
use nix::sys::signal::Signal;

/// The largest live offset among ingests whose ref starts with `pull-`.
fn pull_offset(berth: &Berth) -> u64 {
    let c = berth.clients(Duration::from_secs(2));
    let refs: Vec<String> = block_on(c.content.call(ListStatuses::default()))
        .map(|l| l.into_iter().filter(|s| s.r#ref.starts_with("pull-")).map(|s| s.r#ref).collect())
        .unwrap_or_default();
    refs.into_iter()
        .filter_map(|r| block_on(c.content.call(Status { r#ref: r })).ok())
        .map(|s| s.offset)
        .max()
        .unwrap_or(0)
}

/// Starts a pull and waits until some of the big layer has arrived; returns the child.
fn start_pull(berth: &Berth, name: &str, what: &str) -> std::process::Child {
    let child = Command::new(bin("berth"))
        .arg("--state")
        .arg(&berth.state)
        .args(["images", "pull", "-q", "--parallel", "1", name])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn pull");
    let mut child = child;
    let deadline = Instant::now() + Duration::from_secs(60);
    while pull_offset(berth) < 1 << 20 {
        assert!(Instant::now() < deadline, "the pull never got going");
        if let Ok(Some(st)) = child.try_wait() {
            let mut err = String::new();
            let _ = std::io::Read::read_to_string(&mut child.stderr.take().expect("stderr"), &mut err);
            panic!("{what}: the pull ended ({st}) before it could be interrupted: {err}");
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    child
}

#[test]
fn interrupted_pulls_resume() {
    let mut berth = Berth::start();
    let reg = Registry::start(None);
    let work = berth.dir.path();
    let big = work.join("big");
    busybox_rootfs(&big, "big");
    let data = std::fs::File::create(big.join("blob")).expect("create");
    let status = Command::new("head")
        .args(["-c", &(256u64 << 20).to_string(), "/dev/urandom"])
        .stdout(data)
        .status()
        .expect("head");
    assert!(status.success());
    let name = format!("{}/resume/img:v1", reg.addr);
    let archive = work.join("img.tar");
    layout_tar(
        work,
        &[LayoutImage { name: &name, layers: std::slice::from_ref(&big), fake_diff_ids: None, index: None }],
        &archive,
    );
    std::fs::remove_dir_all(&big).expect("rm big");
    // Push from a separate berth so this one's content starts empty.
    {
        let pusher = Berth::start();
        berth_ok(&pusher, &["images", "import", "--no-unpack", archive.to_str().expect("utf8")]);
        berth_ok(&pusher, &["images", "push", "-q", &name]);
    }

    // 1. SIGKILL the client mid-download.
    let mut child = start_pull(&berth, &name, "client kill");
    signal(child.id(), Signal::SIGKILL);
    let _ = child.wait();
    let kept = pull_offset(&berth);
    assert!(kept > 0, "the ingest kept nothing");
    assert_eq!(image_digest(&berth, "default", &name), None);
    berth_ok(&berth, &["images", "pull", "-q", &name]);
    assert!(image_digest(&berth, "default", &name).is_some());
    berth_ok(&berth, &["content", "check"]);
    assert_eq!(pull_offset(&berth), 0, "an ingest is left over");

    // 2. SIGKILL the content service mid-download, in another namespace after a GC.
    // (The killed pull's lease still protects its blobs: drop it, as an admin would.)
    berth_ok(&berth, &["images", "rm", "--sync", &name]);
    for lease in berth_ok(&berth, &["leases", "ls", "-q"]).lines() {
        berth_ok(&berth, &["leases", "rm", lease]);
    }
    berth_ok(&berth, &["gc"]);
    let mut child = start_pull(&berth, &name, "content kill");
    let content_pid =
        berth.list().into_iter().find(|s| s.name == "content").and_then(|s| s.pid).expect("pid");
    signal(content_pid, Signal::SIGKILL);
    let _ = child.wait();
    let out = berth.cli(&["-n", "again", "images", "pull", "-q", &name]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(image_digest(&berth, "again", &name).is_some());
    berth_ok(&berth, &["content", "check"]);
}
