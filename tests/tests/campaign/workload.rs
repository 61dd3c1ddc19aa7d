//! The mixed workload, one thread each: pullers, an importer, a container runner (run -d,
//! exec, kill, wait, delete, rm; execs into the long-lived containers too) and a GC loop.
//! Every operation is retried until it completes; a wrong answer is a violation.

use std::time::Duration;

use berth_system_tests::process_identity;

use super::{Rng, Shared, ok};

/// Pulls `images` into namespace `ns` at random, checks each, and removes half of them
/// again (with a GC pass), so later pulls fetch again while the other puller holds leases.
pub fn puller(shared: &Shared, rng: &Rng, ns: &str, images: &[String]) {
    while !shared.stopping() {
        let name = &images[rng.below(images.len() as u64) as usize];
        if shared.retry("pull", || ok(shared.cli(&["-n", ns, "images", "pull", "--quiet", name]))).is_none() {
            continue;
        }
        check_image(shared, ns, name);
        if rng.below(2) == 0 {
            shared.retry("image-rm", || rm_image(shared, ns, name));
        }
    }
}

/// Imports the archives (`(file, image name)`) into namespace `ns` at random, like
/// [`puller`].
pub fn importer(shared: &Shared, rng: &Rng, ns: &str, archives: &[(String, String)]) {
    while !shared.stopping() {
        let (file, name) = &archives[rng.below(archives.len() as u64) as usize];
        if shared.retry("import", || ok(shared.cli(&["-n", ns, "images", "import", file]))).is_none() {
            continue;
        }
        check_image(shared, ns, name);
        if rng.below(2) == 0 {
            shared.retry("image-rm", || rm_image(shared, ns, name));
        }
    }
}

fn rm_image(shared: &Shared, ns: &str, name: &str) -> Result<(), String> {
    match ok(shared.cli(&["-n", ns, "images", "rm", "--sync", name])) {
        Err(e) if e.contains("not found") => Ok(()),
        other => other.map(|_| ()),
    }
}

/// `berth images check NAME`: a violation unless complete and unpacked.
pub fn check_image(shared: &Shared, ns: &str, name: &str) {
    let out = shared.retry("image-check", || {
        let o = shared.cli(&["-n", ns, "images", "check", name]);
        let out = String::from_utf8_lossy(&o.stdout).into_owned();
        if out.is_empty() { ok(o) } else { Ok(out) }
    });
    if let Some(out) = out
        && (!out.contains("\tcomplete\t") || out.contains("not unpacked"))
    {
        shared.violation(format!("image {ns}/{name} after it was stored: {}", out.trim()));
    }
}

/// Runs GC every 1–3 s.
pub fn gc(shared: &Shared, rng: &Rng) {
    while !shared.stopping() {
        std::thread::sleep(rng.millis(1000, 3000));
        match ok(shared.cli(&["gc"])) {
            Ok(_) => shared.op("gc"),
            Err(_) => shared.retry_of("gc"),
        }
    }
}

/// Churns containers `c0`, `c1`, …: run -d, a few execs, SIGKILL, wait (137, or 255 if
/// its shim was killed), delete, rm; between them an exec into one of `keepers`.
pub fn runner(shared: &Shared, rng: &Rng, keepers: &[String]) {
    let mut n = 0u64;
    while !shared.stopping() {
        let id = format!("c{n}");
        churn(shared, rng, &id);
        let keeper = &keepers[rng.below(keepers.len() as u64) as usize];
        exec(shared, keeper, n);
        n += 1;
    }
}

fn shim_killed(shared: &Shared, id: &str) -> bool {
    shared.shim_killed.lock().expect("shim set").contains(id)
}

fn task_status(shared: &Shared, id: &str) -> Option<(String, Option<u64>)> {
    let out = ok(shared.cli(&["--format", "json", "tasks", "ls"])).ok()?;
    let list: serde_json::Value = serde_json::from_str(&out).ok()?;
    let t = list.as_array()?.iter().find(|t| t["id"] == id)?;
    Some((t["status"].as_str()?.to_string(), t["exit_status"].as_u64()))
}

/// Removes whatever a failed `run` left of `id`.
fn reset(shared: &Shared, id: &str) -> Result<(), String> {
    match ok(shared.cli(&["containers", "rm", "--force", id])) {
        Err(e) if !e.contains(&format!("container {id}: not found")) => return Err(e),
        _ => {}
    }
    let _ = shared.cli(&["tasks", "kill", "-s", "KILL", id]);
    match ok(shared.cli(&["tasks", "delete", id])) {
        Err(e) if !e.contains("not found") => Err(e),
        _ => Ok(()),
    }
}

fn churn(shared: &Shared, rng: &Rng, id: &str) {
    let started =
        shared.retry("run", || match ok(shared.cli(&["run", "-d", "tiny", id, "sleep", "100000"])) {
            Ok(_) => Ok(()),
            // The reply may be what was lost: the task may run.
            Err(e) if matches!(task_status(shared, id), Some((s, _)) if s == "running") => {
                shared.retry_of("run-reply-lost");
                let _ = e;
                Ok(())
            }
            Err(e) => {
                reset(shared, id)?;
                Err(e)
            }
        });
    if started.is_none() {
        return;
    }
    let pid = std::fs::read_to_string(shared.state.join("tasks/default").join(id).join("init.pid"));
    if let Some(identity) = pid.ok().and_then(|p| p.trim().parse().ok()).and_then(process_identity) {
        shared.init_pids.lock().expect("pids").insert(identity);
    }
    for j in 0..rng.below(3) {
        if shim_killed(shared, id) {
            break;
        }
        exec(shared, id, j);
    }
    std::thread::sleep(rng.millis(0, 500));
    shared.retry("kill", || match ok(shared.cli(&["tasks", "kill", "-s", "KILL", id])) {
        Err(e) if !e.contains("not running") && !e.contains("not found") && !e.contains("has no task") => {
            Err(e)
        }
        _ => Ok(()),
    });
    let status = shared.retry("wait", || {
        let o = shared.cli(&["tasks", "wait", id]);
        match o.status.code() {
            Some(c) if c != 1 && o.stderr.is_empty() => Ok(c),
            _ => Err(String::from_utf8_lossy(&o.stderr).into_owned()),
        }
    });
    let allowed = |s: i32| s == 137 || (s == 255 && shim_killed(shared, id));
    if let Some(s) = status
        && !allowed(s)
    {
        shared.violation(format!("container {id}: SIGKILLed, wait says {s}"));
    }
    let deleted = shared.retry("delete", || match ok(shared.cli(&["tasks", "delete", id])) {
        Ok(out) => Ok(out.split_whitespace().nth(1).and_then(|s| s.parse::<i32>().ok())),
        Err(e) if e.contains("not found") => Ok(None),
        Err(e) => Err(e),
    });
    if let (Some(Some(d)), Some(s)) = (deleted, status)
        && d != s
    {
        shared.violation(format!("container {id}: wait said {s}, delete says {d}"));
    }
    shared.retry("container-rm", || match ok(shared.cli(&["containers", "rm", id])) {
        Err(e) if !e.contains("not found") => Err(e),
        _ => Ok(()),
    });
}

/// Execs `echo` in `id` (a new exec id per attempt); the output must come back.
fn exec(shared: &Shared, id: &str, n: u64) {
    let mut attempt = 0;
    let word = format!("hi-{id}-{n}");
    let out = shared.retry("exec", || {
        attempt += 1;
        let exec_id = format!("e{n}a{attempt}");
        if shim_killed(shared, id) && id.starts_with('c') {
            return Ok(None);
        }
        ok(shared.cli(&["tasks", "exec", "--exec-id", &exec_id, id, "echo", &word])).map(Some)
    });
    if let Some(Some(out)) = out
        && out.trim() != word
    {
        shared.violation(format!("exec in {id}: printed {out:?}, not {word:?}"));
    }
    std::thread::sleep(Duration::from_millis(10));
}
