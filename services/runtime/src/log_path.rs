//! A container's init log at a path its creator chose (`RunOptions.log_path`, the CRI's
//! `LogDirectory`/`LogPath`): checked at `CreateContainer`, kept in the container record as
//! extension [`EXTENSION_LOG_PATH`] (and in the task's `task.json`), handed to the shim, which writes the
//! init's output there instead of under `<root>/logs/`, and reopened on `ReopenLog` once the
//! owner (the kubelet) has renamed the file. berth neither rotates nor removes that file.

use std::path::{Path, PathBuf};

use berth_ipc::metadata::Container;
use berth_ipc::runtime::{ShimRequest, TaskRef, TaskStatus};
use berth_ipc::{Code, Error, Result};
use berth_service_kit::blocking_value;

use crate::Runtime;
use crate::logfile::LogPaths;
use crate::shim_client;

/// The container record's extension holding the init's log path (its bytes), set by the
/// runtime service only: a `CreateContainer` naming it among its extensions is refused.
/// (Not a label: the metadata service keeps `berth.io/` labels from every client.)
pub const EXTENSION_LOG_PATH: &str = "berth.io/log-path";

/// The longest log path taken (Linux's `PATH_MAX` is 4096, its NUL included).
const MAX_LEN: usize = 4000;

/// `log_path` of container `id` as the shim gets it: absolute, without `.` or `..`, naming
/// a file (none of its existing ancestors a non-directory). `InvalidArgument` naming the
/// container and the path otherwise.
pub fn check(id: &str, raw: &str) -> Result<PathBuf> {
    let bad = |why: &str| Error::invalid(format!("container {id}: log path {raw:?}: {why}"));
    if raw.len() > MAX_LEN {
        return Err(bad(&format!("longer than {MAX_LEN} bytes")));
    }
    if raw.contains('\0') {
        return Err(bad("contains a NUL byte"));
    }
    if !raw.starts_with('/') {
        return Err(bad("not an absolute path"));
    }
    if raw.ends_with('/') {
        return Err(bad("names a directory (ends with /)"));
    }
    if raw.split('/').any(|c| c == "." || c == "..") {
        return Err(bad("has a . or .. component"));
    }
    let path = Path::new(raw);
    match std::fs::metadata(path) {
        Ok(m) if m.is_dir() => return Err(bad("is a directory")),
        Ok(m) if !m.is_file() => return Err(bad("exists and is not a regular file")),
        Ok(_) => return Ok(path.to_path_buf()),
        Err(e) if missing(&e) => {}
        Err(e) => return Err(bad(&e.to_string())),
    }
    // Missing: its dirs are made by the shim, so the nearest one that exists must be a dir.
    for dir in path.ancestors().skip(1) {
        match std::fs::metadata(dir) {
            Ok(m) if m.is_dir() => break,
            Ok(_) => return Err(bad(&format!("{} is not a directory", dir.display()))),
            Err(e) if missing(&e) => {}
            Err(e) => return Err(bad(&format!("{}: {e}", dir.display()))),
        }
    }
    Ok(path.to_path_buf())
}

/// Not there (or a file where a dir of the path would be: found walking up).
fn missing(e: &std::io::Error) -> bool {
    matches!(e.kind(), std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory)
}

/// The log path recorded for `container`, checked again (a record is input too).
pub fn of(container: &Container) -> Result<Option<PathBuf>> {
    let Some(raw) = container.extensions.get(EXTENSION_LOG_PATH) else { return Ok(None) };
    let bad = || {
        let raw = String::from_utf8_lossy(raw);
        Error::invalid(format!("container {}: recorded log path {raw:?}: not an absolute path", container.id))
    };
    let raw = std::str::from_utf8(raw).map_err(|_| bad())?;
    let path = Path::new(raw);
    if !path.is_absolute() || raw.split('/').any(|c| c == "." || c == "..") {
        return Err(bad());
    }
    Ok(Some(path.to_path_buf()))
}

impl Runtime {
    /// The log files of process `task` (its exec's, or its init's: at `log_path` if the
    /// container has one).
    pub(crate) fn process_log(&self, task: &TaskRef, log_path: Option<&Path>) -> LogPaths {
        match (&task.exec_id, log_path) {
            (None, Some(path)) => LogPaths::at(path),
            (exec, _) => LogPaths::new(&self.log_dir(&task.namespace, &task.id), exec.as_deref()),
        }
    }

    /// [`check`] of a new container's `log_path`, off the async workers.
    pub(crate) async fn check_log_path(&self, id: &str, raw: Option<&str>) -> Result<Option<PathBuf>> {
        let Some(raw) = raw else { return Ok(None) };
        let (id, raw) = (id.to_string(), raw.to_string());
        blocking_value("runtime worker", move || check(&id, &raw)).await?.map(Some)
    }

    /// `ReopenLog`: the shim closes the init's log and opens it again at its path.
    pub async fn reopen_log(&self, task: TaskRef) -> Result<()> {
        if let Some(exec) = &task.exec_id {
            return Err(Error::invalid(format!(
                "exec {exec} of container {}: its log is berth's own; only the init's log is reopened",
                task.id
            )));
        }
        let bundle = self.existing(&task).await?;
        let not_running = || Error::precondition(format!("container {} is not running", task.id));
        match shim_client::call(&bundle.socket(), &ShimRequest::ReopenLog).await {
            Ok(_) => Ok(()),
            // The shim is gone: the task has exited (or a stuck shim: its error).
            Err(e) if e.is(Code::Unavailable) => match self.get(task.clone()).await.map(|t| t.status) {
                Ok(TaskStatus::Stopped) => Err(not_running()),
                _ => Err(e),
            },
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_paths_are_refused_naming_the_container_and_the_path() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("file");
        std::fs::write(&file, b"").expect("file");
        let d = dir.path().display().to_string();
        let f = file.display().to_string();
        let cases = [
            ("logs/c.log".to_string(), "not an absolute path"),
            ("".to_string(), "not an absolute path"),
            (format!("{d}/"), "names a directory (ends with /)"),
            (d.clone(), "is a directory"),
            (format!("{d}/a/../c.log"), "has a . or .. component"),
            (format!("{d}/./c.log"), "has a . or .. component"),
            (format!("{f}/c.log"), &format!("{f} is not a directory")),
            (format!("{f}/deeper/c.log"), &format!("{f} is not a directory")),
            ("/dev/null".to_string(), "exists and is not a regular file"),
            (format!("/{}", "x".repeat(MAX_LEN)), "longer than 4000 bytes"),
            ("/tmp/a\0b".to_string(), "contains a NUL byte"),
        ];
        for (raw, why) in cases {
            let e = check("web", &raw).expect_err(&raw);
            assert!(e.is(Code::InvalidArgument), "{e}");
            assert!(e.message.starts_with(&format!("container web: log path {raw:?}: ")), "{e}");
            assert!(e.message.ends_with(why), "{raw}: {e}");
        }
    }

    #[test]
    fn a_new_or_existing_file_is_taken() {
        let dir = tempfile::tempdir().expect("tempdir");
        let new = dir.path().join("pods/uid/web/0.log");
        assert_eq!(check("web", &new.display().to_string()).expect("missing dirs are made"), new);
        let file = dir.path().join("0.log");
        std::fs::write(&file, b"old\n").expect("file");
        assert_eq!(check("web", &file.display().to_string()).expect("existing file"), file);
    }
}
