//! The fault campaign: a mixed workload (pulls from a local registry, imports, containers
//! run, exec'd, killed and deleted, event subscribers, GC) runs against one berthd while a
//! chaos loop SIGKILLs a random berth process every 0.3–2 s: a service, berthd itself
//! (started again as an init system would), or a container's shim. Afterwards nothing
//! committed may be lost: see docs/fault-campaign.md for the invariants checked.
//!
//! Then a storm: a service SIGKILLed every 0.2–0.6 s for `BERTH_STORM_SECS` (60 s by
//! default), not waiting for recovery, under the launcher's real crash-loop limit.
//!
//! `BERTH_CAMPAIGN_SECS` sets the chaos time (60 s by default), `BERTH_CAMPAIGN_SEED` the
//! random seed; `bench/soak.sh` runs it for hours. The report prints with `--nocapture`.

mod campaign;
mod runtime_support;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use berth_system_tests::dist::{LayoutImage, Registry, berth_ok, busybox_rootfs, have, layout_tar};
use berth_system_tests::{Berth, bin, identity_alive, process_identity};
use berth_system_tests::{mounts_under, processes_with};
use campaign::events::Subscriber;
use campaign::{Rng, Shared, chaos, ok, storm, workload};
use runtime_support::{can_run, import_busybox, teardown};

/// The real crash-loop limit (5 failed starts in 10 s): deaths after serving must not count
/// toward it. The back-off stays short and a failed service is retried after 5 s, so the
/// campaign measures recovery, not waiting.
const CONFIG: &str = "[supervisor]\nbackoff_max_s = 1\nfailed_retry_s = 5\n";

/// The exiters' command: exit 7 once `/tmp/stop` exists.
const EXITER: &str = "while [ ! -e /tmp/stop ]; do sleep 0.05; done; exit 7";

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok()?.parse().ok()
}

/// A layer directory holding `size` random bytes in `data/<name>` (incompressible).
fn random_layer(work: &Path, name: &str, size: usize, rng: &Rng) -> PathBuf {
    let dir = work.join(name);
    std::fs::create_dir_all(dir.join("data")).expect("mkdir layer");
    let bytes: Vec<u8> = (0..size / 8).flat_map(|_| rng.next().to_le_bytes()).collect();
    std::fs::write(dir.join("data").join(name), bytes).expect("write layer data");
    dir
}

/// Three 3-layer images pushed to the registry (and removed locally again), and three
/// 2-layer import archives; all share the busybox base layer.
fn make_images(berth: &Berth, reg: &Registry, rng: &Rng) -> (Vec<String>, Vec<(String, String)>) {
    let work = berth.dir.path().join("work");
    let base = work.join("base");
    busybox_rootfs(&base, "campaign");
    let mut pulls = Vec::new();
    let mut layers = Vec::new();
    for i in 0..3 {
        pulls.push(format!("{}/campaign/img{i}:v1", reg.addr));
        layers.push(vec![
            base.clone(),
            random_layer(&work, &format!("p{i}a"), 2 << 20, rng),
            random_layer(&work, &format!("p{i}b"), 256 << 10, rng),
        ]);
    }
    let images: Vec<LayoutImage<'_>> = pulls
        .iter()
        .zip(&layers)
        .map(|(name, layers)| LayoutImage { name, layers, fake_diff_ids: None, index: None })
        .collect();
    let seed = work.join("seed.tar");
    layout_tar(&work, &images, &seed);
    berth_ok(berth, &["-n", "seed", "images", "import", seed.to_str().expect("utf8")]);
    for name in &pulls {
        berth_ok(berth, &["-n", "seed", "images", "push", "--quiet", name]);
    }
    let mut rm = vec!["-n", "seed", "images", "rm", "--sync"];
    rm.extend(pulls.iter().map(String::as_str));
    berth_ok(berth, &rm);
    let mut archives = Vec::new();
    for j in 0..3 {
        let name = format!("docker.io/campaign/imp{j}:v1");
        let layers = vec![base.clone(), random_layer(&work, &format!("i{j}"), 1 << 20, rng)];
        let file = work.join(format!("imp{j}.tar"));
        layout_tar(
            &work,
            &[LayoutImage { name: &name, layers: &layers, fake_diff_ids: None, index: None }],
            &file,
        );
        archives.push((file.to_string_lossy().into_owned(), name));
    }
    (pulls, archives)
}

fn init_pid(state: &Path, id: &str) -> u32 {
    let path = state.join("tasks/default").join(id).join("init.pid");
    std::fs::read_to_string(&path).expect("init.pid").trim().parse().expect("pid")
}

#[test]
fn fault_campaign() {
    if !can_run("runc") {
        return;
    }
    if !have("docker-registry") {
        eprintln!("skipped: docker-registry is missing");
        return;
    }
    let secs = env_u64("BERTH_CAMPAIGN_SECS").unwrap_or(60);
    let storm_secs = env_u64("BERTH_STORM_SECS").unwrap_or(60);
    let seed = env_u64("BERTH_CAMPAIGN_SEED").unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(1, |d| d.as_nanos() as u64)
    });
    println!("fault campaign: {secs} s, seed {seed} (BERTH_CAMPAIGN_SEED={seed} replays the choices)");
    let rng = Rng::new(seed);
    let mut berth = Berth::start_with(CONFIG);
    let reg = Registry::start(None);
    let (pulls, archives) = make_images(&berth, &reg, &rng);
    import_busybox(&berth, "tiny", serde_json::json!({"Cmd": ["sh"]}));
    let shared = Arc::new(Shared::new(berth.state.clone(), bin("berth")));

    // Long-lived containers: keepers must run throughout, exiters exit 7 mid-way, victims
    // may lose their shim.
    let keepers: Vec<String> = (0..3).map(|i| format!("k{i}")).collect();
    let victims: Vec<String> = (0..2).map(|i| format!("v{i}")).collect();
    let exiters: Vec<String> = (0..2).map(|i| format!("x{i}")).collect();
    for id in keepers.iter().chain(&victims) {
        berth_ok(&berth, &["run", "-d", "tiny", id, "sleep", "100000"]);
    }
    for id in &exiters {
        berth_ok(&berth, &["run", "-d", "tiny", id, "sh", "-c", EXITER]);
    }
    // Each init as (pid, start time): after hours of churn its pid may be another process's.
    let long: Vec<(String, (u32, u64))> = keepers
        .iter()
        .chain(&victims)
        .chain(&exiters)
        .map(|id| (id.clone(), process_identity(init_pid(&berth.state, id)).expect("a long-lived init runs")))
        .collect();
    shared.init_pids.lock().expect("pids").extend(long.iter().map(|(_, init)| *init));

    let mut subs = vec![Subscriber::start(shared.clone(), Some(1))];
    let start = Instant::now();
    let workers = [0u64, 1, 2, 3, 4].map(|w| Rng::new(seed ^ (w + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15)));
    std::thread::scope(|s| {
        let [r0, r1, r2, r3, r4] = &workers;
        let sh = &*shared;
        let (p, a, k) = (&pulls, &archives, &keepers);
        let handles = vec![
            s.spawn(move || workload::puller(sh, r0, "pull0", p)),
            s.spawn(move || workload::puller(sh, r1, "pull1", p)),
            s.spawn(move || workload::importer(sh, r2, "imp", a)),
            s.spawn(move || workload::runner(sh, r3, k)),
            s.spawn(move || workload::gc(sh, r4)),
        ];
        let mid = start + Duration::from_secs(secs / 2);
        chaos::run(&mut berth, &shared, &rng, mid);
        for id in &exiters {
            let _ = std::fs::write(berth.state.join("tasks/default").join(id).join("rootfs/tmp/stop"), b"");
        }
        subs.push(Subscriber::start(shared.clone(), None));
        chaos::run(&mut berth, &shared, &rng, start + Duration::from_secs(secs));
        let down = chaos::settle(&mut berth);
        if down > 0 {
            shared.violation(format!("{down} services not running 60 s after the chaos"));
        }
        let storm_start = Instant::now();
        let kills = storm::run(&mut berth, &shared, &rng, storm_start + Duration::from_secs(storm_secs));
        storm::check_rate(&shared, kills, storm_start.elapsed());
        let t = Instant::now();
        let down = chaos::settle(&mut berth);
        if down > 0 {
            shared.violation(format!("{down} services not running 60 s after the storm"));
        }
        println!("storm: {} services down {:.1} s after it", down, t.elapsed().as_secs_f64());
        shared.stop.store(true, Ordering::SeqCst);
        for h in handles {
            h.join().expect("worker");
        }
    });
    println!("workload finished {:.1} s after the chaos began", start.elapsed().as_secs_f64());

    check_stores(&shared, &["pull0", "pull1", "imp", "default"]);
    check_containers(&shared, &long);
    let n = campaign::events::check(&shared, &berth.clients(Duration::from_secs(30)), &mut subs);
    shared.tally.lock().expect("tally").ops.insert("events-logged".into(), n as u64);
    check_teardown(&shared, &mut berth);
    teardown(&berth);
    let tally = shared.tally.lock().expect("tally");
    campaign::report(&tally, secs, seed);
    if !tally.violations.is_empty() {
        let keep = std::env::temp_dir().join(format!("berth-campaign-{seed}.log"));
        let _ = std::fs::write(&keep, berth.log());
        println!("berthd's log kept in {}", keep.display());
    }
    assert!(tally.violations.is_empty(), "{} invariants broken (see above)", tally.violations.len());
}

/// `content check` clean; every image of `namespaces` complete and unpacked, before and
/// after one more GC pass.
fn check_stores(shared: &Shared, namespaces: &[&str]) {
    let content = shared.retry("content-check", || {
        let o = shared.cli(&["content", "check"]);
        if o.status.success() || !o.stdout.is_empty() { Ok(o) } else { Err(format!("{:?}", o.status)) }
    });
    if let Some(o) = content
        && !o.status.success()
    {
        shared.violation(format!("content check: {}", String::from_utf8_lossy(&o.stdout).trim()));
    }
    for pass in ["before", "after"] {
        if pass == "after" {
            shared.retry("gc", || ok(shared.cli(&["gc"])));
        }
        for ns in namespaces {
            let out = shared.retry("image-check", || {
                let o = shared.cli(&["-n", ns, "images", "check"]);
                if o.stdout.is_empty() && !o.status.success() {
                    ok(o)
                } else {
                    Ok(String::from_utf8_lossy(&o.stdout).into_owned())
                }
            });
            let Some(out) = out else { continue };
            for line in out.lines().filter(|l| !l.starts_with(' ')) {
                if !line.contains("\tcomplete\t") || line.contains("not unpacked") {
                    shared.violation(format!("{pass} the last gc, {ns}: {line}"));
                }
            }
        }
    }
}

/// Keepers still run their first process; exiters report 7; victims run, or (shim killed)
/// report 255 with their process gone.
fn check_containers(shared: &Shared, long: &[(String, (u32, u64))]) {
    let Some(out) = shared.retry("tasks-ls", || ok(shared.cli(&["--format", "json", "tasks", "ls"]))) else {
        return;
    };
    let list: serde_json::Value = serde_json::from_str(&out).expect("tasks json");
    let killed = shared.shim_killed.lock().expect("shim set").clone();
    for (id, init) in long {
        let pid = &init.0;
        let Some(t) = list.as_array().and_then(|l| l.iter().find(|t| t["id"] == id.as_str())) else {
            shared.violation(format!("container {id}: task gone"));
            continue;
        };
        let (status, exit) = (t["status"].as_str().unwrap_or(""), t["exit_status"].as_u64());
        let fine = match id.as_bytes()[0] {
            b'x' => status == "stopped" && exit == Some(7),
            b'v' if killed.contains(id) => status == "stopped" && exit == Some(255) && !identity_alive(*init),
            _ => status == "running" && identity_alive(*init) && t["pid"] == *pid,
        };
        if !fine {
            let alive = identity_alive(*init);
            shared.violation(format!("container {id}: {t} (init pid {pid} alive: {alive})"));
        }
    }
}

/// Every container removed through the CLI, berthd stopped: no container process, no
/// berth process, no mount under the temp dir, no zombie child left.
fn check_teardown(shared: &Shared, berth: &mut Berth) {
    if let Some(out) = shared.retry("tasks-ls", || ok(shared.cli(&["--format", "json", "tasks", "ls"]))) {
        let list: serde_json::Value = serde_json::from_str(&out).expect("tasks json");
        for t in list.as_array().into_iter().flatten() {
            let id = t["id"].as_str().unwrap_or("");
            shared.retry("container-rm", || ok(shared.cli(&["containers", "rm", "--force", id])));
        }
    }
    berth.stop();
    std::thread::sleep(Duration::from_millis(200));
    let pids = shared.init_pids.lock().expect("pids").clone();
    let alive: Vec<u32> = pids.into_iter().filter(|p| identity_alive(*p)).map(|(pid, _)| pid).collect();
    if !alive.is_empty() {
        shared.violation(format!("container processes left: {alive:?}"));
    }
    let procs: Vec<String> = processes_with(&berth.dir.path().to_string_lossy())
        .into_iter()
        .map(|p| {
            let cmd = std::fs::read(format!("/proc/{p}/cmdline")).unwrap_or_default();
            format!("{p}: {}", String::from_utf8_lossy(&cmd).replace('\0', " "))
        })
        .collect();
    if !procs.is_empty() {
        shared.violation(format!("processes left with the temp root in their command line: {procs:?}"));
    }
    let mounts = mounts_under(berth.dir.path());
    if !mounts.is_empty() {
        shared.violation(format!("mounts left: {mounts:?}"));
    }
    let me = std::process::id().to_string();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let stat = std::fs::read_to_string(e.path().join("stat")).unwrap_or_default();
        let fields: Vec<&str> = stat.rsplit(')').next().unwrap_or("").split_whitespace().collect();
        if fields.first() == Some(&"Z") && fields.get(1) == Some(&me.as_str()) {
            shared.violation(format!("zombie child: {}", stat.trim()));
        }
    }
}
