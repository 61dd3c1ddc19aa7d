//! One live connection: the calls waiting on it and the task that routes answers to them.

use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};

use tokio::io::BufReader;
use tokio::sync::{mpsc, oneshot};

use super::lock;
use crate::frame::{self, Frame, Kind};
use crate::protocol::Welcome;

/// What the reader task hands a waiting call.
pub(super) enum Pending {
    Unary(oneshot::Sender<Frame>),
    Stream(mpsc::Sender<Frame>),
}

/// The calls waiting on one connection. Once `closed`, nothing more may wait: the reader
/// or the writer has stopped, and every waiting call has seen its channel dropped.
#[derive(Default)]
pub(super) struct Calls {
    pub(super) map: HashMap<u64, Pending>,
    pub(super) closed: bool,
}

impl Calls {
    /// Registers a waiting call; false when the connection is already dead.
    pub(super) fn register(&mut self, id: u64, p: Pending) -> bool {
        if self.closed {
            return false;
        }
        self.map.insert(id, p);
        true
    }

    /// Marks the connection dead and wakes every waiting call.
    pub(super) fn close(&mut self) {
        self.closed = true;
        self.map.clear();
    }
}

/// A handshaken connection: frames go out through `out` to the writer task; the reader
/// task routes answers to `pending`.
pub(super) struct Conn {
    pub(super) out: mpsc::Sender<Vec<u8>>,
    pub(super) pending: Arc<Mutex<Calls>>,
    pub(super) next_id: AtomicU64,
    pub(super) welcome: Welcome,
    pub(super) reader: tokio::task::JoinHandle<()>,
}

impl Conn {
    /// Whether calls may still be made on it.
    pub(super) fn alive(&self) -> bool {
        !self.out.is_closed() && !lock(&self.pending).closed
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

/// Routes answers to the calls waiting for them; when the connection ends, every waiting
/// call sees its channel closed.
pub(super) async fn read_loop(
    mut reader: BufReader<tokio::net::unix::OwnedReadHalf>,
    pending: Arc<Mutex<Calls>>,
) {
    loop {
        let Ok(frame) = frame::read_frame(&mut reader, frame::MAX_FRAME_LEN).await else { break };
        let id = frame.header.id;
        if id == 0 {
            break; // a connection-level error: the service is closing this connection
        }
        let terminal = matches!(frame.header.kind, Kind::Response | Kind::Error | Kind::StreamEnd);
        let entry = {
            let mut map = lock(&pending);
            if terminal {
                map.map.remove(&id)
            } else {
                match map.map.get(&id) {
                    Some(Pending::Stream(tx)) => Some(Pending::Stream(tx.clone())),
                    _ => None,
                }
            }
        };
        match entry {
            Some(Pending::Unary(tx)) => {
                let _ = tx.send(frame);
            }
            Some(Pending::Stream(tx)) => {
                let _ = tx.send(frame).await;
            }
            None => {}
        }
    }
    lock(&pending).close();
}
