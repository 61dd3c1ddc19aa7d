//! A SPDY/3.1 connection over any byte stream: one task reads frames and routes them to
//! streams, one writes what the streams send, in order, through the connection's single
//! compression context.
//!
//! Memory is bounded whatever the peer does: each stream holds at most [`INBOX_FRAMES`]
//! unread data frames, each at most [`Options::limits`]' `max_data` long. When a stream's
//! reader falls behind, the connection's reader waits for it (so TCP pushes back on the
//! peer) instead of buffering. Outgoing frames wait in a queue of [`OUTBOX_FRAMES`] for the
//! writer, which waits on the socket: a peer that stops reading stops our writers, it does
//! not grow a buffer. The peer's flow-control windows are not enforced (Go's spdystream,
//! which kubectl and the kubelet use, never sends `WINDOW_UPDATE`), but this end sends them
//! as it consumes data (every 32 KiB), for peers that do.

use std::collections::HashMap;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::{Decoder, Encoder, Frame, Headers, Limits, flags, rst};

/// Unread data frames a stream holds before the connection's reader waits for it.
pub const INBOX_FRAMES: usize = 16;
/// Frames queued for the writer before senders wait.
pub const OUTBOX_FRAMES: usize = 64;
/// The longest data frame this end sends.
pub const MAX_SEND: usize = 32 * 1024;

/// Which end of the connection this is: it decides stream id parity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Opens odd streams; the peer (a server) replies.
    Client,
    /// Accepts the peer's odd streams.
    Server,
}

/// How a session treats its peer.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Frame and header limits.
    pub limits: Limits,
    /// Streams open at once; a `SYN_STREAM` past this is refused (`REFUSED_STREAM`).
    pub max_streams: usize,
    /// Accepted streams not yet taken by [`Session::accept`]; past this, refused.
    pub backlog: usize,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            limits: Limits { max_data: 1 << 20, max_control: 1 << 20, max_headers: 256 * 1024 },
            max_streams: 1024,
            backlog: 64,
        }
    }
}

enum Command {
    Frame(Frame),
    /// Flush, then shut the write half.
    Close(oneshot::Sender<()>),
}

struct Slot {
    inbox: mpsc::Sender<Vec<u8>>,
    reset: Arc<AtomicBool>,
    /// Bytes delivered and not yet given back in a `WINDOW_UPDATE`.
    unacked: u32,
}

/// Consumed bytes are given back to the peer's window in `WINDOW_UPDATE`s of at least this
/// much (half the 64 KiB initial window), not one per data frame.
const WINDOW_ACK: u32 = 32 * 1024;

#[derive(Default)]
struct Table {
    streams: HashMap<u32, Slot>,
    /// Openers waiting for the peer's `SYN_REPLY` (or its `RST_STREAM` status).
    replies: HashMap<u32, oneshot::Sender<Result<Headers, u32>>>,
    /// The highest stream id the peer opened.
    last_peer: u32,
    /// No new streams: the peer sent `GOAWAY`, or the connection ended.
    going_away: bool,
    /// The connection's bytes delivered and not yet given back.
    unacked: u32,
}

struct Shared {
    table: Mutex<Table>,
    next_id: AtomicU32,
    out: mpsc::Sender<Command>,
    /// Why the connection ended, once it has.
    ended: Mutex<Option<String>>,
    /// Turns true when the connection has ended.
    closed: tokio::sync::watch::Sender<bool>,
}

impl Shared {
    fn table(&self) -> MutexGuard<'_, Table> {
        // A panic while holding the table can only come from a bug here; the data (maps of
        // channels) stays consistent, so go on with it.
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn ended(&self) -> io::Error {
        let why = self.ended.lock().unwrap_or_else(|p| p.into_inner()).clone();
        io::Error::new(io::ErrorKind::BrokenPipe, why.unwrap_or_else(|| "SPDY connection closed".into()))
    }

    async fn send(&self, frame: Frame) -> io::Result<()> {
        self.out.send(Command::Frame(frame)).await.map_err(|_| self.ended())
    }
}

/// One SPDY connection.
pub struct Session {
    shared: Arc<Shared>,
    incoming: mpsc::Receiver<Stream>,
    reader: JoinHandle<()>,
    writer: JoinHandle<()>,
}

impl Session {
    /// Runs the connection over `io` (an upgraded HTTP connection, say) on the current tokio
    /// runtime.
    pub fn new<T>(io: T, role: Role, options: Options) -> Self
    where
        T: AsyncRead + AsyncWrite + Send + 'static,
    {
        let (rd, wr) = tokio::io::split(io);
        let (out, out_rx) = mpsc::channel(OUTBOX_FRAMES);
        let (incoming_tx, incoming) = mpsc::channel(options.backlog.max(1));
        let shared = Arc::new(Shared {
            table: Mutex::new(Table::default()),
            next_id: AtomicU32::new(if role == Role::Client { 1 } else { 2 }),
            out,
            ended: Mutex::new(None),
            closed: tokio::sync::watch::Sender::new(false),
        });
        let writer = tokio::spawn(write_loop(wr, out_rx, Arc::clone(&shared)));
        let reader = tokio::spawn(read_loop(rd, role, options, Arc::clone(&shared), incoming_tx));
        Self { shared, incoming, reader, writer }
    }

    /// The next stream the peer opened (already replied to), or `None` once the connection
    /// has ended or the peer sent `GOAWAY`.
    pub async fn accept(&mut self) -> Option<Stream> {
        self.incoming.recv().await
    }

    /// Opens a stream with `headers` and waits for the peer's `SYN_REPLY`.
    pub async fn open(&self, headers: Headers) -> io::Result<Stream> {
        let id = self.shared.next_id.fetch_add(2, Ordering::Relaxed);
        let (inbox, rx) = mpsc::channel(INBOX_FRAMES);
        let reset = Arc::new(AtomicBool::new(false));
        let (reply_tx, reply) = oneshot::channel();
        {
            let mut t = self.shared.table();
            if t.going_away {
                return Err(self.shared.ended());
            }
            t.streams.insert(id, Slot { inbox, reset: Arc::clone(&reset), unacked: 0 });
            t.replies.insert(id, reply_tx);
        }
        let syn = Frame::SynStream {
            stream_id: id,
            associated_to: 0,
            priority: 0,
            flags: 0,
            headers: headers.clone(),
        };
        self.shared.send(syn).await?;
        match reply.await {
            Ok(Ok(_)) => {}
            Ok(Err(status)) => {
                return Err(io::Error::new(
                    io::ErrorKind::ConnectionRefused,
                    format!("SPDY stream {id}: the peer reset it (status {status})"),
                ));
            }
            Err(_) => return Err(self.shared.ended()),
        }
        Ok(Stream::new(id, headers, rx, reset, Arc::clone(&self.shared)))
    }

    /// Says `GOAWAY`, sends what is queued, and closes the connection.
    pub async fn close(self) {
        let last = self.shared.table().last_peer;
        let _ = self.shared.send(Frame::GoAway { last_good_stream_id: last, status: 0 }).await;
        let (done, flushed) = oneshot::channel();
        if self.shared.out.send(Command::Close(done)).await.is_ok() {
            let _ = flushed.await;
        }
    }

    /// Resolves once the connection has ended (the peer closed it or broke the protocol, or
    /// writing failed): what a server waits on to learn that its client vanished.
    pub fn closed(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut rx = self.shared.closed.subscribe();
        async move {
            let _ = rx.wait_for(|ended| *ended).await;
        }
    }

    /// Why the connection ended (`None` while it runs).
    pub fn end_reason(&self) -> Option<String> {
        self.shared.ended.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.reader.abort();
        self.writer.abort();
    }
}

async fn write_loop<W: AsyncWrite>(wr: W, mut rx: mpsc::Receiver<Command>, shared: Arc<Shared>) {
    let mut wr = std::pin::pin!(wr);
    let mut encoder = Encoder::new();
    let mut buf = Vec::with_capacity(MAX_SEND + 64);
    while let Some(cmd) = rx.recv().await {
        let mut close = None;
        let mut next = Some(cmd);
        // Batch what is already queued into one write.
        while let Some(cmd) = next.take() {
            match cmd {
                Command::Frame(f) => {
                    if let Err(e) = encoder.encode(&f, &mut buf) {
                        end(&shared, format!("encoding a frame: {e}"));
                        return;
                    }
                }
                Command::Close(done) => {
                    close = Some(done);
                    break;
                }
            }
            if buf.len() < 4 * MAX_SEND {
                next = rx.try_recv().ok();
            }
        }
        if let Err(e) = wr.write_all(&buf).await {
            end(&shared, format!("writing: {e}"));
            return;
        }
        buf.clear();
        if let Some(done) = close {
            let _ = wr.flush().await;
            let _ = wr.shutdown().await;
            end(&shared, "closed by this end".into());
            let _ = done.send(());
            return;
        }
        if rx.is_empty() && wr.flush().await.is_err() {
            end(&shared, "flushing".into());
            return;
        }
    }
}

fn end(shared: &Shared, why: String) {
    shared.ended.lock().unwrap_or_else(|p| p.into_inner()).get_or_insert(why);
    shared.closed.send_replace(true);
}

async fn read_loop<R: AsyncRead>(
    rd: R,
    role: Role,
    options: Options,
    shared: Arc<Shared>,
    incoming: mpsc::Sender<Stream>,
) {
    let mut rd = std::pin::pin!(rd);
    let mut decoder = Decoder::new(options.limits);
    let mut buf: Vec<u8> = Vec::with_capacity(64 * 1024);
    let mut start = 0;
    let why = 'conn: loop {
        // Every whole frame in the buffer.
        loop {
            let frame = match decoder.decode(&buf[start..]) {
                Ok(Some((frame, used))) => {
                    start += used;
                    frame
                }
                Ok(None) => break,
                Err(e) => {
                    let _ = shared.send(Frame::GoAway { last_good_stream_id: 0, status: 1 }).await;
                    break 'conn format!("protocol error from the peer: {e}");
                }
            };
            if let Err(why) = route(frame, role, &options, &shared, &incoming).await {
                break 'conn why;
            }
        }
        buf.drain(..start);
        start = 0;
        // Room for the frame in progress (its length is known once its header is in).
        let want = match decoder.frame_len(&buf) {
            Ok(Some(n)) => n.max(buf.len() + 1),
            Ok(None) => buf.len() + 4096,
            Err(e) => break format!("protocol error from the peer: {e}"),
        };
        if buf.capacity() < want {
            buf.reserve(want - buf.len());
        }
        match rd.read_buf(&mut buf).await {
            Ok(0) => break "the peer closed the connection".into(),
            Ok(_) => {}
            Err(e) => break format!("reading: {e}"),
        }
    };
    end(&shared, why);
    let mut t = shared.table();
    t.going_away = true;
    // Every stream reads its end; every opener waiting for a reply fails.
    t.streams.clear();
    t.replies.clear();
}

/// Acts on one frame from the peer. `Err` ends the connection.
async fn route(
    frame: Frame,
    role: Role,
    options: &Options,
    shared: &Arc<Shared>,
    incoming: &mpsc::Sender<Stream>,
) -> Result<(), String> {
    match frame {
        Frame::SynStream { stream_id, flags: f, headers, .. } => {
            let theirs = (stream_id % 2 == 1) == (role == Role::Server);
            let (fresh, refused) = {
                let mut t = shared.table();
                let fresh = theirs && stream_id > t.last_peer;
                if fresh {
                    t.last_peer = stream_id;
                }
                (fresh, t.going_away || t.streams.len() >= options.max_streams)
            };
            if !fresh {
                let _ = shared.send(Frame::GoAway { last_good_stream_id: 0, status: 1 }).await;
                return Err(format!(
                    "protocol error from the peer: stream id {stream_id} is not a new one of its own"
                ));
            }
            if refused {
                return shared
                    .send(Frame::RstStream { stream_id, status: rst::REFUSED_STREAM })
                    .await
                    .map_err(|e| e.to_string());
            }
            let (inbox, rx) = mpsc::channel(INBOX_FRAMES);
            let reset = Arc::new(AtomicBool::new(false));
            if f & flags::FIN == 0 {
                shared
                    .table()
                    .streams
                    .insert(stream_id, Slot { inbox, reset: Arc::clone(&reset), unacked: 0 });
            }
            let stream = Stream::new(stream_id, headers, rx, reset, Arc::clone(shared));
            let reply = Frame::SynReply { stream_id, flags: 0, headers: Headers::new() };
            shared.send(reply).await.map_err(|e| e.to_string())?;
            if let Err(mpsc::error::TrySendError::Full(s) | mpsc::error::TrySendError::Closed(s)) =
                incoming.try_send(stream)
            {
                shared.table().streams.remove(&s.id);
                let rst = Frame::RstStream { stream_id, status: rst::REFUSED_STREAM };
                shared.send(rst).await.map_err(|e| e.to_string())?;
            }
        }
        Frame::SynReply { stream_id, .. } => {
            if let Some(waiter) = shared.table().replies.remove(&stream_id) {
                let _ = waiter.send(Ok(Headers::new()));
            }
        }
        Frame::Data { stream_id, flags: f, data } => {
            let inbox = shared.table().streams.get(&stream_id).map(|s| s.inbox.clone());
            let Some(inbox) = inbox else {
                // Data for a stream that ended here (reset, or its reader gone): drop it.
                return Ok(());
            };
            let len = data.len() as u32;
            if len > 0 && inbox.send(data).await.is_ok() {
                let updates = {
                    let mut t = shared.table();
                    t.unacked = t.unacked.saturating_add(len);
                    let session = (t.unacked >= WINDOW_ACK).then(|| (0, std::mem::take(&mut t.unacked)));
                    let stream = t.streams.get_mut(&stream_id).and_then(|slot| {
                        slot.unacked = slot.unacked.saturating_add(len);
                        (slot.unacked >= WINDOW_ACK).then(|| (stream_id, std::mem::take(&mut slot.unacked)))
                    });
                    [stream, session]
                };
                for (id, delta) in updates.into_iter().flatten() {
                    shared
                        .send(Frame::WindowUpdate { stream_id: id, delta })
                        .await
                        .map_err(|e| e.to_string())?;
                }
            }
            if f & flags::FIN != 0 {
                shared.table().streams.remove(&stream_id);
            }
        }
        Frame::RstStream { stream_id, status } => {
            let mut t = shared.table();
            if let Some(slot) = t.streams.remove(&stream_id) {
                slot.reset.store(true, Ordering::Relaxed);
            }
            if let Some(waiter) = t.replies.remove(&stream_id) {
                let _ = waiter.send(Err(status));
            }
        }
        Frame::Ping { id } => {
            // Echo the peer's pings; ours coming back need nothing.
            if (id % 2 == 1) == (role == Role::Server) {
                shared.send(Frame::Ping { id }).await.map_err(|e| e.to_string())?;
            }
        }
        Frame::GoAway { .. } => shared.table().going_away = true,
        Frame::Headers { .. }
        | Frame::Settings { .. }
        | Frame::WindowUpdate { .. }
        | Frame::Unknown { .. } => {}
    }
    Ok(())
}

/// One stream: what the peer sends on it, and a way to send on it.
pub struct Stream {
    id: u32,
    headers: Headers,
    reader: StreamReader,
    writer: StreamWriter,
}

impl Stream {
    fn new(
        id: u32,
        headers: Headers,
        inbox: mpsc::Receiver<Vec<u8>>,
        reset: Arc<AtomicBool>,
        shared: Arc<Shared>,
    ) -> Self {
        let writer = StreamWriter { id, reset: Arc::clone(&reset), shared, finished: false };
        Self { id, headers, reader: StreamReader { inbox, reset }, writer }
    }

    /// The stream id.
    pub fn id(&self) -> u32 {
        self.id
    }

    /// The headers it was opened with.
    pub fn headers(&self) -> &Headers {
        &self.headers
    }

    /// The next data from the peer; `None` once the peer finished, reset the stream, or the
    /// connection ended.
    pub async fn read(&mut self) -> Option<Vec<u8>> {
        self.reader.read().await
    }

    /// Sends `data`, in frames of at most [`MAX_SEND`] bytes.
    pub async fn write(&mut self, data: &[u8]) -> io::Result<()> {
        self.writer.write(data).await
    }

    /// Ends this end's side of the stream (`FIN`).
    pub async fn finish(&mut self) -> io::Result<()> {
        self.writer.finish().await
    }

    /// The reading and writing halves, to use from two tasks.
    pub fn split(self) -> (StreamReader, StreamWriter) {
        (self.reader, self.writer)
    }
}

/// The reading half of a [`Stream`].
pub struct StreamReader {
    inbox: mpsc::Receiver<Vec<u8>>,
    reset: Arc<AtomicBool>,
}

impl StreamReader {
    /// See [`Stream::read`].
    pub async fn read(&mut self) -> Option<Vec<u8>> {
        if self.reset.load(Ordering::Relaxed) {
            return None;
        }
        self.inbox.recv().await
    }

    /// True when the peer reset the stream (rather than finishing it).
    pub fn was_reset(&self) -> bool {
        self.reset.load(Ordering::Relaxed)
    }
}

/// The writing half of a [`Stream`].
pub struct StreamWriter {
    id: u32,
    reset: Arc<AtomicBool>,
    shared: Arc<Shared>,
    finished: bool,
}

impl StreamWriter {
    /// See [`Stream::write`].
    pub async fn write(&mut self, data: &[u8]) -> io::Result<()> {
        if self.finished {
            return Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                format!("SPDY stream {} is finished", self.id),
            ));
        }
        for chunk in data.chunks(MAX_SEND) {
            if self.reset.load(Ordering::Relaxed) {
                return Err(io::Error::new(
                    io::ErrorKind::ConnectionReset,
                    format!("SPDY stream {} was reset", self.id),
                ));
            }
            self.shared.send(Frame::Data { stream_id: self.id, flags: 0, data: chunk.to_vec() }).await?;
        }
        Ok(())
    }

    /// See [`Stream::finish`]. Finishing twice does nothing.
    pub async fn finish(&mut self) -> io::Result<()> {
        if std::mem::replace(&mut self.finished, true) {
            return Ok(());
        }
        self.shared.send(Frame::Data { stream_id: self.id, flags: flags::FIN, data: Vec::new() }).await
    }

    /// Resets the stream (`RST_STREAM` with `status`): the peer drops what it has of it.
    pub async fn reset(&mut self, status: u32) -> io::Result<()> {
        self.finished = true;
        self.shared.table().streams.remove(&self.id);
        self.shared.send(Frame::RstStream { stream_id: self.id, status }).await
    }
}

#[cfg(test)]
#[path = "session_tests.rs"]
mod tests;
