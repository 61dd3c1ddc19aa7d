//! The publisher every service embeds to send events to the events service.
//!
//! ```ignore
//! // once, at service start (inside the tokio runtime):
//! let events = Publisher::in_state_dir(&env.config.state, "content");
//! // on every mutation, after it is durable; never blocks, never fails the operation:
//! events.publish(&namespace, ContentCreate { digest: d.to_string(), size });
//! // at shutdown (optional): give queued events a moment to reach the log
//! events.flush(Duration::from_secs(2)).await;
//! ```
//!
//! `publish` validates the event (namespace, size), stamps it with the next value of this
//! publisher's counter and puts it in a bounded in-memory outbox; it returns at once. A
//! background task sends the outbox in order, in batches of up to [`MAX_BATCH`], to
//! `<state>/events.sock`, and retries a batch (reconnecting, with back-off up to one second)
//! until the service acknowledges it as durable. The idempotency key of each event is
//! (publisher id, counter), with a publisher id unique to this process instance, so a batch
//! resent after a lost answer is stored once. Order per publisher is kept: batch n+1 is sent
//! only after batch n is stored.
//!
//! What is lost: events still in the outbox when the process dies, and new events while the
//! outbox is full (counted in [`PublisherStats::dropped`], warned once per outage).

use crate::sync::lock;
use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::{Notify, watch};

use crate::client::{Client, ClientOptions};
use crate::error::Code;
use crate::events::{Events, MAX_BATCH, MAX_BATCH_BYTES, NewEvent, Payload, PublishBatch};

/// Events the outbox holds by default before dropping new ones.
pub const DEFAULT_OUTBOX: usize = 100_000;

/// Counters of a publisher.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PublisherStats {
    /// Events waiting in the outbox.
    pub queued: u64,
    /// Events acknowledged as durable.
    pub stored: u64,
    /// Events dropped because the outbox was full.
    pub dropped: u64,
    /// Events refused as invalid (by `publish` or, should it disagree, the service).
    pub rejected: u64,
    /// The seq of the last event stored (0 before the first).
    pub last_seq: u64,
}

/// A handle to the publishing side; cheap to clone. The background task ends when every
/// handle is dropped and the outbox is empty (or the service stays unreachable for the
/// drain grace period).
#[derive(Clone)]
pub struct Publisher {
    shared: Arc<Shared>,
    _alive: Arc<Alive>,
}

struct Shared {
    id: String,
    capacity: usize,
    outbox: Mutex<Outbox>,
    wake: Notify,
    acked: watch::Sender<u64>,
    closed: std::sync::atomic::AtomicBool,
    stored: AtomicU64,
    dropped: AtomicU64,
    rejected: AtomicU64,
    last_seq: AtomicU64,
}

#[derive(Default)]
struct Outbox {
    /// Counter of the next event published.
    next: u64,
    /// Queued events with their encoded sizes; the front one has counter
    /// `next - queue.len()`.
    queue: VecDeque<(NewEvent, usize)>,
    /// Whether a full outbox has been warned about since it last had room.
    warned_full: bool,
}

/// Tells the task that every handle is gone.
struct Alive(Arc<Shared>);

impl Drop for Alive {
    fn drop(&mut self) {
        self.0.closed.store(true, Ordering::SeqCst);
        self.0.wake.notify_one();
    }
}

impl Publisher {
    /// A publisher to `<state_dir>/events.sock`, named after the publishing service.
    /// Must be called inside a tokio runtime.
    pub fn in_state_dir(state_dir: &Path, service: &str) -> Publisher {
        Publisher::new(state_dir.join("events.sock"), service, DEFAULT_OUTBOX)
    }

    /// A publisher to `socket` with an outbox of `capacity` events.
    pub fn new(socket: impl Into<PathBuf>, service: &str, capacity: usize) -> Publisher {
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        let id = format!("{service}-{}-{nanos:x}", std::process::id());
        let options = ClientOptions { deadline: Duration::from_secs(2), client_name: id.clone() };
        let client = Client::<Events>::new(socket, options);
        let shared = Arc::new(Shared {
            id,
            capacity: capacity.max(1),
            outbox: Mutex::new(Outbox { next: 1, ..Outbox::default() }),
            wake: Notify::new(),
            acked: watch::channel(0).0,
            closed: false.into(),
            stored: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
            last_seq: AtomicU64::new(0),
        });
        tokio::spawn(task::run(shared.clone(), client));
        Publisher { _alive: Arc::new(Alive(shared.clone())), shared }
    }

    /// This publisher's id: the first half of every idempotency key.
    pub fn id(&self) -> &str {
        &self.shared.id
    }

    /// Queues an event on its payload's topic. Never blocks; an invalid event is logged and
    /// counted, not returned, because an event never fails the operation it reports.
    pub fn publish(&self, namespace: &str, payload: impl Into<Payload>) {
        self.publish_event(NewEvent::new(namespace, payload));
    }

    /// Queues a prepared event (its topic must match its payload).
    pub fn publish_event(&self, event: NewEvent) {
        let size = match event.validate() {
            Ok(size) => size,
            Err(e) => {
                self.shared.rejected.fetch_add(1, Ordering::Relaxed);
                tracing::error!(publisher = %self.shared.id, error = %e, "event refused");
                return;
            }
        };
        {
            let mut outbox = lock(&self.shared.outbox);
            if outbox.queue.len() >= self.shared.capacity {
                self.shared.dropped.fetch_add(1, Ordering::Relaxed);
                if !outbox.warned_full {
                    outbox.warned_full = true;
                    tracing::warn!(publisher = %self.shared.id, capacity = self.shared.capacity,
                        "event outbox full: dropping new events until the events service catches up");
                }
                return;
            }
            outbox.queue.push_back((event, size));
            outbox.next += 1;
        }
        self.shared.wake.notify_one();
    }

    /// Waits until every event queued before this call is stored, or `timeout` passes.
    /// Returns whether everything was stored.
    pub async fn flush(&self, timeout: Duration) -> bool {
        let target = lock(&self.shared.outbox).next - 1;
        let mut rx = self.shared.acked.subscribe();
        tokio::time::timeout(timeout, rx.wait_for(|acked| *acked >= target)).await.is_ok_and(|r| r.is_ok())
    }

    /// The publisher's counters.
    pub fn stats(&self) -> PublisherStats {
        let s = &self.shared;
        PublisherStats {
            queued: lock(&s.outbox).queue.len() as u64,
            stored: s.stored.load(Ordering::Relaxed),
            dropped: s.dropped.load(Ordering::Relaxed),
            rejected: s.rejected.load(Ordering::Relaxed),
            last_seq: s.last_seq.load(Ordering::Relaxed),
        }
    }
}

impl std::fmt::Debug for Publisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Publisher").field("id", &self.shared.id).field("stats", &self.stats()).finish()
    }
}

/// The background sender, split out for size; see the module doc.
mod task {
    use super::*;

    /// How long the task keeps trying after every handle is dropped.
    const DRAIN_GRACE: Duration = Duration::from_secs(5);

    pub(super) async fn run(shared: Arc<Shared>, client: Client<Events>) {
        let mut backoff = Duration::from_millis(10);
        let mut failing = false;
        let mut closed_at: Option<tokio::time::Instant> = None;
        loop {
            let (first_counter, events) = {
                let outbox = lock(&shared.outbox);
                let first = outbox.next - outbox.queue.len() as u64;
                let mut bytes = 0;
                let batch = outbox
                    .queue
                    .iter()
                    .take(MAX_BATCH)
                    .enumerate()
                    .take_while(|(i, (_, size))| {
                        bytes += size;
                        *i == 0 || bytes <= MAX_BATCH_BYTES
                    })
                    .map(|(_, (event, _))| event.clone())
                    .collect::<Vec<_>>();
                (first, batch)
            };
            if events.is_empty() {
                if shared.closed.load(Ordering::SeqCst) {
                    return;
                }
                shared.wake.notified().await;
                continue;
            }
            let n = events.len();
            let req = PublishBatch { publisher: shared.id.clone(), first_counter, events };
            let result = client.call(req).await;
            let done = match result {
                Ok(published) => {
                    if failing {
                        tracing::warn!(publisher = %shared.id, "events service reachable again");
                        failing = false;
                    }
                    backoff = Duration::from_millis(10);
                    shared.stored.fetch_add(n as u64, Ordering::Relaxed);
                    if let Some(last) = published.seqs.last() {
                        shared.last_seq.store(*last, Ordering::Relaxed);
                    }
                    true
                }
                Err(e) if matches!(e.code, Code::InvalidArgument | Code::OutOfRange) => {
                    shared.rejected.fetch_add(n as u64, Ordering::Relaxed);
                    tracing::error!(publisher = %shared.id, error = %e, events = n, "events refused by the service");
                    true
                }
                Err(e) => {
                    if !failing {
                        tracing::warn!(publisher = %shared.id, error = %e, "events service unreachable; will retry");
                        failing = true;
                    }
                    false
                }
            };
            if done {
                let mut outbox = lock(&shared.outbox);
                let n = n.min(outbox.queue.len());
                outbox.queue.drain(..n);
                outbox.warned_full = false;
                shared.acked.send_replace(first_counter + n as u64 - 1);
                continue;
            }
            if shared.closed.load(Ordering::SeqCst) {
                let since = *closed_at.get_or_insert_with(tokio::time::Instant::now);
                if since.elapsed() > DRAIN_GRACE {
                    tracing::warn!(publisher = %shared.id, lost = lock(&shared.outbox).queue.len(),
                        "giving up on queued events at exit");
                    return;
                }
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(1));
        }
    }
}
