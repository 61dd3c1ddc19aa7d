//! The receiving end of a streaming call.

use std::marker::PhantomData;
use std::sync::Arc;

use tokio::sync::mpsc;

use super::{Conn, decode_answer, lock};
use crate::error::{Error, Result};
use crate::frame::{self, Frame, Kind};
use crate::protocol::{Call, ResponseBody};

/// The items of a streaming call. Dropping it before the end cancels the call.
///
/// Read it promptly: up to 64 items wait here, and once they are queued the connection's
/// reader waits too, holding up every other answer on the same [`Client`](super::Client).
/// A long-lived subscription that is read slowly deserves a client of its own.
pub struct Stream<C: Call> {
    pub(super) rx: mpsc::Receiver<Frame>,
    pub(super) id: u64,
    pub(super) conn: Arc<Conn>,
    pub(super) done: bool,
    pub(super) service: &'static str,
    pub(super) _call: PhantomData<fn() -> C>,
}

impl<C: Call> Stream<C> {
    /// Whether the connection carrying the stream still lives: a stream whose service
    /// restarted is gone with its connection, and what it held (a writer's lock, a write
    /// session) is gone with it.
    pub fn connected(&self) -> bool {
        self.conn.alive()
    }

    /// The next item; `None` at the end of the stream. A lost connection is `Unavailable`.
    pub async fn next(&mut self) -> Option<Result<C::Reply>> {
        if self.done {
            return None;
        }
        let Some(frame) = self.rx.recv().await else {
            self.done = true;
            return Some(Err(Error::unavailable(format!(
                "{} service: connection lost during a stream",
                self.service
            ))));
        };
        match frame.header.kind {
            Kind::StreamEnd => {
                self.done = true;
                None
            }
            _ => {
                let item = decode_answer::<C::Protocol>(frame).and_then(|body| match body {
                    ResponseBody::Service(r) => C::from_response(r).ok_or_else(|| {
                        Error::internal(format!("{}: stream item of the wrong type", self.service))
                    }),
                    ResponseBody::Common(_) => {
                        Err(Error::internal(format!("{}: stream item of the wrong type", self.service)))
                    }
                });
                if item.is_err() {
                    self.done = true;
                }
                Some(item)
            }
        }
    }
}

impl<C: Call> Drop for Stream<C> {
    fn drop(&mut self) {
        if !self.done {
            lock(&self.conn.pending).map.remove(&self.id);
            let mut buf = Vec::with_capacity(frame::HEADER_LEN);
            frame::put_frame(&mut buf, Kind::Cancel, self.id, &[]);
            let _ = self.conn.out.try_send(buf);
        }
    }
}
