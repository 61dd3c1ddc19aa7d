//! The side socket `<state>/content-fd.sock`: hands peers an open read-only fd of a blob.
//! The exchange is documented in `berth_ipc::content::readfd`; peers are checked with the
//! same policy as on `content.sock`.

use std::os::fd::AsFd;
use std::sync::Arc;
use std::time::Duration;

use berth_ipc::content::readfd::{self, ReadFdReply};
use berth_ipc::peer::AccessPolicy;
use berth_ipc::{Error, Result};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::store::Store;

/// Connections served at once.
const MAX_CONNECTIONS: usize = 256;
/// Time a client has to send its request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// Serves `listener` until `shutdown`.
pub async fn serve(
    listener: UnixListener,
    store: Arc<Store>,
    access: AccessPolicy,
    shutdown: CancellationToken,
) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => break,
            a = listener.accept() => a,
        };
        let stream = match accepted {
            Ok((s, _)) => s,
            Err(e) => {
                tracing::warn!(error = %e, "content fd socket: accept failed");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            tracing::warn!("content fd socket: too many connections");
            continue;
        };
        let store = store.clone();
        tokio::spawn(async move {
            serve_one(stream, &store, access).await;
            drop(permit);
        });
    }
}

async fn serve_one(mut stream: UnixStream, store: &Arc<Store>, access: AccessPolicy) {
    let allowed = berth_ipc::peer::peer_of(&stream).is_ok_and(|p| access.allows(&p));
    if !allowed {
        tracing::warn!("content fd socket: peer refused");
        return;
    }
    let (id, result) = match tokio::time::timeout(REQUEST_TIMEOUT, readfd::read_request(&mut stream)).await {
        Err(_) => (0, Err(Error::unavailable("no request within the timeout"))),
        Ok(Err(e)) => (0, Err(e)),
        Ok(Ok((id, req))) => {
            let store = store.clone();
            let opened = tokio::task::spawn_blocking(move || store.open_blob(&req.digest))
                .await
                .map_err(|e| Error::internal(format!("content worker: {e}")))
                .and_then(|r| r);
            (id, opened)
        }
    };
    let sent = match result {
        Ok((file, size)) => {
            let bytes = readfd::encode_reply(id, &Ok(ReadFdReply { size }));
            berth_ipc::fdpass::send_with_fd(&stream, &bytes, Some(file.as_fd())).await
        }
        Err(e) => {
            let bytes = readfd::encode_reply(id, &Result::<ReadFdReply>::Err(e));
            berth_ipc::fdpass::send_with_fd(&stream, &bytes, None).await
        }
    };
    if let Err(e) = sent {
        tracing::debug!(error = %e, "content fd socket: reply not sent");
    }
}
