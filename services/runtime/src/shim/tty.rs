//! A terminal task's pty. The OCI runtime's `create --console-socket` connects to a socket
//! the shim listens on and sends the pty master over it (SCM_RIGHTS); the shim then relays
//! everything the container writes to its terminal into its log as stdout (which the runtime
//! service streams to attach clients, live), and writes input and window sizes coming from
//! attach clients to the master.

use berth_ipc::sync::{lock, wait_timeout_while};
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use berth_ipc::runtime::OutputStream;
use berth_ipc::{Error, Result};

use super::relay::Output;
use super::sys;
use crate::spec::STDIN_ANNOTATION;

/// Whether the bundle's `config.json` asks for a terminal (`process.terminal`), and whether
/// for a stdin pipe (the annotation [`STDIN_ANNOTATION`]).
pub fn wants(config: &Path) -> (bool, bool) {
    let Ok(data) = std::fs::read(config) else { return (false, false) };
    let Ok(spec) = serde_json::from_slice::<serde_json::Value>(&data) else { return (false, false) };
    let terminal = spec.pointer("/process/terminal").and_then(serde_json::Value::as_bool).unwrap_or(false);
    let stdin = spec.get("annotations").and_then(|a| a.get(STDIN_ANNOTATION)).is_some_and(|v| v == "open");
    (terminal, stdin)
}

/// The socket the OCI runtime sends the pty master on.
pub struct ConsoleSocket {
    listener: UnixListener,
    path: PathBuf,
}

impl ConsoleSocket {
    /// Listens at `path` (in the shim's private dir).
    pub fn bind(path: &Path) -> Result<ConsoleSocket> {
        let _ = std::fs::remove_file(path);
        let listener = UnixListener::bind(path).map_err(|e| Error::internal_cause("console socket", e))?;
        Ok(ConsoleSocket { listener, path: path.to_path_buf() })
    }

    /// The path, for `--console-socket`.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The pty master, once the runtime's `create` has returned (it has connected and sent
    /// it by then; `timeout` covers a runtime that does so late).
    pub fn receive(self, timeout: Duration) -> Result<OwnedFd> {
        let fail = |what: &str| Error::internal_cause("console socket", what);
        self.listener.set_nonblocking(true).map_err(|e| fail(&e.to_string()))?;
        let deadline = Instant::now() + timeout;
        let conn = loop {
            match self.listener.accept() {
                Ok((conn, _)) => break conn,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock && Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(2));
                }
                Err(e) => return Err(fail(&format!("no terminal from the runtime: {e}"))),
            }
        };
        let _ = std::fs::remove_file(&self.path);
        conn.set_nonblocking(false).map_err(|e| fail(&e.to_string()))?;
        conn.set_read_timeout(Some(timeout)).map_err(|e| fail(&e.to_string()))?;
        receive_fd(&conn).ok_or_else(|| fail("no pty master received"))
    }
}

/// The pty master the runtime sends; any further fds attached to the message are closed.
fn receive_fd(conn: &UnixStream) -> Option<OwnedFd> {
    let mut name = [0u8; 4096];
    let (_, fds) = berth_ipc::fdpass::recv_fds(conn.as_raw_fd(), &mut name).ok()?;
    fds.into_iter().next()
}

/// The pty master of a running terminal task.
pub struct Tty {
    master: File,
    drained: Mutex<bool>,
    changed: Condvar,
}

impl Tty {
    /// Starts relaying the master's output into `log`.
    pub fn start(master: OwnedFd, log: Arc<Output>) -> Result<Arc<Tty>> {
        let master = File::from(master);
        let reader = master.try_clone().map_err(|e| Error::internal_cause("pty", e))?;
        let tty = Arc::new(Tty { master, drained: Mutex::new(false), changed: Condvar::new() });
        let relay = tty.clone();
        std::thread::Builder::new()
            .name("tty".into())
            .stack_size(64 << 10)
            .spawn(move || relay.relay(reader, log))
            .map_err(|e| Error::internal_cause("tty thread", e))?;
        Ok(tty)
    }

    /// Copies the terminal's output to the log until every slave end is closed (EIO).
    fn relay(&self, mut master: File, log: Arc<Output>) {
        let mut buf = vec![0u8; 8 << 10];
        loop {
            match master.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => log.write(OutputStream::Stdout, &buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
        drop(buf);
        *lock(&self.drained) = true;
        self.changed.notify_all();
    }

    /// Waits (at most `timeout`) until the relay has copied everything the task wrote.
    pub fn wait_drained(&self, timeout: Duration) {
        let guard = lock(&self.drained);
        drop(wait_timeout_while(&self.changed, guard, timeout, |drained| !*drained));
    }

    /// Types `data` into the terminal.
    pub fn write(&self, data: &[u8]) -> Result<()> {
        (&self.master).write_all(data).map_err(|e| Error::precondition(format!("terminal: {e}")))
    }

    /// Sets the terminal's window size (the foreground process gets SIGWINCH).
    pub fn resize(&self, cols: u16, rows: u16) -> Result<()> {
        sys::set_window_size(self.master.as_fd(), cols, rows)
            .map_err(|e| Error::precondition(format!("terminal resize: {e}")))
    }
}
