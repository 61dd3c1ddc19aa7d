//! An interactive terminal session with a task that has a terminal (`berth run -t`,
//! `berth tasks attach` of such a task): the local terminal goes into raw mode (restored on
//! every way out), keystrokes go to the task's pty, window size changes follow SIGWINCH,
//! and the task's output comes back through the attach stream.

mod sys;

use std::io::Read;
use std::os::fd::AsFd;

use berth_ipc::Client;
use berth_ipc::runtime::{Attach, CloseStdin, ResizePty, Runtime, StartTask, TaskRef, WaitTask, WriteStdin};
use nix::sys::termios::{self, SetArg, Termios};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;

use super::namespaces::wire;
use super::run::pump;

/// The local terminal in raw mode; dropping it restores the saved mode.
pub struct RawMode {
    saved: Termios,
}

impl RawMode {
    /// Raw mode on stdin, when stdin is a terminal (`None` otherwise). Input already typed
    /// is kept (`TCSANOW`), so keystrokes typed during start-up are not lost.
    pub fn enter() -> anyhow::Result<Option<RawMode>> {
        let stdin = std::io::stdin();
        let Ok(saved) = termios::tcgetattr(stdin.as_fd()) else { return Ok(None) };
        let mut raw = saved.clone();
        termios::cfmakeraw(&mut raw);
        termios::tcsetattr(stdin.as_fd(), SetArg::TCSANOW, &raw)?;
        Ok(Some(RawMode { saved }))
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        let _ = termios::tcsetattr(std::io::stdin().as_fd(), SetArg::TCSANOW, &self.saved);
    }
}

/// Whether a container's OCI spec gives its process a terminal.
pub fn spec_has_terminal(spec: &[u8]) -> bool {
    serde_json::from_slice::<serde_json::Value>(spec)
        .ok()
        .and_then(|s| s.pointer("/process/terminal").and_then(serde_json::Value::as_bool))
        .unwrap_or(false)
}

/// The local window size, sent to the task.
async fn resize(rt: &Client<Runtime>, task: &TaskRef) {
    if let Some((cols, rows)) = sys::window_size(std::io::stdout().as_fd()) {
        let _ = rt.call(ResizePty { task: task.clone(), cols, rows }).await;
    }
}

/// Reads stdin on a plain thread (a blocking read must not hold up the runtime's exit),
/// passing each chunk on; ends at end of input.
fn read_stdin() -> mpsc::Receiver<Vec<u8>> {
    let (tx, rx) = mpsc::channel(16);
    let _ = std::thread::Builder::new().name("stdin".into()).spawn(move || {
        let mut buf = vec![0u8; 4096];
        let mut stdin = std::io::stdin().lock();
        loop {
            match stdin.read(&mut buf) {
                Ok(0) => return,
                Ok(n) => {
                    if tx.blocking_send(buf[..n].to_vec()).is_err() {
                        return;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => return,
            }
        }
    });
    rx
}

/// Local stdin to a process started with a stdin pipe (`run -i`, `tasks exec -i`), then its
/// end (`CloseStdin`) at end of input. Stops early when the process no longer takes input.
pub async fn feed_stdin(rt: Client<Runtime>, task: TaskRef) {
    let mut input = read_stdin();
    while let Some(data) = input.recv().await {
        if rt.call(WriteStdin { task: task.clone(), data }).await.is_err() {
            return;
        }
    }
    let _ = rt.call(CloseStdin(task)).await;
}

/// Input and window size to the task until the session ends.
async fn forward(rt: Client<Runtime>, task: TaskRef) {
    let mut input = read_stdin();
    let mut winch = signal(SignalKind::window_change()).ok();
    loop {
        tokio::select! {
            data = input.recv() => match data {
                Some(data) => {
                    if rt.call(WriteStdin { task: task.clone(), data }).await.is_err() {
                        return;
                    }
                }
                None => return,
            },
            Some(()) = async { match winch.as_mut() { Some(w) => w.recv().await, None => None } } => {
                resize(&rt, &task).await;
            }
        }
    }
}

/// Runs the session: raw mode, window size, attach, start (for `berth run`), then output
/// until the task exits; answers its exit status. SIGTERM and SIGHUP end the session
/// (leaving the task running) with the terminal restored.
pub async fn session(rt: &Client<Runtime>, task: &TaskRef, start: bool) -> anyhow::Result<u32> {
    let mut term = signal(SignalKind::terminate())?;
    let mut hangup = signal(SignalKind::hangup())?;
    let raw = RawMode::enter()?;
    resize(rt, task).await;
    let stream = rt.stream(Attach(task.clone())).await.map_err(wire)?;
    if start {
        rt.call(StartTask(task.clone())).await.map_err(wire)?;
    }
    let input = tokio::spawn(forward(rt.clone(), task.clone()));
    let ended = tokio::select! {
        r = pump(stream) => r,
        _ = term.recv() => Err(anyhow::anyhow!("terminated; task {} left running", task.id)),
        _ = hangup.recv() => Err(anyhow::anyhow!("hung up; task {} left running", task.id)),
    };
    input.abort();
    drop(raw);
    ended?;
    let exit = rt.call(WaitTask(task.clone())).await.map_err(wire)?;
    Ok(exit.status)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminal_in_spec() {
        assert!(spec_has_terminal(br#"{"process":{"terminal":true}}"#));
        assert!(!spec_has_terminal(br#"{"process":{"terminal":false}}"#));
        assert!(!spec_has_terminal(br#"{"process":{}}"#));
        assert!(!spec_has_terminal(b"not json"));
    }
}
