//! Live fan-out: the writer hands every stored batch to the hub, which passes it to each
//! subscriber's bounded buffer without ever waiting.
//!
//! Registration and delivery take the same lock, and the writer delivers batches in seq
//! order, so a subscriber registered when the newest delivered seq was `L` receives exactly
//! the events after `L`: it replays `..=L` from the log, and the seam has no gap and no
//! duplicate. A subscriber whose buffer would exceed its limit is dropped from the hub and
//! told (through [`Lag`]) the first seq it missed.

use berth_ipc::sync::lock;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use berth_ipc::events::Envelope;
use tokio::sync::mpsc;

/// A batch of stored events, shared by every subscriber.
pub type Batch = Arc<Vec<Envelope>>;

/// What a subscriber holds: its batches, its buffer count, and its lag mark.
pub struct Registration {
    /// Batches after `last`.
    pub rx: mpsc::UnboundedReceiver<Batch>,
    /// The newest seq delivered before registration.
    pub last: u64,
    /// Shared with the hub.
    pub lag: Arc<Lag>,
}

/// A subscriber's buffer accounting, shared between hub and subscriber.
#[derive(Debug, Default)]
pub struct Lag {
    /// Events handed over and not yet consumed.
    pub buffered: AtomicUsize,
    /// The first seq not handed over because the buffer was full (0 = not lagged).
    pub missed_from: AtomicU64,
}

impl Lag {
    /// Marks `n` events consumed.
    pub fn consumed(&self, n: usize) {
        self.buffered.fetch_sub(n, Ordering::AcqRel);
    }

    /// The first seq missed, if the subscriber lagged.
    pub fn missed(&self) -> Option<u64> {
        Some(self.missed_from.load(Ordering::Acquire)).filter(|s| *s != 0)
    }
}

struct Slot {
    tx: mpsc::UnboundedSender<Batch>,
    lag: Arc<Lag>,
}

/// The subscriber registry.
pub struct Hub {
    limit: usize,
    inner: Mutex<Inner>,
}

struct Inner {
    last: u64,
    next_id: u64,
    subs: HashMap<u64, Slot>,
}

impl Hub {
    /// A hub whose subscribers may buffer `limit` events; `last` is the newest stored seq.
    pub fn new(limit: usize, last: u64) -> Hub {
        Hub { limit: limit.max(1), inner: Mutex::new(Inner { last, next_id: 1, subs: HashMap::new() }) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        lock(&self.inner)
    }

    /// Registers a subscriber for every batch after the newest delivered one.
    pub fn register(&self) -> Registration {
        let (tx, rx) = mpsc::unbounded_channel();
        let lag = Arc::new(Lag::default());
        let mut inner = self.lock();
        let id = inner.next_id;
        inner.next_id += 1;
        inner.subs.insert(id, Slot { tx, lag: lag.clone() });
        Registration { rx, last: inner.last, lag }
    }

    /// Hands a stored batch (seqs in order, following the previous batch) to every
    /// subscriber that has room; drops those that do not, and those that went away.
    pub fn deliver(&self, batch: Batch) {
        let (Some(first), Some(last)) = (batch.first(), batch.last()) else { return };
        let (first, last, n) = (first.seq, last.seq, batch.len());
        let mut inner = self.lock();
        inner.last = last;
        let limit = self.limit;
        inner.subs.retain(|_, slot| {
            if slot.tx.is_closed() {
                return false;
            }
            if slot.lag.buffered.load(Ordering::Acquire) + n > limit {
                slot.lag.missed_from.store(first, Ordering::Release);
                return false;
            }
            slot.lag.buffered.fetch_add(n, Ordering::AcqRel);
            slot.tx.send(batch.clone()).is_ok()
        });
    }

    /// Live subscriptions.
    pub fn len(&self) -> usize {
        self.lock().subs.len()
    }

    /// Whether there are no subscriptions.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Drops every subscriber (their streams end).
    pub fn close(&self) {
        self.lock().subs.clear();
    }
}
