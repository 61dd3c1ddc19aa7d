//! The events service: a durable, replayable event log.
//!
//! Publishers (every other service, through `berth_ipc::publisher::Publisher`) append
//! events with idempotency keys; the log in `<root>/events` (fjall) gives them contiguous
//! seqs from 1, never reused, and answers only once they are synced. Subscribers get a
//! replay from any retained seq or time followed by the live feed, filtered with
//! containerd's syntax, with no gap and no duplicate at the seam; one that falls behind gets
//! `Lagged { resume_from }` instead of slowing anyone down. Retention keeps the newest
//! `max_events` events and none older than `max_age_s` (config section `[events]`).
//!
//! # Layout
//! - [`store`] — the log: append with sync, range reads, time search, retention.
//! - [`segment`] — one segment file of the log: frames, scan, index.
//! - [`dedup`] — the window of idempotency keys.
//! - [`writer`] — the single writer thread doing group commits.
//! - [`hub`] — live fan-out into bounded subscriber buffers.
//! - [`subscription`] — one subscriber's replay-then-live stream.
//! - [`service`] — the request handler.

pub mod dedup;
pub mod hub;
mod legacy;
pub mod segment;
pub mod service;
pub mod store;
pub mod subscription;
pub mod writer;

use std::sync::Arc;
use std::time::Duration;

use berth_ipc::events::Events;
use berth_service_kit::ServiceEnv;
use tokio::net::UnixListener;
use tokio_util::sync::CancellationToken;

pub use service::EventsService;

/// How often retention runs.
const RETENTION_INTERVAL: Duration = Duration::from_secs(10);

/// Runs the events service on `listener` until `shutdown` is cancelled.
pub async fn run(env: ServiceEnv, listener: UnixListener, shutdown: CancellationToken) -> anyhow::Result<()> {
    let dir = env.data_dir()?;
    let cfg = env.config.events.clone();
    let window = cfg.dedup_window;
    let started = std::time::Instant::now();
    let log = Arc::new(tokio::task::spawn_blocking(move || store::Log::open(&dir, window)).await??);
    let opened = started.elapsed();
    let hub = Arc::new(hub::Hub::new(cfg.subscriber_buffer, log.last()));
    let writer = {
        let (log, hub) = (log.clone(), hub.clone());
        tokio::task::spawn_blocking(move || writer::Writer::start(log, hub, cfg.dedup_window)).await??
    };
    // The first retention pass runs before the service answers, so that what it serves
    // from the start already respects the limits; later passes run in the background.
    let windowed = started.elapsed();
    let max_age_ns = cfg.max_age_s.saturating_mul(1_000_000_000);
    let l = log.clone();
    tokio::task::spawn_blocking(move || l.enforce_retention(cfg.max_events, max_age_ns)).await??;
    tracing::info!(
        last_seq = log.last(),
        retained = log.count(),
        open_ms = opened.as_millis() as u64,
        window_ms = (windowed - opened).as_millis() as u64,
        retention_ms = (started.elapsed() - windowed).as_millis() as u64,
        "event log open"
    );
    let retention = tokio::spawn(retain(log.clone(), cfg.max_events, cfg.max_age_s, shutdown.clone()));
    let result = berth_service_kit::serve::<Events, _>(
        &env,
        EventsService::new(log.clone(), hub.clone(), writer),
        listener,
        shutdown,
    )
    .await;
    hub.close();
    retention.abort();
    // The writer thread and the last connections let go of the log soon after serve ends; the
    // database is closed (its lock released) only when they have, so a service started again
    // in the same process opens it cleanly. Bounded: a stuck holder only delays the return.
    for _ in 0..500 {
        if Arc::strong_count(&log) == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    drop(log);
    result
}

async fn retain(log: Arc<store::Log>, max_events: u64, max_age_s: u64, shutdown: CancellationToken) {
    let max_age_ns = max_age_s.saturating_mul(1_000_000_000);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(RETENTION_INTERVAL) => {}
        }
        let l = log.clone();
        match tokio::task::spawn_blocking(move || l.enforce_retention(max_events, max_age_ns)).await {
            Ok(Ok(0)) => {}
            Ok(Ok(n)) => tracing::debug!(removed = n, oldest = log.oldest(), "retention"),
            Ok(Err(e)) => tracing::warn!(error = %e, "retention failed"),
            Err(e) => tracing::warn!(error = %e, "retention task failed"),
        }
    }
}
