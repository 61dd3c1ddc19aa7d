//! Metrics: on each scrape, gather every service's `Metrics` answer, the supervisor's view
//! and every running task's cgroup figures, and render them as Prometheus text. The HTTP
//! endpoint ([`http`]) and the control socket's `Metrics` call serve the same text.
//!
//! # Layout
//! - [`exposition`] — the text format.
//! - [`render`] — which figure becomes which metric.
//! - [`http`] — the small HTTP/1.1 responder for `GET /metrics`.

pub mod exposition;
pub mod http;
pub mod render;

use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use berth_ipc::content::Content;
use berth_ipc::cri::Cri;
use berth_ipc::events::Events;
use berth_ipc::launcher::{Launcher, ServiceStatus};
use berth_ipc::metadata::{ListNamespaces, Metadata};
use berth_ipc::metrics::MetricsSnapshot;
use berth_ipc::runtime::{GetMetrics, ListTasks, Runtime, TaskRef, TaskStatus};
use berth_ipc::snapshot::Snapshot;
use berth_ipc::{Client, ClientOptions, Protocol};
use tokio::sync::{Mutex, Semaphore, mpsc, oneshot};
use tokio::task::JoinSet;

use crate::supervisor::Command;
use render::{Scrape, TaskFigures};

/// How long one call of a scrape may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(2);
/// How long gathering task figures may take in all.
const TASKS_TIMEOUT: Duration = Duration::from_secs(5);
/// Task figures asked for at once.
const TASK_CALLS: usize = 16;

/// Gathers and renders metrics.
pub struct Scraper {
    commands: mpsc::Sender<Command>,
    started: Instant,
    launcher: Client<Launcher>,
    events: Client<Events>,
    content: Client<Content>,
    snapshot: Client<Snapshot>,
    metadata: Client<Metadata>,
    runtime: Client<Runtime>,
    cri: Client<Cri>,
    /// One scrape at a time: concurrent scrapers share the wait instead of multiplying the load.
    busy: Mutex<()>,
}

impl Scraper {
    /// A scraper of the services whose sockets are in `state`, asking the supervisor through
    /// `commands`.
    pub fn new(state: &Path, commands: mpsc::Sender<Command>) -> Self {
        let options = ClientOptions {
            deadline: CALL_TIMEOUT,
            client_name: format!("berthd-metrics[{}]", std::process::id()),
        };
        Scraper {
            commands,
            started: Instant::now(),
            launcher: Client::in_state_dir(state, options.clone()),
            events: Client::in_state_dir(state, options.clone()),
            content: Client::in_state_dir(state, options.clone()),
            snapshot: Client::in_state_dir(state, options.clone()),
            metadata: Client::in_state_dir(state, options.clone()),
            runtime: Client::in_state_dir(state, options.clone()),
            cri: Client::in_state_dir(state, options),
            busy: Mutex::new(()),
        }
    }

    /// Gathers everything and renders it as Prometheus text.
    pub async fn render(&self) -> String {
        let _one = self.busy.lock().await;
        render::render(&self.gather().await)
    }

    async fn gather(&self) -> Scrape {
        let began = Instant::now();
        let mut errors = 0;
        let services = match timed(self.services()).await {
            Some(list) => list,
            None => {
                errors += 1;
                Vec::new()
            }
        };
        let running = |name: &str| {
            services.iter().any(|s| s.name == name && s.state == berth_ipc::launcher::ServiceState::Running)
        };
        let (launcher, events, content, snapshot, metadata, runtime, cri, tasks) = tokio::join!(
            metrics_of(&self.launcher, true),
            metrics_of(&self.events, running("events")),
            metrics_of(&self.content, running("content")),
            metrics_of(&self.snapshot, running("snapshot")),
            metrics_of(&self.metadata, running("metadata")),
            metrics_of(&self.runtime, running("runtime")),
            metrics_of(&self.cri, running("cri")),
            self.tasks(running("metadata") && running("runtime")),
        );
        let mut snapshots = Vec::new();
        for (name, snap) in [
            (Launcher::NAME, launcher),
            (Events::NAME, events),
            (Content::NAME, content),
            (Snapshot::NAME, snapshot),
            (Metadata::NAME, metadata),
            (Runtime::NAME, runtime),
            (Cri::NAME, cri),
        ] {
            if snap.is_none() {
                errors += 1;
            }
            snapshots.push((name.to_string(), snap));
        }
        let (tasks, task_errors) = tasks;
        Scrape {
            launcher_uptime: self.started.elapsed(),
            services,
            snapshots,
            tasks,
            errors: errors + task_errors,
            took: began.elapsed(),
        }
    }

    /// The supervisor's list (it answers between events; during start-up it may not).
    async fn services(&self) -> Vec<ServiceStatus> {
        let (tx, rx) = oneshot::channel();
        if self.commands.send(Command::List(tx)).await.is_err() {
            return Vec::new();
        }
        rx.await.unwrap_or_default()
    }

    /// Figures of every running or paused task of every namespace, and how many calls
    /// failed. The figures are asked for [`TASK_CALLS`] at a time; what arrived before
    /// [`TASKS_TIMEOUT`] is kept.
    async fn tasks(&self, reachable: bool) -> (Vec<TaskFigures>, u64) {
        if !reachable {
            return (Vec::new(), 0);
        }
        let mut out = Vec::new();
        let mut errors = 0;
        let gather = async {
            let namespaces = match self.metadata.call(ListNamespaces).await {
                Ok(n) => n,
                Err(_) => {
                    errors += 1;
                    return;
                }
            };
            let slots = Arc::new(Semaphore::new(TASK_CALLS));
            let mut calls = JoinSet::new();
            for ns in namespaces {
                let Ok(tasks) = self.runtime.call(ListTasks { namespace: ns.name.clone() }).await else {
                    errors += 1;
                    continue;
                };
                for t in
                    tasks.into_iter().filter(|t| matches!(t.status, TaskStatus::Running | TaskStatus::Paused))
                {
                    let (runtime, slots, namespace) = (self.runtime.clone(), slots.clone(), ns.name.clone());
                    calls.spawn(async move {
                        let _slot = slots.acquire_owned().await;
                        let got = runtime.call(GetMetrics(TaskRef::init(&namespace, &t.id))).await;
                        (namespace, t.id, got)
                    });
                }
            }
            while let Some(done) = calls.join_next().await {
                match done {
                    Ok((namespace, container, Ok(metrics))) => {
                        out.push(TaskFigures { namespace, container, metrics })
                    }
                    // It exited since it was listed.
                    Ok((_, _, Err(e))) if e.code == berth_ipc::Code::FailedPrecondition => {}
                    _ => errors += 1,
                }
            }
        };
        if tokio::time::timeout(TASKS_TIMEOUT, gather).await.is_err() {
            errors += 1;
        }
        out.sort_by(|a, b| (&a.namespace, &a.container).cmp(&(&b.namespace, &b.container)));
        (out, errors)
    }
}

/// The service's `Metrics`, unless it is not running or does not answer in time.
async fn metrics_of<P: Protocol>(client: &Client<P>, running: bool) -> Option<MetricsSnapshot> {
    if !running {
        return None;
    }
    timed(async { client.metrics().await.ok() }).await.flatten()
}

async fn timed<T>(f: impl Future<Output = T>) -> Option<T> {
    tokio::time::timeout(CALL_TIMEOUT, f).await.ok()
}
