//! Running the OCI runtime (`runc`, `crun`) from the shim. Every child is waited for through
//! the [`Reaper`], never with `Child::wait`, since the reaper thread collects every exit.

use std::io::Read;
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
    pub fn run_with(&self, args: &[&str], io: [Stdio; 3]) -> Result<u32> {
        let mut cmd = self.command(args);
        let [input, out, err] = io;
        cmd.stdin(input).stdout(out).stderr(err);
        let since = self.reaper.mark();
        let child = cmd.spawn().map_err(|e| Error::internal(format!("{}: {e}", self.runtime)))?;
        self.reaper.spawned();
        let pid = i32::try_from(child.id()).unwrap_or(0);
        drop(child);
        Ok(self.reaper.wait(pid, since, false).status)
    }

    /// Runs the runtime with `args` and returns its stdout; a failure carries its stderr.
    pub fn run(&self, args: &[&str]) -> Result<Vec<u8>> {
        let mut cmd = self.command(args);
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        let since = self.reaper.mark();
        let mut child = cmd.spawn().map_err(|e| Error::internal(format!("{}: {e}", self.runtime)))?;
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
    Error::internal(format!("{runtime} {verb}: {line}"))
}
