//! A process's output: the shim gives the OCI runtime the write ends of two pipes as the
//! process's stdout and stderr and copies what comes out of them (or out of a terminal) into
//! the process's log file, with a timestamp per record, capped and rotated
//! ([`crate::logfile`]), or (the init of a container with a `log_path`) at that path,
//! reopened on request. No other process is involved; the copy threads end when every
//! writer of the pipes is gone, and `Wait` waits for them so that an exit is told only once
//! the output before it is in the log.

use berth_ipc::sync::{lock, wait_timeout_while};
use std::io::{PipeReader, PipeWriter, Read};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use berth_ipc::runtime::OutputStream;
use berth_ipc::{Error, Result};

use crate::bundle::now_ns;
use crate::logfile::{LogPaths, LogWriter};

/// How much of the last stderr output is kept in memory, for an OCI runtime's error message.
const STDERR_TAIL: usize = 600;

/// One process's log and its copy threads.
pub struct Output {
    log: Mutex<LogWriter>,
    /// Copy threads still running.
    running: Mutex<u32>,
    changed: Condvar,
    stderr_tail: Mutex<Vec<u8>>,
}

impl Output {
    /// Opens the log of `paths`.
    pub fn open(paths: LogPaths, max_bytes: u64, max_files: u32) -> Result<Arc<Output>> {
        let file = paths.current();
        let log = LogWriter::open(paths, max_bytes, max_files)
            .map_err(|e| Error::internal_cause(format_args!("log {}", file.display()), e))?;
        Ok(Arc::new(Output {
            log: Mutex::new(log),
            running: Mutex::new(0),
            changed: Condvar::new(),
            stderr_tail: Mutex::new(Vec::new()),
        }))
    }

    /// Appends what the process wrote on `stream`; a failing log loses the output, never
    /// blocks the process.
    pub fn write(&self, stream: OutputStream, data: &[u8]) {
        if stream == OutputStream::Stderr {
            let mut tail = lock(&self.stderr_tail);
            tail.extend_from_slice(data);
            let excess = tail.len().saturating_sub(STDERR_TAIL);
            tail.drain(..excess);
        }
        let mut log = lock(&self.log);
        if let Err(e) = log.write(stream, now_ns(), data) {
            eprintln!("berth-shim: log: {e}");
        }
    }

    /// Closes the log file and opens the one now at its path (created if it was renamed
    /// away): under the log's lock, so every write before this went to the old file and
    /// every one after goes to the new one. On failure the old file is written on.
    pub fn reopen(&self) -> std::io::Result<()> {
        lock(&self.log).reopen()
    }

    /// The log file being written.
    pub fn log_path(&self) -> std::path::PathBuf {
        lock(&self.log).path()
    }

    /// Two pipes whose write ends are the process's stdout and stderr; their read ends are
    /// copied into the log by two threads.
    pub fn pipes(self: &Arc<Self>) -> Result<(PipeWriter, PipeWriter)> {
        let pipe = || std::io::pipe().map_err(|e| Error::internal_cause("output pipe", e));
        let (out_r, out_w) = pipe()?;
        let (err_r, err_w) = pipe()?;
        self.copy(out_r, OutputStream::Stdout)?;
        self.copy(err_r, OutputStream::Stderr)?;
        Ok((out_w, err_w))
    }

    fn copy(self: &Arc<Self>, mut from: PipeReader, stream: OutputStream) -> Result<()> {
        *lock(&self.running) += 1;
        let me = self.clone();
        let spawned =
            std::thread::Builder::new().name("output".into()).stack_size(64 << 10).spawn(move || {
                let mut buf = vec![0u8; 8 << 10];
                loop {
                    match from.read(&mut buf) {
                        Ok(0) => break,
                        Ok(n) => me.write(stream, &buf[..n]),
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                        Err(_) => break,
                    }
                }
                me.done();
            });
        if let Err(e) = spawned {
            self.done();
            return Err(Error::internal_cause("output thread", e));
        }
        Ok(())
    }

    /// One copy thread (or a terminal's relay) has finished.
    pub fn done(&self) {
        let mut running = lock(&self.running);
        *running = running.saturating_sub(1);
        self.changed.notify_all();
    }

    /// Waits (at most `timeout`) until every copy thread has reached the end of its pipe.
    pub fn wait_drained(&self, timeout: Duration) {
        let guard = lock(&self.running);
        drop(wait_timeout_while(&self.changed, guard, timeout, |n| *n > 0));
    }

    /// The last few hundred bytes written on stderr (the OCI runtime's error, on failure).
    pub fn stderr_tail(&self) -> Vec<u8> {
        lock(&self.stderr_tail).clone()
    }
}
