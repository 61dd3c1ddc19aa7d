//! One subscription: replay from the log, then live from the hub, filtered, in seq order,
//! ending with `Lagged { resume_from }` if the subscriber fell behind.
//!
//! Replay reads the log up to the seq the hub had delivered at registration; the hub then
//! supplies everything after it. If the hub buffer overflows while the replay is still
//! running (a long replay under heavy publishing), the subscription registers again and
//! replays further instead of failing: the log is the buffer. Once live, an overflow ends
//! the stream with the `Lagged` marker.

use std::sync::Arc;

use berth_ipc::Result;
use berth_ipc::events::{Envelope, EnvelopeFields, EventsResponse, SubscribeItem};
use berth_ipc::filter::Filters;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::hub::Hub;
use crate::store::Log;

/// Records read from the log per step of a replay.
const REPLAY_CHUNK: usize = 1024;

/// What a subscription needs.
pub struct Subscription {
    /// The log, for replays.
    pub log: Arc<Log>,
    /// The live feed.
    pub hub: Arc<Hub>,
    /// Parsed filters.
    pub filters: Filters,
    /// First seq wanted; `None` = live only.
    pub from: Option<u64>,
    /// Where items go.
    pub out: mpsc::Sender<Result<EventsResponse>>,
    /// Cancelled when the caller goes away or the service stops.
    pub cancel: CancellationToken,
}

impl Subscription {
    /// Streams until the subscriber goes away, lags, or the service stops.
    pub async fn run(self) {
        tokio::select! {
            () = self.cancel.cancelled() => {}
            _ = self.stream() => {}
        }
    }

    async fn send(&self, item: SubscribeItem) -> Option<()> {
        self.out.send(Ok(EventsResponse::Subscribe(item))).await.ok()
    }

    async fn send_event(&self, env: &Envelope) -> Option<()> {
        if self.filters.is_empty() || self.filters.matches(&EnvelopeFields::new(env)) {
            self.send(SubscribeItem::Event(env.clone())).await?;
        }
        Some(())
    }

    async fn stream(&self) -> Option<()> {
        let mut reg = self.hub.register();
        let oldest = Some(self.log.oldest()).filter(|o| *o <= reg.last).unwrap_or(0);
        self.send(SubscribeItem::Ready { oldest, last: reg.last }).await?;
        let mut next = match self.from {
            None => reg.last + 1,
            Some(from) => from.max(1),
        };
        // Replay, registering again while the live buffer overflows during it.
        loop {
            next = self.replay(next, reg.last).await?;
            if reg.lag.missed().is_none() {
                break;
            }
            reg = self.hub.register();
        }
        // Live.
        while let Some(batch) = reg.rx.recv().await {
            reg.lag.consumed(batch.len());
            for env in batch.iter() {
                if env.seq >= next {
                    self.send_event(env).await?;
                    next = env.seq + 1;
                }
            }
        }
        if reg.lag.missed().is_some() {
            // Every batch before the missed one was delivered, so `next` is the first seq
            // this subscriber has not seen.
            self.send(SubscribeItem::Lagged { resume_from: next }).await?;
        }
        Some(())
    }

    /// Sends the log's events `next..=until`; returns the seq after the last one read.
    async fn replay(&self, mut next: u64, until: u64) -> Option<u64> {
        next = next.max(self.log.oldest());
        while next <= until {
            let log = self.log.clone();
            let chunk =
                tokio::task::spawn_blocking(move || log.read(next, until, REPLAY_CHUNK)).await.ok()?;
            let chunk = match chunk {
                Ok(c) => c,
                Err(e) => {
                    let _ = self.out.send(Err(e)).await;
                    return None;
                }
            };
            if chunk.is_empty() {
                // Removed by retention meanwhile: continue from what is left.
                next = next.max(self.log.oldest()).max(next + 1);
                continue;
            }
            for (seq, record) in chunk {
                self.send_event(&record.into_envelope(seq)).await?;
                next = seq + 1;
            }
        }
        Some(next.max(until + 1))
    }
}
