//! The `events` service's wire vocabulary: the [`Envelope`] every event travels in, the
//! typed payloads and topic constants ([`payload`]), and the calls.
//!
//! How the calls fit together:
//! 1. A publisher sends [`PublishBatch`] (or [`Publish`]) with an idempotency key per event:
//!    `(publisher, counter)`, where `publisher` names one publishing process instance and
//!    `counter` increases by one per event. The reply comes once every event is durable and
//!    holds the sequence numbers. Repeating the call (after a lost connection) stores nothing
//!    twice: already-stored keys answer with their original seq.
//! 2. A subscriber sends [`Subscribe`]: the stream first yields [`SubscribeItem::Ready`],
//!    then every matching event in seq order: replayed from the log when `since` is given,
//!    then live, with no gap and no duplicate. A subscriber that falls too far behind gets
//!    [`SubscribeItem::Lagged`] and the stream ends; subscribing again with
//!    `Since::Seq(resume_from)` loses nothing.
//! 3. [`Stats`] tells the retained range.
//!
//! Most services do not call these directly: they embed a [`crate::publisher::Publisher`].

use std::borrow::Cow;
use std::cell::OnceCell;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::filter::Adaptor;

pub mod payload;

pub use payload::{Payload, topics};

/// Largest encoded [`NewEvent`] accepted (namespace, topic and payload together).
pub const MAX_EVENT_LEN: usize = 64 * 1024;
/// Most events in one [`PublishBatch`].
pub const MAX_BATCH: usize = 4096;
/// Most encoded event bytes a publisher puts in one [`PublishBatch`] (well under the frame
/// limit).
pub const MAX_BATCH_BYTES: usize = 4 << 20;
/// Longest publisher id.
pub const MAX_PUBLISHER_LEN: usize = 128;

/// One stored event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    /// Position in the log: contiguous from 1, never reused.
    pub seq: u64,
    /// When the service stored it, unix nanoseconds (never decreasing along the log).
    pub timestamp: u64,
    /// The namespace the event concerns.
    pub namespace: String,
    /// Its topic, e.g. `/tasks/exit`; always `payload.topic()`.
    pub topic: String,
    /// What happened.
    pub payload: Payload,
}

/// An event as a publisher hands it over.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewEvent {
    /// The namespace the event concerns.
    pub namespace: String,
    /// Its topic; must be a known topic and match the payload's type.
    pub topic: String,
    /// What happened.
    pub payload: Payload,
}

impl NewEvent {
    /// An event whose topic is its payload's.
    pub fn new(namespace: impl Into<String>, payload: impl Into<Payload>) -> NewEvent {
        let payload = payload.into();
        NewEvent { namespace: namespace.into(), topic: payload.topic().to_string(), payload }
    }

    /// Checks namespace, topic (known, matching the payload) and encoded size; returns the
    /// encoded size.
    pub fn validate(&self) -> Result<usize> {
        crate::names::validate_namespace(&self.namespace)?;
        validate_topic(&self.topic)?;
        if self.topic != self.payload.topic() {
            return Err(Error::invalid(format!(
                "event {}: payload is a {} (topic {})",
                self.topic,
                self.payload.type_name(),
                self.payload.topic()
            )));
        }
        let len = crate::codec::encode(self)?.len();
        if len > MAX_EVENT_LEN {
            return Err(Error::invalid(format!(
                "event {}: {len} bytes exceeds the limit of {MAX_EVENT_LEN}",
                self.topic
            )));
        }
        Ok(len)
    }
}

/// Checks that `topic` is `/` + identifier parts and one of [`topics::ALL`].
pub fn validate_topic(topic: &str) -> Result<()> {
    let well_formed = topic.len() <= 256
        && topic.strip_prefix('/').is_some_and(|rest| {
            rest.split('/').all(|part| crate::names::validate_identifier("topic part", part).is_ok())
        });
    if !well_formed {
        return Err(Error::invalid(format!(
            "topic {topic:?}: must be '/' followed by identifiers joined by '/'"
        )));
    }
    if !topics::ALL.contains(&topic) {
        return Err(Error::invalid(format!("topic {topic}: unknown")));
    }
    Ok(())
}

/// Checks a publisher id: non-empty, printable, at most [`MAX_PUBLISHER_LEN`] bytes.
pub fn validate_publisher(publisher: &str) -> Result<()> {
    if publisher.is_empty() || publisher.len() > MAX_PUBLISHER_LEN || publisher.chars().any(char::is_control)
    {
        return Err(Error::invalid(format!(
            "publisher id {publisher:?}: must be 1 to {MAX_PUBLISHER_LEN} printable bytes"
        )));
    }
    Ok(())
}

/// Where a subscription starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Since {
    /// Only events stored after the subscription is in place.
    Live,
    /// From this seq on (inclusive), replayed from the log, then live. Older than the
    /// retained range: from the oldest retained event (see [`SubscribeItem::Ready`]).
    Seq(u64),
    /// From the first event stored at or after this time (unix nanoseconds).
    Time(u64),
}

/// `Publish`: store one event. Idempotent by its key.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Publish {
    /// Who publishes (one process instance), see [`validate_publisher`].
    pub publisher: String,
    /// The publisher's counter for this event.
    pub counter: u64,
    /// The event.
    pub event: NewEvent,
}

/// `PublishBatch`: store events with counters `first_counter..first_counter+len`, in order.
/// Idempotent by their keys. Refused whole if any event is invalid.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PublishBatch {
    /// Who publishes.
    pub publisher: String,
    /// The counter of the first event.
    pub first_counter: u64,
    /// The events, at most [`MAX_BATCH`].
    pub events: Vec<NewEvent>,
}

/// Answer to `PublishBatch`: the seq of each event, in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Published {
    /// One seq per event.
    pub seqs: Vec<u64>,
}

/// `Subscribe`: stream matching events. Allowed always.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Subscribe {
    /// Filters in containerd's syntax (any may match; none = everything). Fields: `topic`,
    /// `namespace`, `type` (`TaskExit`), `event.<field>`.
    pub filters: Vec<String>,
    /// Where to start.
    pub since: Since,
}

/// One item of a subscription stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum SubscribeItem {
    /// First item: the subscription is in place. `oldest` is the oldest retained seq (0 if
    /// the log is empty), `last` the newest seq at that moment; live events follow `last`.
    Ready {
        /// Oldest retained seq.
        oldest: u64,
        /// Newest seq when the subscription started.
        last: u64,
    },
    /// A matching event.
    Event(Envelope),
    /// The subscriber fell behind; the stream ends here. Subscribe again with
    /// `Since::Seq(resume_from)` to continue without loss.
    Lagged {
        /// The first seq not delivered.
        resume_from: u64,
    },
}

/// `Stats`: the retained range and subscriber count. Allowed always.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Stats;

/// Answer to `Stats`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventStats {
    /// Oldest retained seq (0 when empty).
    pub oldest: u64,
    /// Newest seq ever assigned (0 when none).
    pub last: u64,
    /// Events retained.
    pub count: u64,
    /// Live subscriptions.
    pub subscribers: u64,
}

crate::protocol! {
    /// The events service (`events.sock`).
    pub protocol Events = "events";
    request EventsRequest; response EventsResponse;
    /// Store one event; answers its seq once durable. Allowed always.
    Publish(Publish) -> u64 [idempotent];
    /// Store events in order; answers once all are durable. Allowed always.
    PublishBatch(PublishBatch) -> Published [idempotent];
    /// Stream events. Allowed always.
    Subscribe(Subscribe) -> SubscribeItem [stream];
    /// Retained range. Allowed always.
    Stats(Stats) -> EventStats [idempotent];
}

/// Filter fields of an envelope: `seq`, `topic`, `namespace`, `type`, `event.<path>`
/// (the payload's fields; a map or list is present but has no string value).
pub struct EnvelopeFields<'a> {
    env: &'a Envelope,
    json: OnceCell<serde_json::Value>,
}

impl<'a> EnvelopeFields<'a> {
    /// Fields of `env`; the payload is converted only if a filter reads `event.…`.
    pub fn new(env: &'a Envelope) -> Self {
        EnvelopeFields { env, json: OnceCell::new() }
    }
}

impl Adaptor for EnvelopeFields<'_> {
    fn field(&self, path: &[String]) -> Option<Cow<'_, str>> {
        let (first, rest) = path.split_first()?;
        match (first.as_str(), rest) {
            ("topic", []) => Some(Cow::Borrowed(&self.env.topic)),
            ("namespace", []) => Some(Cow::Borrowed(&self.env.namespace)),
            ("type", []) => Some(Cow::Borrowed(self.env.payload.type_name())),
            ("seq", []) => Some(Cow::Owned(self.env.seq.to_string())),
            ("event", rest) => {
                let mut v = self.json.get_or_init(|| self.env.payload.to_json());
                for part in rest {
                    v = v.get(part.as_str())?;
                }
                match v {
                    serde_json::Value::String(s) => Some(Cow::Borrowed(s)),
                    serde_json::Value::Null => None,
                    serde_json::Value::Number(n) => Some(Cow::Owned(n.to_string())),
                    serde_json::Value::Bool(b) => Some(Cow::Owned(b.to_string())),
                    _ => Some(Cow::Borrowed("")),
                }
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests;
