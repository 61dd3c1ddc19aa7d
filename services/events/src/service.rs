//! The request handler: one `handle_<request>` per message, validating input and mapping
//! it onto the writer, the log and the hub.

use std::sync::Arc;

use berth_ipc::events::{
    EventStats, EventsRequest, EventsResponse, MAX_BATCH, Publish, PublishBatch, Published, Since, Subscribe,
    validate_publisher,
};
use berth_ipc::filter::Filters;
use berth_ipc::{Context, Error, Handler, Reply, Result};

use crate::hub::Hub;
use crate::store::Log;
use crate::subscription::Subscription;
use crate::writer::Writer;

/// Stream items buffered between a subscription and its connection.
const STREAM_BUFFER: usize = 256;

/// The events service's handler.
pub struct EventsService {
    log: Arc<Log>,
    hub: Arc<Hub>,
    writer: Writer,
}

impl EventsService {
    /// A handler over an opened log.
    pub fn new(log: Arc<Log>, hub: Arc<Hub>, writer: Writer) -> Self {
        EventsService { log, hub, writer }
    }

    async fn handle_publish(&self, req: Publish) -> Result<u64> {
        validate_publisher(&req.publisher)?;
        req.event.validate()?;
        let seqs = self.writer.append(&req.publisher, req.counter, vec![req.event]).await?;
        seqs.first().copied().ok_or_else(|| Error::internal("event log: no seq assigned"))
    }

    async fn handle_publish_batch(&self, req: PublishBatch) -> Result<Published> {
        validate_publisher(&req.publisher)?;
        if req.events.len() > MAX_BATCH {
            return Err(Error::invalid(format!(
                "publish batch: {} events exceeds the limit of {MAX_BATCH}",
                req.events.len()
            )));
        }
        for (i, event) in req.events.iter().enumerate() {
            event.validate().map_err(|e| e.context(format!("publish batch: event {i}")))?;
        }
        if req.events.is_empty() {
            return Ok(Published { seqs: Vec::new() });
        }
        let seqs = self.writer.append(&req.publisher, req.first_counter, req.events).await?;
        Ok(Published { seqs })
    }

    fn handle_subscribe(&self, req: Subscribe, ctx: Context) -> Reply<EventsResponse> {
        let filters = match Filters::parse(&req.filters) {
            Ok(f) => f,
            Err(e) => return Reply::Unary(Err(e)),
        };
        let from = match req.since {
            Since::Live => None,
            Since::Seq(seq) => Some(seq),
            Since::Time(t) => match self.log.seq_at_time(t) {
                Ok(seq) => Some(seq),
                Err(e) => return Reply::Unary(Err(e)),
            },
        };
        let (out, reply) = Reply::stream(STREAM_BUFFER);
        let sub = Subscription {
            log: self.log.clone(),
            hub: self.hub.clone(),
            filters,
            from,
            out,
            cancel: ctx.cancel,
        };
        tokio::spawn(sub.run());
        reply
    }

    fn handle_stats(&self) -> Result<EventStats> {
        let count = self.log.count();
        Ok(EventStats {
            oldest: if count == 0 { 0 } else { self.log.oldest() },
            last: self.log.last(),
            count,
            subscribers: self.hub.len() as u64,
        })
    }
}

impl Handler<berth_ipc::events::Events> for EventsService {
    async fn handle(&self, req: EventsRequest, ctx: Context) -> Reply<EventsResponse> {
        match req {
            EventsRequest::Publish(r) => self.handle_publish(r).await.map(EventsResponse::Publish).into(),
            EventsRequest::PublishBatch(r) => {
                self.handle_publish_batch(r).await.map(EventsResponse::PublishBatch).into()
            }
            EventsRequest::Subscribe(r) => self.handle_subscribe(r, ctx),
            EventsRequest::Stats(_) => self.handle_stats().map(EventsResponse::Stats).into(),
        }
    }

    fn gauges(&self) -> Vec<(String, f64)> {
        vec![
            ("events_log_length".into(), self.log.count() as f64),
            ("events_last_seq".into(), self.log.last() as f64),
            ("events_oldest_seq".into(), self.log.oldest() as f64),
            ("events_subscribers".into(), self.hub.len() as f64),
            ("events_segments".into(), self.log.segment_count() as f64),
        ]
    }
}
