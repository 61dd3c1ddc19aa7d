//! `berth-shim`: one per container. It daemonizes (detached from every berth process),
//! becomes a subreaper, runs the OCI runtime's `create` with the bundle, then serves the
//! runtime service on a private socket (`<bundle>/shim/sock`, 0600 in a 0700 dir): start,
//! kill, exec, pause, resume, state, wait, ps, shutdown. The container's stdout and stderr come
//! through pipes the shim copies into capped, rotated log files under the root dir
//! (`relay`, [`crate::logfile`]), or the init's into the file at `--log-path`, which the
//! `ReopenLog` request closes and opens again after its owner renamed it; its exit status and time are written durably to
//! `exit.json` and published on `/tasks/exit`.
//!
//! A task with a terminal (`process.terminal` in its spec) gets a pty through the OCI
//! runtime's console socket; the shim relays it to the log and takes input and window size
//! from attach clients (`tty`).
//!
//! It is plain `std` with a few threads (reaper, acceptor, one per connection, a tty relay);
//! a tokio runtime exists only briefly, to publish events. Small when idle: one malloc
//! arena trimmed after use, and the clean code pages it is not running are unmapped
//! (`sys::release_file_pages`), so an idle shim's RSS is mostly its own few hundred KB.
//!
//! Start-up handshake: the runtime service spawns the shim with stdout a pipe; the daemon
//! writes one JSON line (`ShimResponse::Pid` or `ShimResponse::Error`) once `create` is
//! done and its socket listens. On the socket, a connection's first request says its
//! protocol version (`ShimRequest::Versioned`, docs/protocol.md).
//!
//! Layout: [`create`] makes the container, [`serve`] answers requests, [`exec`] runs extra
//! processes, [`state`] is what request threads share (one lock), [`exit`] what the reaper
//! does at an exit.

mod create;
mod events;
mod exec;
mod exit;
mod input;
mod oom;
mod process;
mod reaper;
mod relay;
mod serve;
mod state;
mod sys;
mod tty;

pub use process::runtime_error;

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use berth_ipc::runtime::ShimResponse;

use crate::bundle::Bundle;

pub(crate) use sys::hide_unified_cgroup;

/// What the shim is told on its command line.
#[derive(Debug, Clone)]
pub struct ShimArgs {
    /// Namespace.
    pub namespace: String,
    /// Container id.
    pub id: String,
    /// Bundle dir.
    pub bundle: PathBuf,
    /// OCI runtime binary (`runc`, `crun`, or a path).
    pub runtime: String,
    /// The OCI runtime's state root (`--root`).
    pub runtime_root: PathBuf,
    /// berth's state dir (for `events.sock`).
    pub state: PathBuf,
    /// The container's log dir (`<root>/logs/<ns>/<id>`).
    pub logs: PathBuf,
    /// A log file's cap (`[runtime] log_max_bytes`).
    pub log_max_bytes: u64,
    /// Log files kept per process (`[runtime] log_max_files`).
    pub log_max_files: u32,
    /// The init's log at this path instead of under `logs`, never rotated by the shim
    /// (`RunOptions.log_path`; reopened by `ShimRequest::ReopenLog`).
    pub log_path: Option<PathBuf>,
    /// Start the container at once: the runtime's `run --detach` rather than `create`
    /// (one runtime process instead of two); `/tasks/start` waits for the `Start` request.
    pub start: bool,
}

impl ShimArgs {
    /// The command-line form, for spawning.
    pub fn to_args(&self) -> Vec<String> {
        let mut args = vec![
            "--namespace".into(),
            self.namespace.clone(),
            "--id".into(),
            self.id.clone(),
            "--bundle".into(),
            self.bundle.display().to_string(),
            "--runtime".into(),
            self.runtime.clone(),
            "--runtime-root".into(),
            self.runtime_root.display().to_string(),
            "--state".into(),
            self.state.display().to_string(),
            "--logs".into(),
            self.logs.display().to_string(),
            "--log-max-bytes".into(),
            self.log_max_bytes.to_string(),
            "--log-max-files".into(),
            self.log_max_files.to_string(),
        ];
        if let Some(path) = &self.log_path {
            args.push("--log-path".into());
            args.push(path.display().to_string());
        }
        if self.start {
            args.push("--start".into());
        }
        args
    }

    fn parse(mut args: impl Iterator<Item = String>) -> Option<ShimArgs> {
        let mut get =
            |flag: &str| -> Option<String> { if args.next()? == flag { args.next() } else { None } };
        let mut parsed = ShimArgs {
            namespace: get("--namespace")?,
            id: get("--id")?,
            bundle: get("--bundle")?.into(),
            runtime: get("--runtime")?,
            runtime_root: get("--runtime-root")?.into(),
            state: get("--state")?.into(),
            logs: get("--logs")?.into(),
            log_max_bytes: get("--log-max-bytes")?.parse().ok()?,
            log_max_files: get("--log-max-files")?.parse().ok()?,
            log_path: None,
            start: false,
        };
        // Then, in this order, each optional: `--log-path PATH`, `--start`.
        let mut next = args.next();
        if next.as_deref() == Some("--log-path") {
            parsed.log_path = Some(args.next()?.into());
            next = args.next();
        }
        if next.as_deref() == Some("--start") {
            parsed.start = true;
            next = args.next();
        }
        next.is_none().then_some(parsed)
    }
}

/// The shim's `main`.
pub fn main() -> ExitCode {
    let Some(args) = ShimArgs::parse(std::env::args().skip(1)) else {
        eprintln!(
            "usage: berth-shim --namespace NS --id ID --bundle DIR --runtime BIN --runtime-root DIR --state DIR --logs DIR --log-max-bytes N --log-max-files N [--log-path FILE] [--start]"
        );
        return ExitCode::from(2);
    };
    if let Err(e) = sys::daemonize() {
        eprintln!("berth-shim: daemonize: {e}");
        return ExitCode::FAILURE;
    }
    // The grandchild: only the ready pipe (stdout) is kept; stdin and stderr are redirected.
    sys::close_fds_from_3(&[]);
    let bundle = Bundle { dir: args.bundle.clone() };
    if let Ok(null) = std::fs::File::open("/dev/null") {
        let _ = sys::redirect(&null, 0);
    }
    if let Ok(log) = std::fs::OpenOptions::new().create(true).append(true).open(bundle.shim_log()) {
        let _ = sys::redirect(&log, 2);
    }
    sys::small_heap();
    if let Err(e) = sys::set_subreaper() {
        eprintln!("berth-shim: subreaper: {e}");
    }
    let _ = std::fs::write(bundle.shim_pid(), std::process::id().to_string());
    let ready = match create::Shim::create(args) {
        Ok(shim) => {
            let pid = shim.init_pid();
            ready_line(&ShimResponse::Pid(pid));
            shim.serve();
            return ExitCode::SUCCESS;
        }
        Err(e) => ShimResponse::Error(e),
    };
    ready_line(&ready);
    ExitCode::FAILURE
}

/// Writes the start-up answer on stdout and points stdout at /dev/null.
fn ready_line(resp: &ShimResponse) {
    let mut out = std::io::stdout().lock();
    let line = serve::json(resp);
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
    drop(out);
    if let Ok(null) = std::fs::OpenOptions::new().write(true).open("/dev/null") {
        let _ = sys::redirect(&null, 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(log_path: Option<&str>, start: bool) -> ShimArgs {
        ShimArgs {
            namespace: "default".into(),
            id: "web".into(),
            bundle: "/b".into(),
            runtime: "runc".into(),
            runtime_root: "/r".into(),
            state: "/s".into(),
            logs: "/l".into(),
            log_max_bytes: 10,
            log_max_files: 2,
            log_path: log_path.map(PathBuf::from),
            start,
        }
    }

    #[test]
    fn the_command_line_round_trips_with_each_optional_flag() {
        for (log_path, start) in
            [(None, false), (Some("/var/log/pods/x/0.log"), false), (None, true), (Some("/p"), true)]
        {
            let a = args(log_path, start);
            let back = ShimArgs::parse(a.to_args().into_iter()).expect("parses");
            assert_eq!((back.log_path, back.start), (a.log_path.clone(), start), "{:?}", a.to_args());
            assert_eq!(back.id, "web");
        }
        let mut bad = args(None, true).to_args();
        bad.push("--log-path".into());
        assert!(ShimArgs::parse(bad.into_iter()).is_none(), "--log-path after --start is refused");
        let mut bad = args(None, false).to_args();
        bad.push("--log-path".into());
        assert!(ShimArgs::parse(bad.into_iter()).is_none(), "--log-path without a value is refused");
    }
}
