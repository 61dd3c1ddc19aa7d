//! Client jobs ride through service restarts: a pull of a multi-MB image from the local
//! registry while the test SIGKILLs the content service (and, in other rounds, metadata,
//! snapshot and events) mid-download exits 0, and `images check` and `content check` are clean; an
//! import, a push and an export with a service killed under them finish too, and so does a
//! commit with the snapshot service (then content) killed during its diff.

mod runtime_support;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use berth_ipc::content::{ListStatuses, Status};
use berth_system_tests::dist::{LayoutImage, Registry, berth_ok, busybox_rootfs, image_digest, layout_tar};
use berth_system_tests::{Berth, bin, block_on, signal};
use nix::sys::signal::Signal;
use runtime_support::{can_run, import_busybox, show, teardown};

/// The largest live offset among ingests whose ref starts with `prefix`.
fn ingest_offset(berth: &Berth, prefix: &str) -> u64 {
    let c = berth.clients(Duration::from_secs(2));
    let refs: Vec<String> = block_on(c.content.call(ListStatuses::default()))
        .map(|l| l.into_iter().filter(|s| s.r#ref.starts_with(prefix)).map(|s| s.r#ref).collect())
        .unwrap_or_default();
    refs.into_iter()
        .filter_map(|r| block_on(c.content.call(Status { r#ref: r })).ok())
        .map(|s| s.offset)
        .max()
        .unwrap_or(0)
}

/// Runs `berth ARGS…` in the background.
fn spawn(berth: &Berth, args: &[&str]) -> Child {
    Command::new(bin("berth"))
        .arg("--state")
        .arg(&berth.state)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn berth")
}

/// Waits until `ready` holds, or panics naming `what` (also when the job ended first).
fn wait_for(child: &mut Child, what: &str, ready: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !ready() {
        assert!(Instant::now() < deadline, "{what}: the job never got going");
        if let Ok(Some(st)) = child.try_wait() {
            let mut err = String::new();
            let _ = std::io::Read::read_to_string(&mut child.stderr.take().expect("stderr"), &mut err);
            panic!("{what}: the job ended ({st}) before the kill: {err}");
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// SIGKILLs service `name`; returns its old pid.
fn kill_service(berth: &mut Berth, name: &str) -> u32 {
    let pid = berth.status(name).pid.expect("service pid");
    signal(pid, Signal::SIGKILL);
    pid
}

/// Waits for the job; panics with its output and berthd's log unless it exited 0.
fn finishes(berth: &Berth, child: Child, what: &str) -> String {
    let out = child.wait_with_output().expect("wait for berth");
    assert!(
        out.status.success(),
        "{what}: {}\n{}\nlog:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        berth.log()
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// An OCI layout tar holding `name`: a busybox layer with `mib` MiB of random bytes.
fn big_image(berth: &Berth, name: &str, mib: u64) -> std::path::PathBuf {
    let work = berth.dir.path();
    let big = work.join("big");
    busybox_rootfs(&big, "big");
    let data = std::fs::File::create(big.join("blob")).expect("create");
    let status = Command::new("head")
        .args(["-c", &(mib << 20).to_string(), "/dev/urandom"])
        .stdout(data)
        .status()
        .expect("head");
    assert!(status.success());
    let archive = work.join("big.tar");
    let image = LayoutImage { name, layers: std::slice::from_ref(&big), fake_diff_ids: None, index: None };
    layout_tar(work, &[image], &archive);
    std::fs::remove_dir_all(&big).expect("rm big");
    archive
}

fn checks_clean(berth: &Berth, ns: &str, name: &str) {
    let out = berth_ok(berth, &["-n", ns, "images", "check", name]);
    assert!(out.contains("\tcomplete\t") && out.contains("\tunpacked"), "{ns}: {out}");
    berth_ok(berth, &["content", "check"]);
}

#[test]
fn pulls_ride_through_content_metadata_snapshot_and_events_restarts() {
    let mut berth = Berth::start();
    let reg = Registry::start(None);
    let name = format!("{}/restarts/img:v1", reg.addr);
    let archive = big_image(&berth, &name, 160);
    {
        let pusher = Berth::start();
        berth_ok(&pusher, &["images", "import", "--no-unpack", archive.to_str().expect("utf8")]);
        berth_ok(&pusher, &["images", "push", "-q", &name]);
    }
    for (round, service) in ["content", "metadata", "snapshot", "events"].into_iter().enumerate() {
        let ns = format!("pull{round}");
        let mut child = spawn(&berth, &["-n", &ns, "images", "pull", "-q", "--parallel", "1", &name]);
        wait_for(&mut child, service, || ingest_offset(&berth, "pull-") > 8 << 20);
        let old = kill_service(&mut berth, service);
        finishes(&berth, child, &format!("pull with {service} (pid {old}) killed"));
        assert!(image_digest(&berth, &ns, &name).is_some(), "{service}: no image");
        checks_clean(&berth, &ns, &name);
        assert_eq!(ingest_offset(&berth, "pull-"), 0, "{service}: an ingest is left over");
    }
}

#[test]
fn import_and_push_ride_through_a_content_restart() {
    let mut berth = Berth::start();
    let reg = Registry::start(None);
    let name = format!("{}/restarts/imp:v1", reg.addr);
    let archive = big_image(&berth, &name, 160);

    let mut child = spawn(&berth, &["images", "import", archive.to_str().expect("utf8")]);
    wait_for(&mut child, "import", || ingest_offset(&berth, "import-") > 8 << 20);
    kill_service(&mut berth, "content");
    finishes(&berth, child, "import with content killed");
    checks_clean(&berth, "default", &name);
    assert_eq!(ingest_offset(&berth, "import-"), 0, "an ingest is left over");

    // The push streams each blob from an fd content passed: the kill lands while the
    // service is asked for a manifest or the next blob, or after; either way it completes.
    let child = spawn(&berth, &["images", "push", &name]);
    std::thread::sleep(Duration::from_millis(30));
    kill_service(&mut berth, "content");
    finishes(&berth, child, "push with content killed");
    // Likewise an export, with metadata killed under it.
    let out = berth.dir.path().join("export.tar");
    let child = spawn(&berth, &["images", "export", out.to_str().expect("utf8"), &name]);
    std::thread::sleep(Duration::from_millis(30));
    kill_service(&mut berth, "metadata");
    finishes(&berth, child, "export with metadata killed");
    assert!(std::fs::metadata(&out).is_ok_and(|m| m.len() > 160 << 20));
    let other = Berth::start();
    berth_ok(&other, &["images", "pull", "-q", &name]);
    checks_clean(&other, "default", &name);
}

#[test]
fn commit_rides_through_snapshot_and_content_restarts() {
    if !can_run("runc") {
        return;
    }
    let mut berth = Berth::start();
    import_busybox(&berth, "base", serde_json::json!({"Cmd": ["sh"]}));
    for c in ["c1", "c2"] {
        let o =
            berth.cli(&["run", "base", c, "dd", "if=/dev/urandom", "of=/srv/big", "bs=1048576", "count=48"]);
        assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    }
    // The diff of 48 MiB of random bytes takes a while: the kill lands inside it.
    let child = spawn(&berth, &["commit", "c1", "snap1"]);
    std::thread::sleep(Duration::from_millis(300));
    kill_service(&mut berth, "snapshot");
    finishes(&berth, child, "commit with snapshot killed");
    // Another container: the same one's diff is already stored, and would write nothing.
    let mut child = spawn(&berth, &["commit", "c2", "snap2"]);
    wait_for(&mut child, "commit", || ingest_offset(&berth, "diff-") > 0);
    kill_service(&mut berth, "content");
    finishes(&berth, child, "commit with content killed");
    for name in ["snap1", "snap2"] {
        let o = berth.cli(&["run", "--rm", name, &format!("r-{name}"), "sh", "-c", "wc -c < /srv/big"]);
        assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), (48 << 20).to_string(), "{}", show(&o));
        checks_clean(&berth, "default", name);
    }
    teardown(&berth);
}

#[test]
fn a_service_that_stays_down_ends_the_job_with_an_error_naming_both() {
    let berth = Berth::start();
    let reg = Registry::start(None);
    let name = format!("{}/restarts/down:v1", reg.addr);
    let archive = big_image(&berth, &name, 1);
    berth_ok(&berth, &["images", "import", "--no-unpack", archive.to_str().expect("utf8")]);
    berth_ok(&berth, &["images", "push", "-q", &name]);
    berth_ok(&berth, &["services", "stop", "content"]);
    let started = Instant::now();
    let out = berth.cli(&["--timeout", "2", "-n", "other", "images", "pull", "-q", &name]);
    let took = started.elapsed();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "pulled with content stopped: {err}");
    assert!(err.contains(&format!("pull {name}")) && err.contains("content service"), "{err}");
    assert!(took < Duration::from_secs(30), "took {took:?}: {err}");
    berth_ok(&berth, &["services", "start", "content"]);
}
