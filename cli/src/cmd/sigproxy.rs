//! What a foreground `berth run` (without `-t`) does besides showing the output: every
//! catchable signal it receives goes to the task's init as received (SIGINT stays SIGINT,
//! as `ctr run` and `docker run --sig-proxy` do), and with `--rm` it holds a `Guard` on
//! the task, so that if this client is killed (even by SIGKILL, which it cannot catch) the
//! runtime service kills the task and removes the container instead of leaving it
//! running unnoticed.

use std::time::Duration;

use berth_ipc::Client;
use berth_ipc::runtime::{Guard, KillTask, Runtime, TaskRef};
use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// The signals forwarded: every catchable one a user or supervisor sends to stop, reload
/// or poke a process. SIGCHLD, SIGPIPE, SIGURG and SIGWINCH concern this client only (the
/// window size goes to a task with a terminal through its resize path, see `tty`); SIGTSTP
/// and the job-control signals keep their meaning for the client's own shell.
pub const FORWARDED: &[i32] =
    &[libc::SIGHUP, libc::SIGINT, libc::SIGQUIT, libc::SIGUSR1, libc::SIGUSR2, libc::SIGALRM, libc::SIGTERM];

/// Signals caught from now on (no longer acting on this client), queued until
/// [`Signals::forward`] has a task to send them to.
pub struct Signals {
    rx: mpsc::UnboundedReceiver<i32>,
    listeners: Vec<JoinHandle<()>>,
}

impl Signals {
    /// Catches every signal of [`FORWARDED`].
    pub fn catch() -> anyhow::Result<Signals> {
        let (tx, rx) = mpsc::unbounded_channel();
        let mut listeners = Vec::new();
        for &num in FORWARDED {
            let mut sig: Signal = signal(SignalKind::from_raw(num))?;
            let tx = tx.clone();
            listeners.push(tokio::spawn(async move {
                while sig.recv().await.is_some() {
                    if tx.send(num).is_err() {
                        return;
                    }
                }
            }));
        }
        Ok(Signals { rx, listeners })
    }

    /// Sends each signal caught (before and after this call) to `task`'s init, in order,
    /// until the returned handle is aborted. A signal for a process that has just exited
    /// is dropped.
    pub fn forward(mut self, rt: Client<Runtime>, task: TaskRef) -> JoinHandle<()> {
        tokio::spawn(async move {
            while let Some(signal) = self.rx.recv().await {
                let _ = rt.call(KillTask { task: task.clone(), signal, all: false }).await;
            }
        })
    }
}

impl Drop for Signals {
    fn drop(&mut self) {
        for l in &self.listeners {
            l.abort();
        }
    }
}

/// Holds a `Guard` on `task` until the runtime service answers its exit, opening a new one
/// whenever the service restarts under it. The handle ends once the exit is known (or the
/// guard is refused for good).
pub fn guard(rt: Client<Runtime>, task: TaskRef) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            let again = match rt.stream(Guard(task.clone())).await {
                Ok(mut stream) => match stream.next().await {
                    Some(Ok(_)) | None => return,
                    Some(Err(e)) => e.is(berth_ipc::Code::Unavailable),
                },
                Err(e) => e.is(berth_ipc::Code::Unavailable),
            };
            if !again {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
}

/// Waits a moment for the guard to see the exit, then lets it go (its end is then no
/// longer a client vanishing: the task has exited).
pub async fn release(guard: JoinHandle<()>) {
    let abort = guard.abort_handle();
    if tokio::time::timeout(Duration::from_secs(2), guard).await.is_err() {
        abort.abort();
    }
}
