//! The side socket `<state>/content-fd.sock`: hands peers an open read-only fd of a blob,
//! and reads an ingest's data from an fd a peer passes. The exchange is documented in
//! `berth_ipc::content::readfd`; peers are checked with the same policy as on
//! `content.sock`.

use berth_service_kit::blocking;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::Arc;
use std::time::Duration;

use berth_ipc::content::readfd::{self, AppendFdReply, AppendFdRequest, FdRequest, ReadFdReply};
use berth_ipc::peer::AccessPolicy;
use berth_ipc::{Error, Result};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::append::append_from;
use crate::session::{self, Sessions};
use crate::store::Store;

/// Connections served at once.
const MAX_CONNECTIONS: usize = 256;
/// Time a client has to send its request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// What the fd socket serves from.
#[derive(Clone)]
pub struct FdServer {
    /// The blob store.
    pub store: Arc<Store>,
    /// The write sessions of `content.sock`.
    pub sessions: Sessions,
    /// Who may connect.
    pub access: AccessPolicy,
}

impl FdServer {
    /// Serves `listener` until `shutdown`.
    pub async fn serve(self, listener: UnixListener, shutdown: CancellationToken) {
        let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
        while let Some(stream) = berth_ipc::socket::accept(&listener, &shutdown, "content-fd").await {
            let Ok(permit) = slots.clone().try_acquire_owned() else {
                tracing::warn!("content fd socket: too many connections");
                continue;
            };
            let this = self.clone();
            tokio::spawn(async move {
                this.serve_one(stream).await;
                drop(permit);
            });
        }
    }

    async fn serve_one(&self, stream: UnixStream) {
        let allowed = berth_ipc::peer::peer_of(&stream).is_ok_and(|p| self.access.allows(&p));
        if !allowed {
            tracing::warn!("content fd socket: peer refused");
            return;
        }
        let bytes = match tokio::time::timeout(REQUEST_TIMEOUT, readfd::read_request(&stream)).await {
            Err(_) => {
                readfd::encode_reply::<()>(0, &Err(Error::unavailable("no request within the timeout")))
            }
            Ok(Err(e)) => readfd::encode_reply::<()>(0, &Err(e)),
            Ok(Ok((id, FdRequest::Read(req), _))) => {
                let store = self.store.clone();
                let opened = blocking("content worker", move || store.open_blob(&req.digest)).await;
                send_fd(&stream, id, opened.map(|(file, size)| (file, ReadFdReply { size }))).await;
                return;
            }
            Ok(Ok((id, FdRequest::Follow(req), _))) => {
                let store = self.store.clone();
                send_fd(
                    &stream,
                    id,
                    blocking("content worker", move || crate::ingest::follow(&store, &req.digest)).await,
                )
                .await;
                return;
            }
            Ok(Ok((id, FdRequest::Append(req), fd))) => {
                let end = self.append(req, fd).await.map(|end| AppendFdReply { end });
                readfd::encode_reply(id, &end)
            }
        };
        if let Err(e) = berth_ipc::fdpass::send_with_fd(&stream, &bytes, None).await {
            tracing::debug!(error = %e, "content fd socket: reply not sent");
        }
    }

    async fn append(&self, req: AppendFdRequest, fd: Option<OwnedFd>) -> Result<u64> {
        let fd =
            fd.ok_or_else(|| Error::invalid(format!("write session {}: append without an fd", req.session)))?;
        let session = self.sessions.get(req.session)?;
        let offset = req.offset;
        session::apply(&session, req.session, req.seq, move |ingest, done| {
            append_from(ingest, offset, fd, done)
        })
        .await
    }
}

/// Sends `reply` with its file's fd attached, or the error.
async fn send_fd<T: serde::Serialize>(stream: &UnixStream, id: u64, reply: Result<(std::fs::File, T)>) {
    let sent = match reply {
        Ok((file, r)) => {
            let bytes = readfd::encode_reply(id, &Ok(r));
            berth_ipc::fdpass::send_with_fd(stream, &bytes, Some(file.as_fd())).await
        }
        Err(e) => {
            let bytes = readfd::encode_reply::<()>(id, &Err(e));
            berth_ipc::fdpass::send_with_fd(stream, &bytes, None).await
        }
    };
    if let Err(e) = sent {
        tracing::debug!(error = %e, "content fd socket: reply not sent");
    }
}
