//! Running the OCI runtime (`runc`, `crun`) from the shim. Every child is waited for through
//! the [`Reaper`], never with `Child::wait`, since the reaper thread collects every exit.

use std::io::{PipeReader, PipeWriter, Read};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;

use berth_ipc::{Error, Result};

use super::reaper::Reaper;
use crate::oci_runtime::runtime_command;

/// The OCI runtime binary and its state root.
#[derive(Clone)]
pub struct Runner {
    /// Binary name or path.
    pub runtime: String,
    /// `--root`.
    pub root: PathBuf,
    /// The reaper.
    pub reaper: Arc<Reaper>,
}

impl Runner {
    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = runtime_command(&self.runtime, &self.root);
        cmd.args(args);
        cmd
    }

    /// Runs the runtime with `args`, its stdin, stdout and stderr being `io` (passed on to
    /// the container's process); returns its exit status.
    fn run_with(&self, args: &[&str], io: RuntimeIo) -> Result<u32> {
        let mut cmd = self.command(args);
        let input = io.stdin.map_or_else(Stdio::null, Stdio::from);
        cmd.stdin(input).stdout(io.stdout).stderr(io.stderr);
        let since = self.reaper.mark();
        let child = cmd.spawn().map_err(|e| Error::internal_cause(&self.runtime, e))?;
        self.reaper.spawned();
        let pid = i32::try_from(child.id()).unwrap_or(0);
        drop(child);
        Ok(self.reaper.wait(pid, since, false).status)
    }

    /// Runs the runtime with `args` and returns its stdout; a failure carries its stderr.
    fn run(&self, args: &[&str]) -> Result<Vec<u8>> {
        let mut cmd = self.command(args);
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        let since = self.reaper.mark();
        let mut child = cmd.spawn().map_err(|e| Error::internal_cause(&self.runtime, e))?;
        self.reaper.spawned();
        let pid = i32::try_from(child.id()).unwrap_or(0);
        let mut stdout = Vec::new();
        let mut stderr = Vec::new();
        if let Some(mut err) = child.stderr.take() {
            let reader = std::thread::spawn(move || {
                let mut buf = Vec::new();
                let _ = err.read_to_end(&mut buf);
                buf
            });
            if let Some(mut out) = child.stdout.take() {
                let _ = out.read_to_end(&mut stdout);
            }
            stderr = reader.join().unwrap_or_default();
        }
        drop(child);
        let status = self.reaper.wait(pid, since, false).status;
        if status != 0 {
            return Err(runtime_error(&self.runtime, args.first().copied().unwrap_or(""), &stderr));
        }
        Ok(stdout)
    }
}

/// The stdio the OCI runtime's `create`, `run` or `exec` is given, passed on to the
/// container's process: a stdin pipe's read end (else `/dev/null`) and the write ends of
/// its output pipes ([`super::relay::Output::pipes`]).
pub struct RuntimeIo {
    /// Stdin, or none (`/dev/null`).
    pub stdin: Option<PipeReader>,
    /// Stdout.
    pub stdout: PipeWriter,
    /// Stderr (where the runtime writes its own error too).
    pub stderr: PipeWriter,
}

/// The OCI runtime as the shim's container logic calls it: every verb the shim issues
/// (`create`, `run`, `start`, `exec`, `kill`, `pause`, `resume`, `ps`, `delete`) goes
/// through this. [`Runner`] runs the binary; unit tests use a double, without root
/// (`serve_tests`), as youki's `Syscall` trait does.
pub trait RuntimeCalls: Send + Sync {
    /// Runs the runtime with `args`, answering its stdout; a failure carries its stderr.
    fn call(&self, args: &[&str]) -> Result<Vec<u8>>;

    /// Runs the runtime with `args` and the process's stdio `io`; answers its exit status
    /// (its error, if any, went to `io.stderr`).
    fn call_with(&self, args: &[&str], io: RuntimeIo) -> Result<u32>;
}

impl RuntimeCalls for Runner {
    fn call(&self, args: &[&str]) -> Result<Vec<u8>> {
        self.run(args)
    }

    fn call_with(&self, args: &[&str], io: RuntimeIo) -> Result<u32> {
        self.run_with(args, io)
    }
}

/// Deletes container `id` from the runtime: `delete`, and `delete --force` if that fails
/// (a container the runtime still thinks running, or half-created). Answers whether the
/// runtime keeps nothing of it.
pub fn delete_or_force(rt: &dyn RuntimeCalls, id: &str) -> bool {
    rt.call(&["delete", id]).is_ok() || rt.call(&["delete", "--force", id]).is_ok()
}

/// A runtime failure as a wire error: the last meaningful line of its output.
pub fn runtime_error(runtime: &str, verb: &str, stderr: &[u8]) -> Error {
    let text = String::from_utf8_lossy(stderr);
    let line = text.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("failed").trim();
    let line: String = line.chars().take(400).collect();
    if line.contains("not running") || line.contains("container not running") {
        return Error::precondition(format!("{runtime} {verb}: {line}"));
    }
    if line.contains("does not exist") || line.contains("not found") {
        return Error::not_found(format!("{runtime} {verb}: {line}"));
    }
    Error::internal_cause(format_args!("{runtime} {verb}"), line)
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    /// A runtime that fails the verbs it is told to, logging every call.
    struct Fake {
        fail: &'static [&'static str],
        calls: Mutex<Vec<String>>,
    }

    impl RuntimeCalls for Fake {
        fn call(&self, args: &[&str]) -> Result<Vec<u8>> {
            let line = args.join(" ");
            self.calls.lock().expect("calls").push(line.clone());
            match self.fail.contains(&line.as_str()) {
                true => Err(runtime_error("fake", args[0], b"container is still running")),
                false => Ok(Vec::new()),
            }
        }

        fn call_with(&self, args: &[&str], _io: RuntimeIo) -> Result<u32> {
            self.call(args).map(|_| 0)
        }
    }

    fn calls(fake: &Fake) -> Vec<String> {
        fake.calls.lock().expect("calls").clone()
    }

    #[test]
    fn a_delete_that_works_is_not_forced() {
        let fake = Fake { fail: &[], calls: Mutex::default() };
        assert!(delete_or_force(&fake, "web"));
        assert_eq!(calls(&fake), ["delete web"]);
    }

    #[test]
    fn a_failed_delete_is_forced() {
        let fake = Fake { fail: &["delete web"], calls: Mutex::default() };
        assert!(delete_or_force(&fake, "web"));
        assert_eq!(calls(&fake), ["delete web", "delete --force web"]);
    }

    #[test]
    fn a_failed_forced_delete_is_reported() {
        let fake = Fake { fail: &["delete web", "delete --force web"], calls: Mutex::default() };
        assert!(!delete_or_force(&fake, "web"));
        assert_eq!(calls(&fake).len(), 2);
    }

    #[test]
    fn runtime_errors_keep_their_meaning_as_codes() {
        let e = runtime_error("runc", "kill", b"\nlevel=error msg=\"container not running\"\n\n");
        assert!(e.is(berth_ipc::Code::FailedPrecondition), "{e}");
        assert!(e.to_string().starts_with("runc kill: "), "{e}");
        let e = runtime_error("crun", "start", b"container `x` does not exist");
        assert!(e.is(berth_ipc::Code::NotFound), "{e}");
        let e = runtime_error("runc", "create", b"");
        assert_eq!(e.to_string(), "runc create: failed");
    }
}
