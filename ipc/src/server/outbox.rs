//! A connection's outgoing frames: a queue bounded in bytes (not frames), and the writer
//! that drains it under a write deadline. A client that stops reading fills the budget, so
//! every call waits instead of piling up replies; if the writer then makes no progress for
//! the write timeout, the connection is declared dead and dropped.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::unix::OwnedWriteHalf;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, mpsc};
use tokio_util::sync::CancellationToken;

/// The sending side, cloned into every call of a connection.
#[derive(Clone)]
pub(crate) struct Outbox {
    tx: mpsc::UnboundedSender<Queued>,
    budget: Arc<Budget>,
    /// Room handlers reserve before producing an answer (see `Context::reserve`); held
    /// until the frame that carries it is written.
    credits: Arc<Semaphore>,
}

/// A frame, and the reservation its bytes were produced under.
type Queued = (Vec<u8>, Option<OwnedSemaphorePermit>);

/// Frames queued on one connection at most, whatever their size (a stream of small frames,
/// such as an event subscription, must reach its own lag handling instead of filling the
/// byte budget).
const MAX_QUEUED_FRAMES: usize = 256;

struct Budget {
    /// Bytes queued and not yet handed to the socket.
    queued: AtomicUsize,
    /// Frames queued and not yet handed to the socket.
    frames: AtomicUsize,
    limit: usize,
    drained: Notify,
    /// Cancelled when the writer gave up (deadline passed, or the socket failed).
    dead: CancellationToken,
}

/// The receiving side, for [`Outbox::write_loop`].
pub(crate) struct Inbox {
    rx: mpsc::UnboundedReceiver<Queued>,
    budget: Arc<Budget>,
}

impl Outbox {
    /// An outbox holding at most about `limit` bytes (one frame more than that is let in
    /// when the queue is empty, so an answer larger than the budget still goes out).
    pub(crate) fn new(limit: usize) -> (Outbox, Inbox) {
        let (tx, rx) = mpsc::unbounded_channel();
        let budget = Arc::new(Budget {
            queued: AtomicUsize::new(0),
            frames: AtomicUsize::new(0),
            limit: limit.max(1),
            drained: Notify::new(),
            dead: CancellationToken::new(),
        });
        let credits = Arc::new(Semaphore::new(limit.clamp(1, u32::MAX as usize)));
        (Outbox { tx, budget: budget.clone(), credits }, Inbox { rx, budget })
    }

    /// Cancelled once the connection's writer is gone.
    pub(crate) fn dead(&self) -> &CancellationToken {
        &self.budget.dead
    }

    /// Waits until the queue is under its budget; false if the writer is gone first.
    pub(crate) async fn room(&self) -> bool {
        loop {
            let drained = self.budget.drained.notified();
            if self.budget.dead.is_cancelled() {
                return false;
            }
            if self.budget.queued.load(Ordering::Acquire) < self.budget.limit
                && self.budget.frames.load(Ordering::Acquire) < MAX_QUEUED_FRAMES
            {
                return true;
            }
            tokio::select! {
                _ = drained => {}
                _ = self.budget.dead.cancelled() => return false,
            }
        }
    }

    /// Queues one encoded frame with the reservation it was produced under, waiting for
    /// room; false when the connection is gone.
    pub(crate) async fn push(&self, buf: Vec<u8>, credit: Option<OwnedSemaphorePermit>) -> bool {
        if !self.room().await {
            return false;
        }
        self.budget.queued.fetch_add(buf.len(), Ordering::AcqRel);
        self.budget.frames.fetch_add(1, Ordering::AcqRel);
        self.tx.send((buf, credit)).is_ok()
    }

    /// Reserves `bytes` (at most the budget) of answer room, waiting while earlier
    /// reservations are not written yet; `None` once the connection is gone.
    pub(crate) async fn reserve(&self, bytes: usize) -> Option<OwnedSemaphorePermit> {
        let limit = self.budget.limit.clamp(1, u32::MAX as usize);
        let n = u32::try_from(bytes.clamp(1, limit)).unwrap_or(u32::MAX);
        tokio::select! {
            p = self.credits.clone().acquire_many_owned(n) => p.ok(),
            _ = self.budget.dead.cancelled() => None,
        }
    }
}

impl Inbox {
    /// Writes queued frames until every [`Outbox`] is dropped, batching whatever is queued
    /// into one flush. A write that makes no progress for `deadline` ends the connection.
    pub(crate) async fn write_loop(mut self, half: OwnedWriteHalf, deadline: Duration) {
        let mut w = tokio::io::BufWriter::with_capacity(64 * 1024, half);
        let ok = loop {
            let Some(buf) = self.rx.recv().await else { break true };
            if !self.write(&mut w, buf, deadline).await {
                break false;
            }
            while let Ok(more) = self.rx.try_recv() {
                if !self.write(&mut w, more, deadline).await {
                    break;
                }
            }
            if self.budget.dead.is_cancelled() {
                break false;
            }
            if !matches!(tokio::time::timeout(deadline, w.flush()).await, Ok(Ok(()))) {
                break false;
            }
        };
        if ok {
            let _ = tokio::time::timeout(deadline, w.shutdown()).await;
        } else {
            self.budget.dead.cancel();
            self.budget.drained.notify_waiters();
        }
    }

    async fn write(
        &self,
        w: &mut tokio::io::BufWriter<OwnedWriteHalf>,
        queued: Queued,
        deadline: Duration,
    ) -> bool {
        let (buf, credit) = queued;
        let written = matches!(tokio::time::timeout(deadline, w.write_all(&buf)).await, Ok(Ok(())));
        self.budget.queued.fetch_sub(buf.len(), Ordering::AcqRel);
        self.budget.frames.fetch_sub(1, Ordering::AcqRel);
        self.budget.drained.notify_waiters();
        drop(credit);
        if !written {
            self.budget.dead.cancel();
        }
        written
    }
}
