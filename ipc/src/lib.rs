//! berth's wire protocol: the one crate that defines what travels between berth processes.
//!
//! Frames with a fixed header carry bincode payloads; a connection opens with a
//! `Hello`/`Welcome` handshake and then multiplexes many calls, some answered with streams.
//! Every service's request and response enums live here, each request paired with its
//! reply at the type level through [`Call`]. `docs/protocol.md` describes the bytes for
//! programs in other languages.
//!
//! # Layout
//! - [`frame`] — the frame header, its checks, reading and writing frames.
//! - [`codec`] — bincode payload encoding with a size limit.
//! - [`digest`] — the validated `sha256:<hex>` [`Digest`].
//! - [`error`] — the closed error-code enum and the wire error.
//! - [`failpoint`] — named power-cut points for crash tests (compiled out of release builds).
//! - [`fdpass`] — sending and receiving fds over Unix sockets (SCM_RIGHTS).
//! - [`filter`] — containerd-style filters: parser and matcher over an [`filter::Adaptor`].
//! - [`protocol`] — the `Protocol`/`Call` traits, handshake messages, common calls, and
//!   the `protocol!` macro.
//! - [`client`] — the typed, reconnecting, multiplexing client.
//! - [`publisher`] — the outbox every service uses to publish events.
//! - [`server`] — the server scaffold: connection cap, peer check, handshake, dispatch.
//! - [`peer`] — peer credentials and the access policy.
//! - [`probe`] — a one-shot health probe of any service by name.
//! - [`socket`] — binding sockets, replacing stale ones.
//! - [`sync`] — a poison-free mutex lock.
//! - [`metrics`] — per-method counters and latency histograms.
//! - [`names`] — validation of identifiers, labels and free-form names.
//! - [`idmap`] — user-namespace id mappings and their checks.
//! - [`content`], [`metadata`], [`snapshot`], [`runtime`], [`events`], [`launcher`] — each
//!   service's vocabulary.

pub mod client;
pub mod codec;
pub mod digest;
pub mod error;
pub mod failpoint;
pub mod fdpass;
pub mod filter;
pub mod frame;
pub mod idmap;
pub mod metrics;
pub mod names;
pub mod peer;
pub mod probe;
pub mod protocol;
pub mod publisher;
pub mod server;
pub mod socket;
pub mod sync;

pub mod content;
pub mod cri;
pub mod events;
pub mod launcher;
pub mod metadata;
pub mod runtime;
pub mod snapshot;

pub use client::{Client, ClientOptions, Stream};
pub use digest::Digest;
pub use error::{Code, Error, Result};
pub use protocol::{Call, Health, Hello, Protocol, Welcome};
pub use server::{Context, Handler, Reply, Server, ServerConfig};
