//! The shim's events: `/tasks/start`, `/tasks/exec-started` and every `/tasks/exit`, in the
//! order they happen, through one publisher on a thread of its own (started with the first
//! event, so a shim that never publishes carries no tokio runtime). Publishing start and
//! exits from the same queue keeps containerd's order (start → exit) even for a container
//! that exits at once.

use std::path::PathBuf;
use std::sync::Mutex;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use berth_ipc::events::payload::Payload;
use tokio::sync::mpsc::{UnboundedSender, unbounded_channel};

/// A lazily started event thread.
pub struct ShimEvents {
    state: PathBuf,
    namespace: String,
    inner: Mutex<Option<(UnboundedSender<Payload>, JoinHandle<()>)>>,
}

impl ShimEvents {
    /// Events of a task in `namespace`, to `<state>/events.sock`.
    pub fn new(state: PathBuf, namespace: String) -> ShimEvents {
        ShimEvents { state, namespace, inner: Mutex::new(None) }
    }

    /// Queues `payload`; never blocks.
    pub fn publish(&self, payload: impl Into<Payload>) {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if inner.is_none() {
            let (tx, mut rx) = unbounded_channel::<Payload>();
            let (state, ns) = (self.state.clone(), self.namespace.clone());
            let spawned =
                std::thread::Builder::new().name("events".into()).stack_size(256 << 10).spawn(move || {
                    let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else {
                        return;
                    };
                    rt.block_on(async move {
                        let publisher = berth_ipc::publisher::Publisher::in_state_dir(&state, "shim");
                        while let Some(p) = rx.recv().await {
                            publisher.publish(&ns, p);
                        }
                        publisher.flush(Duration::from_secs(30)).await;
                    });
                });
            match spawned {
                Ok(handle) => *inner = Some((tx, handle)),
                Err(e) => {
                    eprintln!("berth-shim: events thread: {e}");
                    return;
                }
            }
        }
        if let Some((tx, _)) = inner.as_ref() {
            let _ = tx.send(payload.into());
        }
    }

    /// Closes the queue and waits up to `timeout` for the events to be stored.
    pub fn finish(&self, timeout: Duration) {
        let Some((tx, handle)) = self.inner.lock().unwrap_or_else(|p| p.into_inner()).take() else { return };
        drop(tx);
        let deadline = Instant::now() + timeout;
        while !handle.is_finished() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}
