//! [`RemoteWriter`]: an open ingest on the content service, written through `content.sock`.
//!
//! It pipelines: [`RemoteWriter::push`] sends a chunk without waiting for the previous ones
//! to be answered, keeping up to [`PIPELINE_DEPTH`] in flight; errors surface at the next
//! push, flush or commit.
//!
//! It rides through a restart of the service. A write session lives as long as the
//! connection that opened it, so when that connection is lost (the service was killed and
//! restarted) the writer reopens its ref, which resumes the ingest where its data ends, and
//! sends again what the reopened ingest lacks: the chunks the service had not acknowledged,
//! and acknowledged ones still in the [`REPLAY_WINDOW`] (the service stages up to 4 MiB of
//! acknowledged bytes in memory before they reach the file: a SIGKILL loses them). Should
//! the reopened ingest hold less than that (its data was lost, not only the process), the
//! writer cannot supply the missing bytes: it reports `Unavailable` and its
//! [`offset`](RemoteWriter::offset) says where the caller must resume.
//! A commit whose answer was lost is checked: the ingest still whole is committed again;
//! an ingest that is gone while the expected blob is there was committed.

use std::collections::VecDeque;
use std::path::Path;
use std::time::Duration;

use tokio::task::JoinHandle;

use crate::client::{Client, Stream};
use crate::content::store::ContentWriter;
use crate::content::{
    Abort, BlobInfo, Bytes, CommitWriter, Content, Info, IngestStatus, OpenWriter, WriteChunk, WriterEvent,
    readfd,
};
use crate::digest::Digest;
use crate::error::{Code, Error, Result};

/// Chunks a [`RemoteWriter`] keeps in flight.
pub const PIPELINE_DEPTH: usize = 4;
/// Acknowledged bytes a writer keeps to send again after a restart: twice what the content
/// service stages in memory before its direct writes (`services/content/src/direct.rs`).
pub const REPLAY_WINDOW: u64 = 8 << 20;
/// How many times one writer reopens its ref after losing its session.
const MAX_REOPENS: u32 = 8;
/// How long opening a ref waits while another writer holds it (another job fetching the
/// same blob, as two pulls sharing a layer do) before giving up with `Unavailable`.
pub const HELD_WAIT: Duration = Duration::from_secs(300);

/// An open ingest on the content service. Dropping it releases the ref's lock.
pub struct RemoteWriter {
    client: Client<Content>,
    /// What opened it (to reopen it).
    open: OpenWriter,
    /// The `OpenWriter` stream: the lock lives as long as it does.
    lock: Stream<OpenWriter>,
    session: u64,
    /// The next chunk's `seq`.
    seq: u64,
    /// Where the next pushed chunk goes.
    offset: u64,
    status: IngestStatus,
    inflight: VecDeque<JoinHandle<Result<u64>>>,
    /// The chunks sent and not yet acknowledged, oldest first: `(offset, bytes)`.
    unacked: VecDeque<(u64, Bytes)>,
    /// The latest acknowledged chunks, at most about [`REPLAY_WINDOW`] bytes, oldest first.
    window: VecDeque<(u64, Bytes)>,
    /// Bytes in `window`.
    window_len: u64,
    reopens: u32,
}

impl RemoteWriter {
    /// Takes `open.ref`'s writer lock.
    /// Takes `open.ref`'s writer lock; with `wait`, waits up to [`HELD_WAIT`] while another
    /// writer holds it, else answers that writer's `Unavailable` at once.
    pub(super) async fn open(client: Client<Content>, open: OpenWriter, wait: bool) -> Result<RemoteWriter> {
        let (lock, session, status) =
            if wait { lock(&client, &open).await? } else { lock_once(&client, &open).await? };
        Ok(RemoteWriter {
            client,
            open,
            lock,
            session,
            seq: 0,
            offset: status.offset,
            status,
            inflight: VecDeque::new(),
            unacked: VecDeque::new(),
            window: VecDeque::new(),
            window_len: 0,
            reopens: 0,
        })
    }

    /// The session id.
    pub fn session(&self) -> u64 {
        self.session
    }

    /// Where the next pushed chunk will be written.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Sends `data` at the current offset without waiting for its answer (at most
    /// [`PIPELINE_DEPTH`] in flight; waits for the oldest when full).
    pub async fn push(&mut self, data: Vec<u8>) -> Result<()> {
        while self.inflight.len() >= PIPELINE_DEPTH {
            self.settle_oldest().await?;
        }
        let len = data.len() as u64;
        self.send(self.offset, Bytes::new(data));
        self.offset += len;
        Ok(())
    }

    fn send(&mut self, offset: u64, data: Bytes) {
        let req = WriteChunk { session: self.session, seq: self.seq, offset, data: data.clone() };
        self.seq += 1;
        self.unacked.push_back((offset, data));
        let client = self.client.clone();
        self.inflight.push_back(tokio::spawn(async move { client.call(req).await }));
    }

    /// Has the service read `fd` to its end and append it (over the fd socket, so the bytes
    /// do not cross a socket); returns the new end. Waits for pushed chunks first. What it
    /// read cannot be read again: this append does not ride through a restart.
    pub async fn append_from(&mut self, fd: std::os::fd::BorrowedFd<'_>) -> Result<u64> {
        self.flush().await?;
        let req = readfd::AppendFdRequest { session: self.session, seq: self.seq, offset: self.offset };
        self.seq += 1;
        let socket = self.client.socket().parent().unwrap_or(Path::new(".")).join(readfd::SOCKET_NAME);
        let end = readfd::append_fd(&socket, req, fd).await?;
        self.status.offset = end;
        self.offset = end;
        Ok(end)
    }

    /// Waits for every pushed chunk; returns the service's offset.
    pub async fn flush(&mut self) -> Result<u64> {
        while !self.inflight.is_empty() {
            self.settle_oldest().await?;
        }
        Ok(self.status.offset)
    }

    async fn settle_oldest(&mut self) -> Result<()> {
        let Some(handle) = self.inflight.pop_front() else { return Ok(()) };
        let result = handle.await.map_err(|e| Error::internal_cause("write task", e))?;
        match result {
            Ok(end) => {
                self.acked(end);
                Ok(())
            }
            Err(e) => {
                for h in self.inflight.drain(..) {
                    h.abort();
                }
                if self.session_lost(&e) {
                    return self.resume().await;
                }
                self.unacked.clear();
                self.offset = self.status.offset;
                Err(e)
            }
        }
    }

    /// The oldest unacknowledged chunk was acknowledged, the ingest now ending at `end`.
    fn acked(&mut self, end: u64) {
        if let Some(chunk) = self.unacked.pop_front() {
            self.window_len += chunk.1.len() as u64;
            self.window.push_back(chunk);
        }
        while let Some(front) = self.window.front()
            && self.window_len - front.1.len() as u64 >= REPLAY_WINDOW
        {
            self.window_len -= front.1.len() as u64;
            self.window.pop_front();
        }
        self.status.offset = end;
    }

    fn forget_window(&mut self) {
        self.window.clear();
        self.window_len = 0;
    }

    /// Did `e` come from the session going away with its connection (a service restart)?
    fn session_lost(&self, e: &Error) -> bool {
        (e.is(Code::Unavailable) || e.is(Code::FailedPrecondition)) && !self.lock.connected()
    }

    /// Reopens the ref and sends again what the reopened ingest lacks of the chunks kept;
    /// on success everything sent so far is acknowledged.
    async fn resume(&mut self) -> Result<()> {
        loop {
            let end = self.reopen().await?;
            if self.replay(end).await? {
                return Ok(());
            }
        }
    }

    /// Sends again, on the reopened session whose ingest ends at `end`, what it lacks of the
    /// chunks kept. `Ok(false)`: the session was lost again meanwhile.
    async fn replay(&mut self, end: u64) -> Result<bool> {
        let mut chunks: Vec<(u64, Bytes)> = self.window.drain(..).collect();
        chunks.extend(self.unacked.drain(..));
        self.window_len = 0;
        // A restart from offset 0 replaces whatever the ingest held: send all of it.
        let from = match chunks.first() {
            Some((0, _)) => 0,
            _ => end,
        };
        let first = chunks.first().map_or(self.offset, |c| c.0);
        if from < first || from > self.offset {
            let r = &self.open.r#ref;
            let sent = self.offset;
            // Resume where the ingest ends; one longer than what this writer wrote is not
            // its own: start it over.
            self.offset = if end > sent { 0 } else { end };
            self.status.offset = self.offset;
            return Err(Error::unavailable(format!(
                "ingest {r:?}: the content service restarted and the ingest holds {end} of the \
                 {sent} bytes sent; resume at {}",
                self.offset
            )));
        }
        for (off, data) in chunks {
            let stop = off + data.len() as u64;
            if stop <= from && !(off == 0 && from == 0) {
                continue;
            }
            let skip = usize::try_from(from.saturating_sub(off)).unwrap_or(usize::MAX).min(data.len());
            let rest = if skip == 0 { data } else { Bytes::new(data[skip..].to_vec()) };
            self.send(off.max(from), rest);
        }
        while let Some(handle) = self.inflight.pop_front() {
            match handle.await.map_err(|e| Error::internal_cause("write task", e))? {
                Ok(end) => self.acked(end),
                Err(e) => {
                    for h in self.inflight.drain(..) {
                        h.abort();
                    }
                    if self.session_lost(&e) {
                        return Ok(false);
                    }
                    self.unacked.clear();
                    self.offset = self.status.offset;
                    return Err(e);
                }
            }
        }
        Ok(true)
    }

    /// Takes the ref's lock again on a new session; returns where its data ends.
    async fn reopen(&mut self) -> Result<u64> {
        self.reopens += 1;
        if self.reopens > MAX_REOPENS {
            return Err(Error::unavailable(format!(
                "ingest {:?}: lost its write session {} times, giving up",
                self.open.r#ref, MAX_REOPENS
            )));
        }
        // The old session's lock may still be let go of (same service, lost connection), or
        // another job may have taken the ref meanwhile: `lock` waits for either.
        let (lock, session, status) = lock(&self.client, &self.open).await?;
        tracing::info!(r#ref = %self.open.r#ref, offset = status.offset, "write session reopened");
        self.lock = lock;
        self.session = session;
        self.seq = 0;
        self.status.offset = status.offset;
        Ok(status.offset)
    }

    async fn commit_once(&mut self, size: Option<u64>, digest: Option<Digest>) -> Result<BlobInfo> {
        self.client.call(CommitWriter { session: self.session, size, digest }).await
    }
}

/// Takes `open.ref`'s lock, waiting up to [`HELD_WAIT`] while another writer holds it (or
/// the service is restarting), as containerd's clients wait on `Unavailable`.
async fn lock(
    client: &Client<Content>,
    open: &OpenWriter,
) -> Result<(Stream<OpenWriter>, u64, IngestStatus)> {
    let start = std::time::Instant::now();
    let mut nap = Duration::from_millis(10);
    loop {
        // A service that does not come back fails here, after the client's deadline.
        let mut lock = client.stream(open.clone()).await?;
        let e = match lock.next().await {
            Some(Ok(WriterEvent::Opened { session, status })) => return Ok((lock, session, status)),
            Some(Err(e)) if e.is(Code::Unavailable) => e,
            Some(Err(e)) => return Err(e),
            None => {
                Error::unavailable(format!("ingest {:?}: writer stream ended before opening", open.r#ref))
            }
        };
        // Answered `Unavailable` on a live connection: another writer holds the ref. Lost
        // the connection instead: the service is restarting, worth the client's deadline.
        let (limit, what) = if lock.connected() {
            (HELD_WAIT, format!("waited {} s for the ingest's writer lock", HELD_WAIT.as_secs()))
        } else {
            (client.deadline(), format!("gave up after {:?}", client.deadline()))
        };
        if start.elapsed() >= limit {
            return Err(e.context(what));
        }
        tokio::time::sleep(nap).await;
        nap = (nap * 2).min(Duration::from_millis(250));
    }
}

async fn lock_once(
    client: &Client<Content>,
    open: &OpenWriter,
) -> Result<(Stream<OpenWriter>, u64, IngestStatus)> {
    let mut lock = client.stream(open.clone()).await?;
    match lock.next().await {
        Some(Ok(WriterEvent::Opened { session, status })) => Ok((lock, session, status)),
        Some(Err(e)) => Err(e),
        None => {
            Err(Error::unavailable(format!("ingest {:?}: writer stream ended before opening", open.r#ref)))
        }
    }
}

impl ContentWriter for RemoteWriter {
    fn status(&self) -> IngestStatus {
        self.status.clone()
    }

    async fn write_at(&mut self, offset: u64, data: Vec<u8>) -> Result<u64> {
        self.flush().await?;
        if offset == 0 {
            self.forget_window(); // a restart: what came before is no longer the ingest's
        }
        let len = data.len() as u64;
        self.offset = offset + len;
        self.send(offset, Bytes::new(data));
        self.flush().await?;
        debug_assert_eq!(self.status.offset, offset + len);
        Ok(self.status.offset)
    }

    async fn commit(mut self, size: Option<u64>, digest: Option<Digest>) -> Result<BlobInfo> {
        self.flush().await?;
        loop {
            let e = match self.commit_once(size, digest).await {
                Err(e) if self.session_lost(&e) => e,
                r => return r,
            };
            let end = self.reopen().await.map_err(|r| r.context(format!("commit lost: {}", e.message)))?;
            if end == self.offset {
                continue; // still whole: commit it again
            }
            // The ingest is gone (or holds less): did the lost commit make the blob?
            if let Some(d) = digest {
                match self.client.call(Info { digest: d }).await {
                    Ok(info) if size.is_none_or(|s| s == info.size) => {
                        let (r, session) = (self.open.r#ref.clone(), Some(self.session));
                        let _ = self.client.call(Abort { r#ref: r, session }).await;
                        return Ok(info);
                    }
                    Ok(_) => {}
                    Err(e) if e.is(Code::NotFound) => {}
                    Err(e) => return Err(e),
                }
            }
            // Not committed, and bytes lost with the process: send them again, then commit.
            let mut end = end;
            while !self.replay(end).await? {
                end = self.reopen().await?;
                if end == self.offset {
                    break;
                }
            }
        }
    }

    async fn abort(mut self) -> Result<()> {
        let _ = self.flush().await;
        let r = self.status.r#ref.clone();
        self.client.call(Abort { r#ref: r, session: Some(self.session) }).await
    }
}
