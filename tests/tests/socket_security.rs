//! Who can reach berth's sockets: every socket and directory under the state dir has the
//! mode DESIGN.md gives (state 0711, other dirs 0700, sockets 0660 with the berth group,
//! else 0600); a non-root uid outside the group cannot connect to any of them, shim sockets
//! of a running container included; a container, even with the host's network, sees none
//! of them; and no berth process holds an abstract socket (which a `--net-host` container
//! could reach).

mod runtime_support;

use std::collections::BTreeSet;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use berth_system_tests::{Berth, bin_dir};
use runtime_support::{can_run, import_busybox, out, show};

/// Every socket under `dir`, and every directory (dir itself included).
fn walk(dir: &Path) -> (Vec<PathBuf>, Vec<PathBuf>) {
    let (mut socks, mut dirs) = (Vec::new(), vec![dir.to_path_buf()]);
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let Ok(ft) = e.file_type() else { continue };
            if ft.is_dir() {
                dirs.push(e.path());
                stack.push(e.path());
            } else if ft.is_socket() {
                socks.push(e.path());
            }
        }
    }
    (socks, dirs)
}

/// Whether others can reach `p` (every dir from `top` down to its parent searchable by them).
fn reachable(top: &Path, p: &Path) -> bool {
    let mut dir = p.parent();
    while let Some(d) = dir {
        if mode(d) & 0o001 == 0 {
            return false;
        }
        if d == top {
            return true;
        }
        dir = d.parent();
    }
    true
}

fn mode(p: &Path) -> u32 {
    std::fs::symlink_metadata(p).expect("stat").permissions().mode() & 0o7777
}

/// Runs this test binary's `probe` as `uid:gid` against each of `paths`; returns its output.
fn run_probe(uid: u32, gid: u32, paths: &[PathBuf]) -> String {
    let exe = std::env::current_exe().expect("exe");
    let list: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
    let o = Command::new(exe)
        .args(["--exact", "probe", "--nocapture", "--test-threads", "1"])
        .env("BERTH_PROBE_PATHS", list.join("\n"))
        .uid(uid)
        .gid(gid)
        .output()
        .expect("run probe");
    let text = out(&o);
    assert!(text.contains("PROBE-DONE"), "probe did not run: {}", show(&o));
    text
}

/// The paths the probe, as `uid:gid`, could connect to.
fn probe_as(uid: u32, gid: u32, paths: &[PathBuf]) -> Vec<String> {
    let text = run_probe(uid, gid, paths);
    text.lines().filter_map(|l| l.strip_prefix("CONNECTED ")).map(String::from).collect()
}

/// Not a test on its own: the body of [`probe_as`]'s child.
#[test]
fn probe() {
    let Ok(paths) = std::env::var("BERTH_PROBE_PATHS") else { return };
    for p in paths.lines() {
        match std::os::unix::net::UnixStream::connect(p) {
            Ok(s) => {
                println!("CONNECTED {p}");
                if let Some(reply) = shim_state(s) {
                    println!("SERVED {p}: {reply}");
                }
            }
            Err(e) => println!("REFUSED {p}: {e}"),
        }
    }
    println!("PROBE-DONE");
}

/// Sends a shim `State` request on `s`; the reply line, if one comes within 3 s.
fn shim_state(s: std::os::unix::net::UnixStream) -> Option<String> {
    use std::io::{BufRead, Write};
    s.set_read_timeout(Some(std::time::Duration::from_secs(3))).ok()?;
    (&s).write_all(b"\"State\"\n").ok()?;
    let mut line = String::new();
    std::io::BufReader::new(&s).read_line(&mut line).ok()?;
    (!line.is_empty()).then(|| line.trim().to_string())
}

/// The paths that answered the probe's shim request, made as `uid:gid`.
fn served_as(uid: u32, gid: u32, paths: &[PathBuf]) -> Vec<String> {
    let text = run_probe(uid, gid, paths);
    println!("{text}");
    text.lines().filter_map(|l| l.strip_prefix("SERVED ")).map(String::from).collect()
}

/// Whether uid 65534 can reach this test binary; prints why not.
fn probe_possible() -> bool {
    if !nix::unistd::geteuid().is_root() {
        println!("skipped: needs root");
        return false;
    }
    let exe = std::env::current_exe().expect("exe");
    let mut dir = exe.parent();
    while let Some(d) = dir {
        if mode(d) & 0o001 == 0 {
            println!("skipped: {} is not traversable by other users", d.display());
            return false;
        }
        dir = d.parent();
    }
    true
}

#[test]
fn modes_and_strangers() {
    if !probe_possible() || !can_run("runc") {
        return;
    }
    // A group that exists here and that uid 65534 is not in; a member is a positive control.
    let group = nix::unistd::Group::from_name("daemon").expect("getgrnam").expect("group daemon");
    let berth = Berth::start_with("group = \"daemon\"\n");
    import_busybox(&berth, "sock", serde_json::json!({"Cmd": ["sleep", "300"]}));
    let o = berth.cli(&["run", "-d", "sock", "sleeper"]);
    assert!(o.status.success(), "{}", show(&o));
    // Let other users traverse the temp dir, so that berth's own modes are what stands.
    std::fs::set_permissions(berth.dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");

    let (socks, dirs) = walk(&berth.state);
    let names: BTreeSet<String> =
        socks.iter().filter_map(|s| s.file_name()).map(|n| n.to_string_lossy().into_owned()).collect();
    for want in
        ["berthd.sock", "content.sock", "metadata.sock", "snapshot.sock", "runtime.sock", "events.sock"]
    {
        assert!(names.contains(want), "{want} missing: {names:?}");
    }
    let shim_socks: Vec<&PathBuf> =
        socks.iter().filter(|s| s.strip_prefix(&berth.state).is_ok_and(|r| r.starts_with("tasks"))).collect();
    assert!(!shim_socks.is_empty(), "no shim socket under tasks/: {socks:?}");
    assert_eq!(mode(&berth.state), 0o711, "state dir");
    // Berth's dirs are 0700; dirs the OCI runtime makes (runc's own 0711 state dirs) sit
    // below one of them, out of reach.
    for d in dirs.iter().filter(|d| **d != berth.state) {
        assert!(mode(d) & 0o077 == 0 || !reachable(&berth.state, d), "{} is mode {:o}", d.display(), mode(d));
    }
    for s in &socks {
        let m = std::fs::metadata(s).expect("stat");
        if shim_socks.contains(&s) {
            assert_eq!(mode(s) & 0o007, 0, "{} is mode {:o}", s.display(), mode(s));
        } else {
            assert_eq!(mode(s), 0o660, "{}", s.display());
            assert_eq!(m.gid(), group.gid.as_raw(), "{} group", s.display());
        }
    }
    let (_, root_dirs) = walk(&berth.root);
    for d in &root_dirs {
        assert!(mode(d) & 0o077 == 0 || !reachable(&berth.root, d), "{} is mode {:o}", d.display(), mode(d));
    }

    let stranger = probe_as(65534, 65534, &socks);
    assert!(stranger.is_empty(), "uid 65534 connected to {stranger:?}");
    // A member of the group reaches the service sockets (the probe works), not the shims'.
    let member = probe_as(65534, group.gid.as_raw(), &socks);
    assert!(member.iter().any(|s| s.ends_with("content.sock")), "member refused: {member:?}");
    for s in &shim_socks {
        assert!(!member.contains(&s.display().to_string()), "member reached shim socket {}", s.display());
    }
    remove_container(&berth, "sleeper");
}

/// Kills container `id`, waits for it, deletes its task (which ends its shim) and removes it.
fn remove_container(berth: &Berth, id: &str) {
    let _ = berth.cli(&["tasks", "kill", "--signal", "KILL", id]);
    let _ = berth.cli(&["tasks", "wait", id]);
    let deleted = berth.cli(&["tasks", "delete", id]);
    let removed = berth.cli(&["containers", "rm", id]);
    assert!(
        deleted.status.success() && removed.status.success(),
        "{id} not cleaned up: {}{}",
        show(&deleted),
        show(&removed)
    );
}

/// Inodes of abstract unix sockets in this network namespace.
fn abstract_inodes() -> BTreeSet<u64> {
    std::fs::read_to_string("/proc/net/unix")
        .unwrap_or_default()
        .lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() >= 8 && f[7].starts_with('@')).then(|| f[6].parse().ok()).flatten()
        })
        .collect()
}

/// Pids of berth's own processes (launcher, services, shims): their executable is one of
/// the built binaries.
fn berth_pids() -> Vec<u32> {
    let dir = bin_dir();
    std::fs::read_dir("/proc")
        .expect("proc")
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| std::fs::read_link(format!("/proc/{pid}/exe")).is_ok_and(|x| x.starts_with(&dir)))
        .filter(|pid| *pid != std::process::id())
        .collect()
}

#[test]
fn containers_cannot_reach_sockets() {
    if !can_run("runc") {
        return;
    }
    let berth = Berth::start();
    import_busybox(&berth, "reach", serde_json::json!({"Cmd": ["sh"]}));
    let o = berth.cli(&["run", "-d", "reach", "bg", "sleep", "300"]);
    assert!(o.status.success(), "{}", show(&o));
    let (socks, _) = walk(&berth.state);
    let state = berth.state.display().to_string();
    let script = format!(
        "ls -la {state} 2>&1; echo ---; /bin/busybox find / -xdev -type s 2>/dev/null; echo ---; \
         for s in {}; do test -e $s && echo VISIBLE $s; done; true",
        socks.iter().map(|s| s.display().to_string()).collect::<Vec<_>>().join(" ")
    );
    for net in [&["--net-host"][..], &[][..]] {
        let mut args = vec!["run", "--rm"];
        args.extend_from_slice(net);
        args.extend(["reach", "probe", "sh", "-c", &script]);
        let o = berth.cli(&args);
        assert!(o.status.success(), "{}", show(&o));
        let text = out(&o);
        assert!(!text.contains("VISIBLE"), "{net:?}: {text}");
        assert!(text.contains("No such file"), "{net:?}: state dir visible: {text}");
        for s in &socks {
            let name = s.file_name().expect("name").to_string_lossy().into_owned();
            let found = text.split("---").nth(1).unwrap_or_default();
            assert!(!found.contains(&name), "{net:?}: {name} seen in the container: {found}");
        }
    }
    // No berth process (launcher, services, shims) holds an abstract socket.
    let abs = abstract_inodes();
    let pids = berth_pids();
    assert!(pids.len() >= 6, "berth processes: {pids:?}");
    for pid in pids {
        for fd in std::fs::read_dir(format!("/proc/{pid}/fd")).into_iter().flatten().flatten() {
            let link = std::fs::read_link(fd.path()).unwrap_or_default().to_string_lossy().into_owned();
            if let Some(ino) = link.strip_prefix("socket:[").and_then(|s| s.strip_suffix(']'))
                && let Ok(ino) = ino.parse::<u64>()
            {
                assert!(!abs.contains(&ino), "pid {pid} holds abstract socket {ino}");
            }
        }
    }
    remove_container(&berth, "bg");
}

#[test]
fn loose_or_foreign_state_dir() {
    if !nix::unistd::geteuid().is_root() {
        println!("skipped: needs root");
        return;
    }
    // Left world-writable between two runs: tightened on the next start.
    let mut berth = Berth::start();
    berth.stop();
    std::fs::set_permissions(&berth.state, std::fs::Permissions::from_mode(0o777)).expect("chmod");
    berth.launch();
    assert_eq!(mode(&berth.state), 0o711, "state dir left loose");
    // Owned by someone else: refused, naming the dir.
    let dir = tempfile::Builder::new().prefix("berth-foreign-").tempdir().expect("tempdir");
    let state = dir.path().join("state");
    std::fs::create_dir(&state).expect("mkdir");
    nix::unistd::chown(&state, Some(nix::unistd::Uid::from_raw(65534)), None).expect("chown");
    let mut child = Command::new(bin_dir().join("berthd"))
        .arg("--root")
        .arg(dir.path().join("root"))
        .arg("--state")
        .arg(&state)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run berthd");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while child.try_wait().expect("wait").is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let o = child.wait_with_output().expect("berthd output");
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "berthd ran on a foreign state dir: {}", show(&o));
    assert!(e.contains("owned by uid 65534"), "{e}");
    assert!(walk(&state).0.is_empty(), "sockets made in a foreign state dir");
}

#[test]
fn shim_refuses_strangers_even_when_reachable() {
    if !probe_possible() || !can_run("runc") {
        return;
    }
    let berth = Berth::start();
    import_busybox(&berth, "shim", serde_json::json!({"Cmd": ["sleep", "300"]}));
    let o = berth.cli(&["run", "-d", "shim", "target"]);
    assert!(o.status.success(), "{}", show(&o));
    let (socks, _) = walk(&berth.state);
    let shim: Vec<PathBuf> = socks
        .into_iter()
        .filter(|s| s.strip_prefix(&berth.state).is_ok_and(|r| r.starts_with("tasks")))
        .collect();
    assert!(!shim.is_empty(), "no shim socket");
    // Root is served (the request is right)...
    let sock = std::os::unix::net::UnixStream::connect(&shim[0]).expect("connect as root");
    assert!(shim_state(sock).is_some_and(|r| !r.is_empty()), "root not served");
    // ...and a stranger is not, even with every dir and the socket opened up.
    std::fs::set_permissions(berth.dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    for s in &shim {
        let mut p = s.parent();
        while let Some(d) = p.filter(|d| d.starts_with(&berth.state)) {
            std::fs::set_permissions(d, std::fs::Permissions::from_mode(mode(d) | 0o005)).expect("chmod dir");
            p = d.parent();
        }
        std::fs::set_permissions(s, std::fs::Permissions::from_mode(0o666)).expect("chmod socket");
    }
    let served = served_as(65534, 65534, &shim);
    assert!(served.is_empty(), "a stranger drove the shim: {served:?}");
    remove_container(&berth, "target");
}
