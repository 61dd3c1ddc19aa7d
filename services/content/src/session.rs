//! Write sessions: an open [`Ingest`] reachable by session id, from `content.sock`
//! (`WriteChunk`, `CommitWriter`) and from the fd socket (appending from a passed fd).
//! Chunks are applied in the order of their `seq`, whichever connection brought them.

use berth_ipc::sync::lock;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use berth_ipc::{Error, Result};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::ingest::Ingest;

/// How long a pipelined chunk waits for its predecessors.
const REORDER_WAIT: Duration = Duration::from_secs(10);

/// An open write session.
pub struct Session {
    /// The ingest, locked while a chunk is applied.
    pub ingest: Arc<tokio::sync::Mutex<Ingest>>,
    /// The `seq` of the next chunk to apply.
    pub next_seq: watch::Sender<u64>,
    /// Cancelled when the session ends (commit, abort, writer gone).
    pub done: CancellationToken,
}

/// The table of open sessions, shared by both sockets.
#[derive(Clone, Default)]
pub struct Sessions(Arc<Mutex<HashMap<u64, Arc<Session>>>>);

impl Sessions {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Arc<Session>>> {
        lock(&self.0)
    }

    /// Registers a session.
    pub fn insert(&self, id: u64, session: Arc<Session>) {
        self.map().insert(id, session);
    }

    /// The open session `id`.
    pub fn get(&self, id: u64) -> Result<Arc<Session>> {
        self.map().get(&id).cloned().ok_or_else(|| {
            Error::precondition(format!(
                "write session {id}: not open (its writer went away); reopen the ref"
            ))
        })
    }

    /// Ends session `id`, if open.
    pub fn end(&self, id: u64) {
        if let Some(s) = self.map().remove(&id) {
            s.done.cancel();
        }
    }

    /// Open sessions.
    pub fn len(&self) -> usize {
        self.map().len()
    }

    /// Whether none is open.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Applies chunk `seq` of session `id`: waits for its predecessors, then runs `write` on
/// the ingest on the blocking pool. The next chunk may go once this one is applied or
/// refused.
pub async fn apply(
    session: &Arc<Session>,
    id: u64,
    seq: u64,
    write: impl FnOnce(&mut Ingest, &CancellationToken) -> Result<u64> + Send + 'static,
) -> Result<u64> {
    if *session.next_seq.borrow() != seq {
        let mut rx = session.next_seq.subscribe();
        match tokio::time::timeout(REORDER_WAIT, rx.wait_for(|n| *n >= seq)).await {
            Ok(Ok(n)) if *n == seq => {}
            Ok(Ok(n)) => {
                return Err(Error::invalid(format!(
                    "write session {id}: chunk seq {seq} already applied (next is {})",
                    *n
                )));
            }
            _ => {
                return Err(Error::precondition(format!(
                    "write session {id}: chunk seq {seq} waited too long for its predecessors"
                )));
            }
        }
    }
    let mut ingest = session.ingest.clone().lock_owned().await;
    let done = session.done.clone();
    let end = berth_service_kit::blocking("content worker", move || write(&mut ingest, &done)).await;
    session.next_seq.send_replace(seq + 1);
    end
}
