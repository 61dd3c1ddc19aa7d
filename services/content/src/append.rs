//! Appending an fd's bytes to an ingest (AppendFd): a reader thread fills one buffer while
//! the other is hashed and written. The reader never blocks for long: it waits for the fd
//! to become readable in short slices, so when the writer goes away (its session is done)
//! or the append fails, the thread stops and the ingest's lock is released even if the fd
//! is a pipe whose other end stays open.

use std::fs::File;
use std::io::Read;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::RecvTimeoutError;
use std::time::Duration;

use berth_ipc::{Error, Result};
use tokio_util::sync::CancellationToken;

use crate::ingest::Ingest;

/// Bytes read from the fd per write.
const APPEND_CHUNK: usize = 4 << 20;
/// How often a waiting side looks whether it should stop.
const TICK: Duration = Duration::from_millis(200);

/// Sets the flag when dropped: tells the reader thread to stop.
struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// Reads `fd` to its end into `ingest` from `offset`; returns the new end.
pub fn append_from(ingest: &mut Ingest, offset: u64, fd: OwnedFd, done: &CancellationToken) -> Result<u64> {
    let r = ingest.r#ref().to_string();
    let stop = Arc::new(AtomicBool::new(false));
    let (full_tx, full_rx) = std::sync::mpsc::sync_channel::<std::io::Result<Vec<u8>>>(1);
    let (free_tx, free_rx) = std::sync::mpsc::sync_channel::<Vec<u8>>(2);
    for _ in 0..2 {
        let _ = free_tx.send(vec![0u8; APPEND_CHUNK]);
    }
    let reader_stop = stop.clone();
    let reader_done = done.clone();
    std::thread::scope(move |s| {
        let _stop = StopOnDrop(stop);
        let gone = || Error::unavailable(format!("ingest {r:?}: its writer went away"));
        s.spawn(move || {
            let mut source = File::from(fd);
            let halted = || reader_stop.load(Ordering::Relaxed) || reader_done.is_cancelled();
            while let Ok(mut buf) = free_rx.recv() {
                buf.resize(APPEND_CHUNK, 0);
                let mut filled = 0;
                let read = loop {
                    if halted() {
                        return;
                    }
                    match berth_service_kit::fd::wait_readable(source.as_fd(), Some(TICK)) {
                        Ok(false) => continue,
                        Ok(true) => {}
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                        Err(e) => break Err(e),
                    }
                    match source.read(&mut buf[filled..]) {
                        Ok(0) => break Ok(()),
                        Ok(n) => {
                            filled += n;
                            if filled == buf.len() {
                                break Ok(());
                            }
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                        Err(e) => break Err(e),
                    }
                };
                buf.truncate(filled);
                let last = filled == 0 || read.is_err();
                if full_tx.send(read.map(|()| buf)).is_err() || last {
                    return;
                }
            }
        });
        let mut at = offset;
        let mut first = true;
        loop {
            let next = match full_rx.recv_timeout(TICK) {
                Ok(next) => next,
                Err(RecvTimeoutError::Timeout) if done.is_cancelled() => return Err(gone()),
                Err(RecvTimeoutError::Timeout) => continue,
                Err(RecvTimeoutError::Disconnected) if done.is_cancelled() => return Err(gone()),
                Err(RecvTimeoutError::Disconnected) => break,
            };
            let buf =
                next.map_err(|e| Error::from(e).context(format!("ingest {r:?}: reading the passed fd")))?;
            if buf.is_empty() && !first {
                break;
            }
            if done.is_cancelled() {
                return Err(gone());
            }
            at = ingest.write_at(at, &buf)?;
            first = false;
            if buf.is_empty() {
                break;
            }
            let _ = free_tx.send(buf);
        }
        Ok(at)
    })
}
