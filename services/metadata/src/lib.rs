//! The metadata service: which images, containers, blobs and snapshots exist for whom, in
//! namespaces, with labels and leases; and the garbage collector that frees what no one
//! references. One process owns the store (fjall under `<root>/metadata`); every write is a
//! transaction fsynced before the reply.
//!
//! # Key schema
//!
//! One keyspace; key parts are joined by a NUL byte (shown as `/`), values are bincode.
//!
//! ```text
//! \0version                          u32 format version (see store::migrate)
//! n/<ns>                             Namespace {name, labels}
//! o/<ns>/
//!   ├── i/<image name>               Image {name, target, labels, created, updated}
//!   ├── c/<container id>             Container {id, image, runtime, spec, snapshotter, …}
//!   ├── x/<sandbox id>               Sandbox {id, runtime, spec, labels, extensions, …}
//!   ├── b/<digest>                   ContentRecord {digest, size, labels, …}
//!   ├── s/<snapshotter>/<key>        SnapshotRecord {parent, labels, …}
//!   ├── l/<lease id>                 Lease {labels, created, expires}
//!   └── r/<lease id>/
//!       ├── b/<digest>               ()  the lease protects a blob (recorded or not)
//!       ├── i/<ingest ref>           ()  … an ingest in progress
//!       └── s/<snapshotter>/<key>    ()  … a snapshot
//! k/                                 backend objects that have had a record somewhere
//!   ├── b/<digest>                   ()  (GC deletes them at once once unreferenced;
//!   └── s/<snapshotter>/<ns>/<key>   ()   objects never known wait out the grace period;
//!                                        `<ns>/<key>` with a `/`, the snapshot service's key)
//! ```
//!
//! # Layout
//! - [`store`] — the store: keys, migrations, one module per kind of record.
//! - [`filters`] — how records expose their fields to filters.
//! - [`gc`] — garbage collection: marking, sweeping, backends.
//! - [`service`] — the request handler: one `handle_<request>` per message.
//! - [`events`] — the events published after each committed change.
//! - `lib.rs` — [`run`] and the GC scheduler.

pub mod events;
pub mod filters;
pub mod gc;
pub mod service;
pub mod store;

use std::sync::Arc;
use std::time::{Duration, Instant};

use berth_ipc::metadata::Metadata;
use berth_ipc::publisher::Publisher;
use berth_ipc::{Client, ClientOptions};
use berth_service_kit::ServiceEnv;
use berth_service_kit::config::MetadataConfig;
use tokio::net::UnixListener;
use tokio_util::sync::CancellationToken;

pub use gc::Collector;
pub use service::MetadataService;
pub use store::Store;

/// The snapshotters whose snapshots GC frees.
const SNAPSHOTTERS: [&str; 2] = ["overlayfs", "native"];

/// How long GC waits for a backend service that is (re)starting.
const GC_CLIENT_DEADLINE: Duration = Duration::from_secs(2);

/// Runs the metadata service on `listener` until `shutdown` is cancelled.
pub async fn run(env: ServiceEnv, listener: UnixListener, shutdown: CancellationToken) -> anyhow::Result<()> {
    let dir = env.data_dir()?;
    let store = tokio::task::spawn_blocking(move || Store::open(&dir)).await??;
    let store = Arc::new(store);
    // GC holds writes while it runs: a content service that is down costs a short wait,
    // not the full client deadline.
    let gc_client = ClientOptions { deadline: GC_CLIENT_DEADLINE, ..env.client_options() };
    let content =
        gc::backend::ContentBackend::new(Client::in_state_dir(&env.config.state, gc_client.clone()));
    let snapshots = Client::<berth_ipc::snapshot::Snapshot>::in_state_dir(&env.config.state, gc_client);
    let mut backends: Vec<Arc<dyn gc::Backend>> = vec![Arc::new(content)];
    for sn in SNAPSHOTTERS {
        backends.push(Arc::new(gc::backend::SnapshotBackend::new(snapshots.clone(), sn)));
    }
    let cfg = env.config.metadata.clone();
    let collector = Arc::new(Collector::new(store.clone(), backends, Duration::from_millis(cfg.gc_grace_ms)));
    let events = events::Events::new(Publisher::in_state_dir(&env.config.state, "metadata"));
    let service = MetadataService::new(store, collector.clone(), events);
    let scheduler = tokio::spawn(schedule_gc(collector, cfg, shutdown.clone()));
    let served = berth_service_kit::serve::<Metadata, _>(&env, service, listener, shutdown).await;
    scheduler.abort();
    served
}

/// Runs a GC pass after `gc_mutations` writes or every `gc_interval_s`, whichever first;
/// passes started by the count are spaced so that they hold writes at most
/// `gc_pause_percent` of the time.
async fn schedule_gc(collector: Arc<Collector>, cfg: MetadataConfig, shutdown: CancellationToken) {
    let interval = (cfg.gc_interval_s > 0).then(|| Duration::from_secs(cfg.gc_interval_s));
    let mut last = Instant::now();
    let mut spacing = Duration::ZERO;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_millis(200)) => {}
        }
        let by_count = cfg.gc_mutations > 0
            && collector.mutations_since_pass() >= cfg.gc_mutations
            && last.elapsed() >= spacing;
        let by_time = interval.is_some_and(|i| last.elapsed() >= i);
        if by_count || by_time {
            last = Instant::now();
            if let Err(e) = collector.collect().await {
                tracing::error!(error = %e, "gc pass failed");
            }
            spacing = pass_spacing(last.elapsed(), cfg.gc_pause_percent);
        }
    }
}

/// The least time from the start of a pass that took `pass` to the next pass started by the
/// write count, so that passes hold writes at most `percent` of the time.
fn pass_spacing(pass: Duration, percent: u64) -> Duration {
    match percent {
        0 => Duration::ZERO,
        p => pass.saturating_mul(100) / u32::try_from(p.min(100)).unwrap_or(100),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passes_by_count_hold_writes_at_most_their_share() {
        let ms = Duration::from_millis;
        assert_eq!(pass_spacing(ms(10), 2), ms(500));
        assert_eq!(pass_spacing(ms(30), 3), ms(1000));
        assert_eq!(pass_spacing(ms(10), 0), Duration::ZERO);
        assert_eq!(pass_spacing(ms(10), 100), ms(10));
        assert_eq!(pass_spacing(ms(10), 500), ms(10));
    }
}
