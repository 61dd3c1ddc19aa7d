//! A task's bundle directory, `<state>/tasks/<ns>/<id>`, and what lives in it:
//! `config.json` and `rootfs/` for the OCI runtime, its exit record, the init pid, the
//! shim's private socket dir, and `task.json` (what re-adoption needs to know). The
//! container's output is under the root dir ([`crate::logfile`]).

use std::io::Write;
use std::path::{Path, PathBuf};

use berth_ipc::runtime::ExitInfo;
use serde::{Deserialize, Serialize};

/// What the runtime service records about a task in its bundle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskRecord {
    /// Namespace.
    pub namespace: String,
    /// Container id.
    pub id: String,
    /// OCI runtime binary name (`runc`, `crun`).
    pub runtime: String,
    /// Snapshotter of the rootfs.
    pub snapshotter: String,
    /// Snapshot key of the rootfs.
    pub snapshot_key: String,
    /// The init's log file, when the container chose one (`RunOptions.log_path`).
    #[serde(default)]
    pub log_path: Option<PathBuf>,
}

/// Paths of one bundle.
#[derive(Debug, Clone)]
pub struct Bundle {
    /// The directory.
    pub dir: PathBuf,
}

impl Bundle {
    /// The bundle of `id` in `ns` under the state dir.
    pub fn new(state: &Path, ns: &str, id: &str) -> Bundle {
        Bundle { dir: state.join("tasks").join(ns).join(id) }
    }
    /// `config.json`.
    pub fn config(&self) -> PathBuf {
        self.dir.join("config.json")
    }
    /// `rootfs/`.
    pub fn rootfs(&self) -> PathBuf {
        self.dir.join("rootfs")
    }
    /// The durable exit record of the init process.
    pub fn exit(&self) -> PathBuf {
        self.dir.join("exit.json")
    }
    /// `init.pid`, written by the OCI runtime.
    pub fn init_pid(&self) -> PathBuf {
        self.dir.join("init.pid")
    }
    /// The shim's private directory (0700): `<bundle>/shim`, unless socket paths in it would
    /// not fit a socket address (108 bytes: a long state dir, a 64-digit CRI id), then
    /// `<state>/s/<16 hex digits of a hash of ns/id>`.
    pub fn shim_dir(&self) -> PathBuf {
        let inside = self.dir.join("shim");
        // The longest name in it is `console` (or an exec's `c<N>`), plus the `/` and NUL.
        if inside.as_os_str().len() + 10 <= 108 {
            return inside;
        }
        let name =
            |p: Option<&Path>| p.and_then(Path::file_name).unwrap_or_default().to_string_lossy().into_owned();
        let key = format!("{}/{}", name(self.dir.parent()), name(Some(&self.dir)));
        match self.dir.ancestors().nth(3) {
            Some(state) => state.join("s").join(format!("{:016x}", fnv1a(key.as_bytes()))),
            None => inside,
        }
    }

    /// Whether the shim's dir lives outside the bundle (see [`Bundle::shim_dir`]).
    pub fn shim_dir_outside(&self) -> bool {
        !self.shim_dir().starts_with(&self.dir)
    }
    /// The shim's socket (0600).
    pub fn socket(&self) -> PathBuf {
        self.shim_dir().join("sock")
    }
    /// The socket the OCI runtime sends a terminal task's pty master on.
    pub fn console(&self) -> PathBuf {
        self.shim_dir().join("console")
    }
    /// The shim's pid.
    pub fn shim_pid(&self) -> PathBuf {
        self.dir.join("shim.pid")
    }
    /// `task.json`.
    pub fn record(&self) -> PathBuf {
        self.dir.join("task.json")
    }
    /// The shim's own log.
    pub fn shim_log(&self) -> PathBuf {
        self.dir.join("shim.log")
    }
    /// The recorded exit, if any.
    pub fn read_exit(&self) -> Option<ExitInfo> {
        let text = std::fs::read(self.exit()).ok()?;
        // `[status, exited_at, oom_killed]`; records from before OOM tracking lack the last.
        if let Ok((status, exited_at, oom_killed)) = serde_json::from_slice::<(u32, u64, bool)>(&text) {
            return Some(ExitInfo { status, exited_at, oom_killed });
        }
        let (status, exited_at): (u32, u64) = serde_json::from_slice(&text).ok()?;
        Some(ExitInfo { status, exited_at, oom_killed: false })
    }
    /// The task record, if readable.
    pub fn read_record(&self) -> Option<TaskRecord> {
        serde_json::from_slice(&std::fs::read(self.record()).ok()?).ok()
    }
    /// The shim's pid, if recorded.
    pub fn read_shim_pid(&self) -> Option<u32> {
        std::fs::read_to_string(self.shim_pid()).ok()?.trim().parse().ok()
    }
}

/// Writes `data` to `path` durably: temp file, fsync, rename, fsync of the directory.
pub fn write_durably(path: &Path, data: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = dir.join(format!(".{}.tmp", path.file_name().map(|n| n.to_string_lossy()).unwrap_or_default()));
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(data)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)?;
    std::fs::File::open(dir)?.sync_all()
}

/// Records `exit` in the bundle durably. The runtime service creates `exit.json` empty with
/// the bundle (made durable along with `task.json`), so one write and one `fdatasync` do
/// here; a torn record reads as none (then 255, as for a shim that died first). A bundle
/// without the empty file gets the full temp-file-and-rename.
pub fn write_exit(bundle: &Bundle, exit: ExitInfo) -> std::io::Result<()> {
    let json =
        serde_json::to_vec(&(exit.status, exit.exited_at, exit.oom_killed)).map_err(std::io::Error::other)?;
    match std::fs::OpenOptions::new().write(true).open(bundle.exit()) {
        Ok(mut f) => {
            f.write_all(&json)?;
            f.set_len(json.len() as u64)?;
            f.sync_data()
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => write_durably(&bundle.exit(), &json),
        Err(e) => Err(e),
    }
}

/// Unix nanoseconds now (the kit's clock).
pub use berth_service_kit::time::now_ns;

/// FNV-1a, 64 bits: a hash that never changes between builds (the shim and a later runtime
/// service must agree on it).
fn fnv1a(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3))
}
