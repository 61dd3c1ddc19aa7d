//! Answering calls: running a request through the handler (or answering the common calls),
//! forwarding a stream's items, and queueing and writing frames.

use std::time::Instant;

use tokio::io::AsyncWriteExt;
use tokio::net::unix::OwnedWriteHalf;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::outbox::Outbox;
use super::{Context, Handler, Reply, Shared};
use crate::codec;
use crate::error::{Error, Result};
use crate::frame::{self, Kind};
use crate::protocol::{CommonRequest, CommonResponse, Health, Protocol, RequestBody, ResponseBody};

/// Runs one call to its last frame and records it in the metrics.
pub(super) async fn run_call<P: Protocol, H: Handler<P>>(
    shared: &Shared<P, H>,
    id: u64,
    body: RequestBody<P::Request>,
    ctx: Context,
    out: &Outbox,
    stop_streams: &CancellationToken,
) {
    let started = Instant::now();
    let (method, reply) = match body {
        RequestBody::Common(CommonRequest::Health) => {
            let health = Health {
                name: P::NAME.to_string(),
                version: shared.config.version.clone(),
                pid: std::process::id(),
                uptime_ms: u64::try_from(shared.started.elapsed().as_millis()).unwrap_or(u64::MAX),
            };
            ("Health", Reply::Unary(Ok(ResponseBody::Common(CommonResponse::Health(health)))))
        }
        RequestBody::Common(CommonRequest::Metrics) => {
            let mut snap = shared.recorder.snapshot(P::NAME, shared.started.elapsed());
            snap.gauges = shared.handler.gauges();
            ("Metrics", Reply::Unary(Ok(ResponseBody::Common(CommonResponse::Metrics(snap)))))
        }
        RequestBody::Service(req) => {
            let method = P::method(&req);
            let span = tracing::debug_span!("call", service = P::NAME, method, id);
            let _ = &span;
            match shared.handler.handle(req, ctx.clone()).await {
                Reply::Unary(r) => (method, Reply::Unary(r.map(ResponseBody::Service))),
                Reply::Stream(rx) => {
                    let failed = forward_stream(id, rx, &ctx, stop_streams, out).await;
                    shared.recorder.record(method, started.elapsed(), failed);
                    return;
                }
            }
        }
    };
    let failed = match reply {
        Reply::Unary(Ok(resp)) => {
            send_with(out, Kind::Response, id, &resp, ctx.answers.take()).await;
            false
        }
        Reply::Unary(Err(err)) => {
            tracing::debug!(service = P::NAME, method, id, error = %err, "call failed");
            send(out, Kind::Error, id, &err).await;
            true
        }
        Reply::Stream(_) => false,
    };
    shared.recorder.record(method, started.elapsed(), failed);
}

/// Forwards a handler's stream to the client; returns whether it ended in an error.
/// A client's `Cancel` ends it with `StreamEnd`; shutdown ends it with `Unavailable`.
async fn forward_stream<R: serde::Serialize>(
    id: u64,
    mut rx: mpsc::Receiver<Result<R>>,
    ctx: &Context,
    stop: &CancellationToken,
    out: &Outbox,
) -> bool {
    let cancel = &ctx.cancel;
    loop {
        let item = tokio::select! {
            _ = cancel.cancelled() => {
                send(out, Kind::StreamEnd, id, &()).await;
                return false;
            }
            _ = stop.cancelled() => {
                cancel.cancel();
                send(out, Kind::Error, id, &Error::unavailable("service shutting down")).await;
                return false;
            }
            item = rx.recv() => item,
        };
        match item {
            Some(Ok(resp)) => {
                let credit = ctx.answers.take();
                if !send_with(out, Kind::StreamItem, id, &ResponseBody::<R>::Service(resp), credit).await {
                    return false;
                }
            }
            Some(Err(err)) => {
                send(out, Kind::Error, id, &err).await;
                return true;
            }
            None => {
                send(out, Kind::StreamEnd, id, &()).await;
                return false;
            }
        }
    }
}

/// Queues one frame for the writer; false when the connection is gone.
pub(super) async fn send<T: serde::Serialize>(out: &Outbox, kind: Kind, id: u64, body: &T) -> bool {
    send_with(out, kind, id, body, None).await
}

/// Queues one frame that carries a handler's reservation (released once it is written).
async fn send_with<T: serde::Serialize>(
    out: &Outbox,
    kind: Kind,
    id: u64,
    body: &T,
    credit: Option<tokio::sync::OwnedSemaphorePermit>,
) -> bool {
    let (kind, payload) = match codec::encode(body) {
        Ok(p) => (kind, p),
        Err(e) => match codec::encode(&e) {
            Ok(p) => (Kind::Error, p),
            Err(_) => return false,
        },
    };
    let mut buf = Vec::with_capacity(frame::HEADER_LEN + payload.len());
    frame::put_frame(&mut buf, kind, id, &payload);
    out.push(buf, credit).await
}

/// Writes queued frames, batching whatever is queued into one flush (the client's writer).
pub(crate) async fn write_loop(half: OwnedWriteHalf, mut rx: mpsc::Receiver<Vec<u8>>) {
    let mut w = tokio::io::BufWriter::with_capacity(64 * 1024, half);
    while let Some(buf) = rx.recv().await {
        if w.write_all(&buf).await.is_err() {
            return;
        }
        while let Ok(more) = rx.try_recv() {
            if w.write_all(&more).await.is_err() {
                return;
            }
        }
        if w.flush().await.is_err() {
            return;
        }
    }
    let _ = w.shutdown().await;
}
