//! Progress of a distribution job, reported per blob to whatever the caller plugs in (the
//! CLI prints lines; a library user may ignore it).

use berth_ipc::Digest;

/// Where a blob is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Queued behind other downloads.
    Waiting,
    /// Bytes are moving.
    Downloading,
    /// Already present: nothing to move.
    Exists,
    /// Stored.
    Done,
    /// Being applied to a snapshot.
    Unpacking,
    /// Being uploaded.
    Uploading,
    /// Applied to its snapshot.
    Unpacked,
}

impl State {
    /// Lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Waiting => "waiting",
            State::Downloading => "downloading",
            State::Exists => "exists",
            State::Done => "done",
            State::Unpacking => "unpacking",
            State::Uploading => "uploading",
            State::Unpacked => "unpacked",
        }
    }
}

/// Receives progress updates; called from several tasks at once.
pub trait Progress: Send + Sync {
    /// Blob `digest` (`total` bytes) is in `state` with `done` bytes moved.
    fn update(&self, digest: &Digest, state: State, done: u64, total: u64);
    /// A free-form step (`resolving …`, `unpacking 3 layers`).
    fn step(&self, _message: &str) {}
}

/// Reports nothing.
pub struct Silent;

impl Progress for Silent {
    fn update(&self, _: &Digest, _: State, _: u64, _: u64) {}
}
