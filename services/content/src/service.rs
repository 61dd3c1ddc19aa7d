//! The request handler: one `handle_<request>` per message of the content protocol. Disk
//! work runs on the blocking pool; write sessions live in a table keyed by session id.

use berth_service_kit::blocking;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use berth_ipc::content::{
    Abort, BlobInfo, Check, CheckItem, Chunk, CommitWriter, Content, ContentRequest, ContentResponse, Delete,
    Info, IngestStatus, List, ListStatuses, OpenWriter, Read, Status, WriteChunk, WriterEvent,
};
use berth_ipc::{Code, Context, Error, Handler, Reply, Result};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::events::Events;
use crate::ingest::{self, Ingest};
use crate::session::{self, Session, Sessions};
use crate::store::{Store, now_ns};

/// Bytes per item of a `Read` stream.
const READ_CHUNK: usize = 4 << 20;
/// The content service's handler.
pub struct ContentService {
    store: Arc<Store>,
    events: Events,
    sessions: Sessions,
    next_session: AtomicU64,
}

impl ContentService {
    /// A handler over `store`, publishing through `events`.
    pub fn new(store: Arc<Store>, events: Events) -> Self {
        ContentService {
            store,
            events,
            sessions: Sessions::default(),
            // Ids from a restarted service never match a session of its predecessor.
            next_session: AtomicU64::new(now_ns() | 1),
        }
    }

    /// The session table, shared with the fd socket.
    pub fn sessions(&self) -> Sessions {
        self.sessions.clone()
    }

    fn session(&self, id: u64) -> Result<Arc<Session>> {
        self.sessions.get(id)
    }

    fn end_session(&self, id: u64) {
        self.sessions.end(id);
    }

    async fn handle_info(&self, req: Info) -> Result<BlobInfo> {
        let store = self.store.clone();
        blocking("content worker", move || store.info(&req.digest)).await
    }

    async fn handle_list(&self, req: List) -> Reply<ContentResponse> {
        let store = self.store.clone();
        let (tx, reply) = Reply::stream(64);
        let list = match blocking("content worker", move || store.list(&req.filters)).await {
            Ok(l) => l,
            Err(e) => return Reply::Unary(Err(e)),
        };
        tokio::spawn(async move {
            for info in list {
                if tx.send(Ok(ContentResponse::List(info))).await.is_err() {
                    break;
                }
            }
        });
        reply
    }

    async fn handle_delete(&self, req: Delete) -> Result<()> {
        let store = self.store.clone();
        let digest = req.digest;
        blocking("content worker", move || store.delete(&digest)).await?;
        self.events.deleted(&digest);
        Ok(())
    }

    async fn handle_read(&self, req: Read, ctx: Context) -> Reply<ContentResponse> {
        let store = self.store.clone();
        let digest = req.digest;
        let opened = blocking("content worker", move || {
            let (file, size) = store.open_blob(&digest)?;
            let end = Store::range(&digest, size, req.offset, req.length)?;
            Ok((Arc::new(file), end))
        })
        .await;
        let (file, end) = match opened {
            Ok(x) => x,
            Err(e) => return Reply::Unary(Err(e)),
        };
        let (tx, reply) = Reply::stream(2);
        tokio::spawn(async move {
            let mut offset = req.offset;
            while offset < end && !ctx.cancel.is_cancelled() {
                let len = usize::try_from(end - offset).unwrap_or(READ_CHUNK).min(READ_CHUNK);
                // Room for this chunk in the connection's answer budget first: a client that
                // asks for many blobs and reads nothing gets no more chunks read for it.
                ctx.reserve(len).await;
                if ctx.cancel.is_cancelled() {
                    break;
                }
                let f = file.clone();
                let data =
                    blocking("content worker", move || Store::read_chunk(&f, &digest, offset, len)).await;
                let item = data.and_then(|d| {
                    if d.is_empty() {
                        Err(Error::new(Code::DataLoss, format!("blob {digest}: shorter than its size")))
                    } else {
                        Ok(d)
                    }
                });
                let stop = item.is_err();
                let n = item.as_ref().map_or(0, |d| d.len() as u64);
                let item = item.map(|d| {
                    ContentResponse::Read(Chunk { offset, data: berth_ipc::content::Bytes::new(d) })
                });
                if tx.send(item).await.is_err() || stop {
                    break;
                }
                offset += n;
            }
        });
        reply
    }

    async fn handle_status(&self, req: Status) -> Result<IngestStatus> {
        let store = self.store.clone();
        blocking("content worker", move || ingest::status(&store, &req.r#ref)).await
    }

    async fn handle_list_statuses(&self, req: ListStatuses) -> Result<Vec<IngestStatus>> {
        berth_ipc::filter::Filters::parse(&req.filters)?;
        let store = self.store.clone();
        let all = blocking("content worker", move || ingest::list(&store)).await?;
        crate::local::filter_statuses(all, &req.filters)
    }

    async fn handle_abort(&self, req: Abort) -> Result<()> {
        if let Some(id) = req.session {
            let session = self.session(id)?;
            let mut ingest = session.ingest.clone().lock_owned().await;
            if ingest.r#ref() != req.r#ref {
                return Err(Error::invalid(format!(
                    "write session {id}: does not hold ingest {:?}",
                    req.r#ref
                )));
            }
            ingest.remove();
            drop(ingest);
            self.end_session(id);
            return Ok(());
        }
        let store = self.store.clone();
        blocking("content worker", move || ingest::abort(&store, &req.r#ref)).await
    }

    async fn handle_open_writer(&self, req: OpenWriter, ctx: Context) -> Reply<ContentResponse> {
        let store = self.store.clone();
        let opened = blocking("content worker", move || {
            Ingest::open_proving(&store, &req.r#ref, req.expected_digest, req.expected_size, req.prove)
        })
        .await;
        let ingest = match opened {
            Ok(i) => i,
            Err(e) => return Reply::Unary(Err(e)),
        };
        let id = self.next_session.fetch_add(2, Ordering::Relaxed);
        let status = ingest.status().clone();
        let session = Arc::new(Session {
            ingest: Arc::new(tokio::sync::Mutex::new(ingest)),
            next_seq: watch::Sender::new(0),
            done: CancellationToken::new(),
        });
        self.sessions.insert(id, session.clone());
        let (tx, reply) = Reply::stream(1);
        let _ = tx.try_send(Ok(ContentResponse::OpenWriter(WriterEvent::Opened { session: id, status })));
        let sessions = self.sessions.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = ctx.cancel.cancelled() => {}
                _ = session.done.cancelled() => {}
                _ = tx.closed() => {}
            }
            sessions.end(id);
            // Let a chunk being written finish; the lock goes with the last reference.
            drop(session.ingest.lock().await);
            tracing::debug!(session = id, "write session closed");
        });
        reply
    }

    async fn handle_write_chunk(&self, req: WriteChunk) -> Result<u64> {
        let session = self.session(req.session)?;
        if req.data.0.len() > berth_ipc::content::MAX_CHUNK {
            return Err(Error::invalid(format!(
                "chunk of {} bytes exceeds {}",
                req.data.0.len(),
                berth_ipc::content::MAX_CHUNK
            )));
        }
        let (offset, data) = (req.offset, req.data.0);
        session::apply(&session, req.session, req.seq, move |ingest, _| ingest.write_at(offset, &data)).await
    }

    async fn handle_commit_writer(&self, req: CommitWriter) -> Result<BlobInfo> {
        let session = self.session(req.session)?;
        let mut ingest = session.ingest.clone().lock_owned().await;
        let store = self.store.clone();
        let result = blocking("content worker", move || ingest.commit(&store, req.size, req.digest)).await;
        match &result {
            Ok(info) => {
                self.events.created(info);
                self.end_session(req.session);
            }
            Err(e) if e.code == Code::AlreadyExists => self.end_session(req.session),
            Err(_) => {}
        }
        result
    }

    async fn handle_check(&self, _req: Check) -> Reply<ContentResponse> {
        let store = self.store.clone();
        let (tx, reply) = Reply::stream(16);
        tokio::task::spawn_blocking(move || {
            let sent = store.check(|item| tx.blocking_send(Ok(ContentResponse::Check(item))).is_ok());
            let last = sent.map(|(checked, bad)| ContentResponse::Check(CheckItem::Done { checked, bad }));
            let _ = tx.blocking_send(last);
        });
        reply
    }
}

impl Handler<Content> for ContentService {
    async fn handle(&self, req: ContentRequest, ctx: Context) -> Reply<ContentResponse> {
        use ContentRequest as R;
        use ContentResponse as A;
        match req {
            R::Info(r) => self.handle_info(r).await.map(A::Info).into(),
            R::List(r) => self.handle_list(r).await,
            R::Delete(r) => self.handle_delete(r).await.map(A::Delete).into(),
            R::Read(r) => self.handle_read(r, ctx).await,
            R::Status(r) => self.handle_status(r).await.map(A::Status).into(),
            R::ListStatuses(r) => self.handle_list_statuses(r).await.map(A::ListStatuses).into(),
            R::Abort(r) => self.handle_abort(r).await.map(A::Abort).into(),
            R::OpenWriter(r) => self.handle_open_writer(r, ctx).await,
            R::WriteChunk(r) => self.handle_write_chunk(r).await.map(A::WriteChunk).into(),
            R::CommitWriter(r) => self.handle_commit_writer(r).await.map(A::CommitWriter).into(),
            R::Check(r) => self.handle_check(r).await,
        }
    }

    fn gauges(&self) -> Vec<(String, f64)> {
        vec![("write_sessions".to_string(), self.sessions.len() as f64)]
    }
}
