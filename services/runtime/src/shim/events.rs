//! The shim's events: `/tasks/start`, `/tasks/exec-started` and every `/tasks/exit`, in the
//! order they happen, through one publisher on a thread of its own. The thread (and its
//! small tokio runtime) exists only while there is something to send: it starts with an
//! event and ends once everything is stored and the queue has been idle a moment, so a
//! shim that only waits for its container stays small. Publishing start and exits from the
//! same queue keeps containerd's order (start → exit) even for a container that exits at
//! once.

use berth_ipc::sync::lock;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use berth_ipc::events::payload::Payload;
use tokio::sync::mpsc::{UnboundedSender, unbounded_channel};

/// How long the thread waits for another event before it ends.
const IDLE: Duration = Duration::from_millis(200);

/// The queue into the running thread, and what tells that everything queued is stored.
type Running = (UnboundedSender<Queued>, std::sync::mpsc::Receiver<()>, JoinHandle<()>);

/// An event, and who waits for it to be stored.
type Queued = (Payload, Option<std::sync::mpsc::Sender<()>>);
type Slot = Arc<Mutex<Option<Running>>>;

/// An event queued by [`ShimEvents::publish_stored`], to wait for.
pub struct Stored(Option<std::sync::mpsc::Receiver<()>>);

impl Stored {
    /// Waits up to `timeout` until the event is stored.
    pub fn wait(self, timeout: Duration) {
        if let Some(stored) = self.0 {
            let _ = stored.recv_timeout(timeout);
        }
    }
}

/// A lazily started event thread.
pub struct ShimEvents {
    state: PathBuf,
    namespace: String,
    inner: Slot,
}

impl ShimEvents {
    /// Events of a task in `namespace`, to `<state>/events.sock`.
    pub fn new(state: PathBuf, namespace: String) -> ShimEvents {
        ShimEvents { state, namespace, inner: Arc::new(Mutex::new(None)) }
    }

    /// Queues `payload`; never blocks for long.
    pub fn publish(&self, payload: impl Into<Payload>) {
        self.queue(payload.into(), None);
    }

    /// Queues `payload` and answers what waits until it is stored, so that what the
    /// caller answers next cannot overtake it in the log: `/tasks/start` before an
    /// `/tasks/exec-added` the runtime service publishes once `Start` is answered.
    /// Without an events socket there is no log to order (a shim run alone): no wait.
    pub fn publish_stored(&self, payload: impl Into<Payload>) -> Stored {
        if !self.state.join("events.sock").exists() {
            self.publish(payload);
            return Stored(None);
        }
        let (ack, stored) = std::sync::mpsc::channel();
        self.queue(payload.into(), Some(ack));
        Stored(Some(stored))
    }

    fn queue(&self, payload: Payload, ack: Option<std::sync::mpsc::Sender<()>>) {
        let mut inner = lock(&self.inner);
        if inner.is_none() {
            let (tx, mut rx) = unbounded_channel::<Queued>();
            let (stored_tx, stored_rx) = std::sync::mpsc::channel::<()>();
            let (state, ns, slot) = (self.state.clone(), self.namespace.clone(), self.inner.clone());
            let spawned =
                std::thread::Builder::new().name("events".into()).stack_size(256 << 10).spawn(move || {
                    let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else {
                        return;
                    };
                    let closed = rt.block_on(async move {
                        let publisher = berth_ipc::publisher::Publisher::in_state_dir(&state, "shim");
                        let closed = loop {
                            match tokio::time::timeout(IDLE, rx.recv()).await {
                                Ok(Some((p, None))) => publisher.publish(&ns, p),
                                Ok(Some((p, Some(ack)))) => {
                                    publisher.publish(&ns, p);
                                    publisher.flush(Duration::from_secs(5)).await;
                                    let _ = ack.send(());
                                }
                                Ok(None) => break true,
                                Err(_) => {
                                    publisher.flush(Duration::from_secs(30)).await;
                                    let mut guard = lock(&slot);
                                    if rx.is_empty() {
                                        *guard = None;
                                        break false;
                                    }
                                }
                            }
                        };
                        publisher.flush(Duration::from_secs(30)).await;
                        let _ = stored_tx.send(());
                        closed
                    });
                    // Closed by `finish`: the shim is about to exit, nothing to give back.
                    if !closed {
                        drop(rt);
                        super::sys::trim_heap();
                        super::sys::release_file_pages();
                    }
                });
            match spawned {
                Ok(handle) => *inner = Some((tx, stored_rx, handle)),
                Err(e) => {
                    eprintln!("berth-shim: events thread: {e}");
                    return;
                }
            }
        }
        if let Some((tx, _, _)) = inner.as_ref() {
            let _ = tx.send((payload, ack));
        }
    }

    /// Whether the event thread runs (events in flight, or just sent).
    pub fn busy(&self) -> bool {
        lock(&self.inner).is_some()
    }

    /// Closes the queue and waits up to `timeout` for the events to be stored (woken the
    /// moment they are, or when the thread ends without).
    pub fn finish(&self, timeout: Duration) {
        let Some((tx, stored, _thread)) = lock(&self.inner).take() else {
            return;
        };
        drop(tx);
        let _ = stored.recv_timeout(timeout);
    }
}
