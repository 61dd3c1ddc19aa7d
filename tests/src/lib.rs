//! The system-test harness: boots `berthd` and every service in a temp root, as a user
//! would, and cleans up after itself (services stopped, every pid it saw killed, temp dirs
//! removed). It never touches `/var/lib/berth` or `/run/berth`.
//!
//! The binaries must be built first (`cargo build --workspace --bins`, which the README's
//! test command does); they are looked up next to the test executable.

pub mod cri;
pub mod dist;
pub mod hostile;
pub mod hostnet;
pub mod streaming;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use berth_client::Services;
use berth_ipc::ClientOptions;
use berth_ipc::launcher::{ListServices, ServiceState, ServiceStatus};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// Every service, in start order.
pub const SERVICES: [&str; 6] = ["events", "content", "snapshot", "metadata", "runtime", "cri"];

/// The directory holding the built binaries (`target/<profile>`).
pub fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/<test> -> target/<profile>
    let dir = exe.parent().and_then(Path::parent).expect("target dir").to_path_buf();
    assert!(
        dir.join("berthd").exists(),
        "{} has no berthd: run `cargo build --workspace --bins` before the system tests",
        dir.display()
    );
    dir
}

/// A path to one built binary.
pub fn bin(name: &str) -> PathBuf {
    bin_dir().join(name)
}

/// A running berth: `berthd` and its services in a temp root.
pub struct Berth {
    /// Holds the temp dir alive; removed on drop.
    pub dir: tempfile::TempDir,
    /// `<dir>/root`.
    pub root: PathBuf,
    /// `<dir>/state`.
    pub state: PathBuf,
    /// The config file given to berthd.
    pub config: PathBuf,
    /// Extra environment for berthd, and so for every service, from the next [`Berth::launch`]
    /// on. When it is not empty berthd leads a process group of its own, so that a power cut
    /// by a failpoint (`kill(-pgid)`, see `berth_ipc::failpoint`) takes berth and nothing else.
    pub env: Vec<(String, String)>,
    launcher: Option<Child>,
    seen_pids: Vec<u32>,
}

impl Berth {
    /// Starts berthd with the default configuration and waits until every service runs.
    pub fn start() -> Berth {
        Berth::start_with("")
    }

    /// Starts berthd with extra TOML configuration and waits until no service is starting.
    pub fn start_with(toml: &str) -> Berth {
        let dir = tempfile::Builder::new().prefix("berth-test-").tempdir().expect("tempdir");
        let root = dir.path().join("root");
        let state = dir.path().join("state");
        let config = dir.path().join("berth.toml");
        // Never the host's CNI conf dir, and no default network written: a test that wants a
        // network brings its own `[network]`, with a bridge and subnet of its own.
        let toml = if toml.contains("[network]") {
            toml.to_string()
        } else {
            let conf = dir.path().join("cni-conf");
            format!("{toml}\n[network]\nconf_dir = {:?}\nwrite_default = false\n", conf.display().to_string())
        };
        std::fs::write(&config, toml).expect("write config");
        let mut berth =
            Berth { dir, root, state, config, env: Vec::new(), launcher: None, seen_pids: Vec::new() };
        berth.launch();
        berth
    }

    /// Starts (again) a berthd on this root and state, and waits for it to settle.
    pub fn launch(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("berthd.log"))
            .expect("log file");
        let mut cmd = Command::new(bin("berthd"));
        if !self.env.is_empty() {
            std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        }
        let child = cmd
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .arg("--root")
            .arg(&self.root)
            .arg("--state")
            .arg(&self.state)
            .arg("--config")
            .arg(&self.config)
            .env("BERTH_LOG", "info")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log fd"))
            .stderr(log)
            .spawn()
            .expect("spawn berthd");
        self.seen_pids.push(child.id());
        self.launcher = Some(child);
        self.wait_until("services settled", Duration::from_secs(30), |list| {
            list.len() == SERVICES.len() && list.iter().all(|s| !matches!(s.state, ServiceState::Starting))
        });
    }

    /// The launcher's pid.
    pub fn launcher_pid(&self) -> u32 {
        self.launcher.as_ref().map(Child::id).expect("berthd running")
    }

    /// Clients of every service, with a deadline of `deadline`.
    pub fn clients(&self, deadline: Duration) -> Services {
        Services::new(&self.state, ClientOptions { deadline, client_name: "system-test".into() })
    }

    /// `berth services ls --format json`, parsed through the typed client instead.
    pub fn list(&mut self) -> Vec<ServiceStatus> {
        let services = self.clients(Duration::from_secs(10));
        let list = block_on(services.launcher.call(ListServices)).expect("list services");
        for s in &list {
            if let Some(pid) = s.pid
                && !self.seen_pids.contains(&pid)
            {
                self.seen_pids.push(pid);
            }
        }
        list
    }

    /// The status of one service.
    pub fn status(&mut self, name: &str) -> ServiceStatus {
        self.list().into_iter().find(|s| s.name == name).expect("service listed")
    }

    /// Polls the service list until `ok` holds, or panics after `timeout` naming `what`.
    pub fn wait_until(
        &mut self,
        what: &str,
        timeout: Duration,
        ok: impl Fn(&[ServiceStatus]) -> bool,
    ) -> Vec<ServiceStatus> {
        let start = Instant::now();
        loop {
            let list = self.list();
            if ok(&list) {
                return list;
            }
            if start.elapsed() > timeout {
                panic!("timed out waiting for {what}: {list:#?}\nlog:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Runs `berth --state <state> ARGS…` and returns its output.
    pub fn cli(&self, args: &[&str]) -> Output {
        Command::new(bin("berth")).arg("--state").arg(&self.state).args(args).output().expect("run berth")
    }

    /// Runs `berth --state <state> ARGS…` with `input` on its stdin and returns its output.
    pub fn cli_with_input(&self, args: &[&str], input: &[u8]) -> Output {
        let mut child = Command::new(bin("berth"))
            .arg("--state")
            .arg(&self.state)
            .args(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("run berth");
        let mut stdin = child.stdin.take().expect("stdin");
        let input = input.to_vec();
        // A writer thread: the CLI may stop reading (a process that ignores its input).
        let writer = std::thread::spawn(move || {
            let _ = std::io::Write::write_all(&mut stdin, &input);
        });
        let out = child.wait_with_output().expect("wait for berth");
        let _ = writer.join();
        out
    }

    /// berthd's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("berthd.log")).unwrap_or_default()
    }

    /// Waits up to `timeout` for berthd to exit by itself (a failpoint's power cut) and reaps
    /// it; `None` if it still runs.
    pub fn wait_launcher_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            let child = self.launcher.as_mut()?;
            if let Ok(Some(status)) = child.try_wait() {
                self.launcher = None;
                return Some(status);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// SIGKILLs berthd and waits for it.
    pub fn kill_launcher(&mut self) {
        if let Some(mut child) = self.launcher.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops berthd with SIGTERM and waits for it (its services stop first).
    pub fn stop(&mut self) -> Option<std::process::ExitStatus> {
        let mut child = self.launcher.take()?;
        signal(child.id(), Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = child.kill();
        child.wait().ok()
    }
}

impl Berth {
    /// Kills every shim and container process of this berth (by its tasks' init pids and
    /// the state dir in shims' command lines) and unmounts what is left under its temp dir.
    /// Drop runs it too, so a test that panics half-way leaves nothing running.
    pub fn teardown(&self) {
        let state = self.state.to_string_lossy().into_owned();
        for ns in std::fs::read_dir(self.state.join("tasks")).into_iter().flatten().flatten() {
            for task in std::fs::read_dir(ns.path()).into_iter().flatten().flatten() {
                let init = std::fs::read_to_string(task.path().join("init.pid")).ok();
                if let Some(pid) = init.and_then(|p| p.trim().parse().ok()) {
                    signal(pid, Signal::SIGKILL);
                }
            }
        }
        for pid in processes_with(&state) {
            signal(pid, Signal::SIGKILL);
        }
        std::thread::sleep(Duration::from_millis(100));
        let mut mounts = mounts_under(self.dir.path());
        mounts.sort_by_key(|m| std::cmp::Reverse(m.len()));
        for m in mounts {
            let _ = nix::mount::umount2(m.as_str(), nix::mount::MntFlags::MNT_DETACH);
        }
    }
}

impl Drop for Berth {
    fn drop(&mut self) {
        self.stop();
        for pid in &self.seen_pids {
            if pid_alive(*pid) {
                signal(*pid, Signal::SIGKILL);
            }
        }
        self.teardown();
        if let Ok(parent) = berth_service_kit::config::RuntimeConfig::default().cgroup_parent(&self.state) {
            remove_cgroups(&parent);
        }
    }
}

/// Mount points under `dir` (from `/proc/self/mountinfo`).
pub fn mounts_under(dir: &Path) -> Vec<String> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let d = dir.to_string_lossy();
    info.lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|m| m.starts_with(&*d))
        .map(String::from)
        .collect()
}

/// Pids of live processes whose command line mentions `needle`.
pub fn processes_with(needle: &str) -> Vec<u32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else { continue };
        let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        if String::from_utf8_lossy(&cmd).contains(needle) && pid_alive(pid) {
            out.push(pid);
        }
    }
    out
}

/// Removes the (empty) cgroups under `parent` in every hierarchy, deepest first; one still
/// holding a process stays.
pub fn remove_cgroups(parent: &str) {
    fn remove(dir: &std::path::Path) {
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                remove(&e.path());
            }
        }
        let _ = std::fs::remove_dir(dir);
    }
    for h in std::fs::read_dir("/sys/fs/cgroup").into_iter().flatten().flatten() {
        remove(&h.path().join(parent.trim_start_matches('/')));
    }
    remove(&std::path::Path::new("/sys/fs/cgroup").join(parent.trim_start_matches('/')));
}

/// Sends `sig` to `pid`, ignoring errors (it may be gone).
pub fn signal(pid: u32, sig: Signal) {
    if let Ok(pid) = i32::try_from(pid) {
        let _ = kill(Pid::from_raw(pid), sig);
    }
}

/// A process's identity that survives pid reuse: its pid and its start time (clock ticks
/// since boot, `/proc/<pid>/stat` field 22). `None` once it is gone.
pub fn process_identity(pid: u32) -> Option<(u32, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces) start at its closing paren:
    // state is field 3, start time field 22.
    let start = stat.rsplit(')').next()?.split_whitespace().nth(19)?.parse().ok()?;
    Some((pid, start))
}

/// Whether the process `identity` names still runs (a reused pid is another process).
pub fn identity_alive(identity: (u32, u64)) -> bool {
    pid_alive(identity.0) && process_identity(identity.0) == Some(identity)
}

/// Whether `pid` is a live (not zombie) process.
pub fn pid_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            let state = stat.rsplit(')').next().and_then(|rest| rest.split_whitespace().next());
            !matches!(state, Some("Z") | Some("X") | None)
        }
        Err(_) => false,
    }
}

/// Runs a future to completion on a fresh current-thread runtime.
pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime").block_on(f)
}
