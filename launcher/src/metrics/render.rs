//! What a scrape found, as Prometheus text: the launcher's figures, every service's request
//! counters and gauges, and every running task's cgroup figures. docs/operations.md lists
//! each metric; a gauge a service reports that is not in [`GAUGES`] still appears, as
//! `berth_service_gauge{service, name}`.

use std::time::Duration;

use berth_ipc::launcher::{ServiceState, ServiceStatus};
use berth_ipc::metrics::MetricsSnapshot;
use berth_ipc::runtime::TaskMetrics;

use super::exposition::{Exposition, Kind};

/// One running task's figures.
#[derive(Debug, Clone)]
pub struct TaskFigures {
    /// Its namespace.
    pub namespace: String,
    /// Its container id.
    pub container: String,
    /// Its cgroup figures.
    pub metrics: TaskMetrics,
}

/// Everything one scrape gathered.
#[derive(Debug, Default)]
pub struct Scrape {
    /// Time since berthd started.
    pub launcher_uptime: Duration,
    /// The supervisor's view of every service.
    pub services: Vec<ServiceStatus>,
    /// Each process's `Metrics` answer (`berthd` included), `None` if it did not answer.
    pub snapshots: Vec<(String, Option<MetricsSnapshot>)>,
    /// Running and paused tasks.
    pub tasks: Vec<TaskFigures>,
    /// Calls of this scrape that failed or timed out.
    pub errors: u64,
    /// How long gathering took.
    pub took: Duration,
}

/// A service gauge with a name of its own: (service, gauge, metric, help, kind, scale).
type GaugeName = (&'static str, &'static str, &'static str, &'static str, Kind, f64);

/// The service gauges that get their own metric name.
const GAUGES: &[GaugeName] = &[
    (
        "events",
        "events_log_length",
        "berth_events_log_length",
        "Events kept in the event log.",
        Kind::Gauge,
        1.0,
    ),
    (
        "events",
        "events_last_seq",
        "berth_events_last_seq",
        "Sequence number of the newest event.",
        Kind::Gauge,
        1.0,
    ),
    (
        "events",
        "events_oldest_seq",
        "berth_events_oldest_seq",
        "Sequence number of the oldest event kept.",
        Kind::Gauge,
        1.0,
    ),
    (
        "events",
        "events_subscribers",
        "berth_events_subscribers",
        "Subscribers connected now.",
        Kind::Gauge,
        1.0,
    ),
    (
        "metadata",
        "gc_runs",
        "berth_gc_runs_total",
        "Garbage-collection passes completed.",
        Kind::Counter,
        1.0,
    ),
    (
        "metadata",
        "gc_failed_runs",
        "berth_gc_failed_runs_total",
        "Garbage-collection passes that reported errors.",
        Kind::Counter,
        1.0,
    ),
    (
        "metadata",
        "gc_last_duration_us",
        "berth_gc_last_duration_seconds",
        "Duration of the last garbage-collection pass.",
        Kind::Gauge,
        1e-6,
    ),
    (
        "metadata",
        "gc_deleted_objects",
        "berth_gc_deleted_objects_total",
        "Blobs and snapshots deleted by garbage collection.",
        Kind::Counter,
        1.0,
    ),
    (
        "metadata",
        "gc_pending_mutations",
        "berth_gc_pending_mutations",
        "Metadata writes since the last garbage-collection pass started.",
        Kind::Gauge,
        1.0,
    ),
    (
        "content",
        "write_sessions",
        "berth_content_write_sessions",
        "Blob writes in progress.",
        Kind::Gauge,
        1.0,
    ),
    (
        "snapshot",
        "unpack_slots_free",
        "berth_snapshot_unpack_slots_free",
        "Layer extractions that could start now.",
        Kind::Gauge,
        1.0,
    ),
];

const STATES: [ServiceState; 5] = [
    ServiceState::Starting,
    ServiceState::Running,
    ServiceState::Backoff,
    ServiceState::Failed,
    ServiceState::Stopped,
];

#[allow(clippy::cast_precision_loss)]
fn f(v: u64) -> f64 {
    v as f64
}

/// Renders a scrape.
pub fn render(s: &Scrape) -> String {
    let mut e = Exposition::default();
    e.sample(
        "berth_launcher_uptime_seconds",
        "Time since berthd started.",
        Kind::Gauge,
        &[],
        s.launcher_uptime.as_secs_f64(),
    );
    for svc in &s.services {
        supervised(&mut e, svc);
    }
    for (name, snap) in &s.snapshots {
        let up = if snap.is_some() { 1.0 } else { 0.0 };
        let help = "Whether the process answered this scrape's Metrics call.";
        e.sample("berth_service_up", help, Kind::Gauge, &[("service", name)], up);
    }
    for snap in s.snapshots.iter().filter_map(|(_, m)| m.as_ref()) {
        service(&mut e, snap);
    }
    for t in &s.tasks {
        task(&mut e, t);
    }
    let help = "Calls of the last scrape that failed or timed out.";
    e.sample("berth_scrape_errors", help, Kind::Gauge, &[], f(s.errors));
    let help = "Time the last scrape took to gather its figures.";
    e.sample("berth_scrape_duration_seconds", help, Kind::Gauge, &[], s.took.as_secs_f64());
    e.finish()
}

/// The supervisor's figures of one service.
fn supervised(e: &mut Exposition, svc: &ServiceStatus) {
    let l = [("service", svc.name.as_str())];
    for state in STATES {
        let on = if svc.state == state { 1.0 } else { 0.0 };
        let labels = [("service", svc.name.as_str()), ("state", state.as_str())];
        e.sample(
            "berth_service_state",
            "The service's state in the supervisor (1 for the current one).",
            Kind::Gauge,
            &labels,
            on,
        );
    }
    let help = "Restarts of the service since berthd started.";
    e.sample("berth_service_restarts_total", help, Kind::Counter, &l, f(u64::from(svc.restarts)));
    let help = "Time since the service last became ready (0 when not running).";
    e.sample("berth_service_uptime_seconds", help, Kind::Gauge, &l, f(svc.uptime_ms) / 1e3);
    if let Some(ms) = svc.last_restart_ms {
        let help = "Time from the service's last exit to its replacement being ready.";
        e.sample("berth_service_last_restart_seconds", help, Kind::Gauge, &l, f(ms) / 1e3);
    }
    if let Some(ms) = svc.next_retry_ms {
        let help = "Time until the failed service is tried again.";
        e.sample("berth_service_next_retry_seconds", help, Kind::Gauge, &l, f(ms) / 1e3);
    }
}

/// One process's `Metrics` answer.
fn service(e: &mut Exposition, m: &MetricsSnapshot) {
    let svc = m.service.as_str();
    let l = [("service", svc)];
    for method in &m.methods {
        let ml = [("service", svc), ("method", method.method.as_str())];
        e.sample(
            "berth_requests_total",
            "Requests answered, per service and method.",
            Kind::Counter,
            &ml,
            f(method.requests),
        );
        e.sample(
            "berth_request_errors_total",
            "Requests answered with an error, per service and method.",
            Kind::Counter,
            &ml,
            f(method.errors),
        );
        let help = "Time from a request's decoding to its last frame queued, per service and method.";
        e.histogram("berth_request_duration_seconds", help, &ml, &method.latency);
    }
    e.sample("berth_connections_open", "Connections open now.", Kind::Gauge, &l, f(m.connections_open));
    e.sample(
        "berth_connections_total",
        "Connections accepted since the process started.",
        Kind::Counter,
        &l,
        f(m.connections_total),
    );
    e.sample(
        "berth_connections_refused_total",
        "Connections refused (credentials, cap, handshake).",
        Kind::Counter,
        &l,
        f(m.connections_refused),
    );
    e.sample(
        "berth_bad_frames_total",
        "Connections ended by a malformed frame.",
        Kind::Counter,
        &l,
        f(m.bad_frames),
    );
    for (name, value) in &m.gauges {
        if let Some(&(_, _, metric, help, kind, scale)) = GAUGES.iter().find(|g| g.0 == svc && g.1 == name) {
            e.sample(metric, help, kind, &[], value * scale);
        } else if let Some(kind) = name.strip_prefix("snapshots.").filter(|_| svc == "snapshot") {
            let help = "Snapshots stored, per snapshotter.";
            e.sample("berth_snapshots", help, Kind::Gauge, &[("snapshotter", kind)], *value);
        } else {
            let help = "A service figure without a metric name of its own.";
            e.sample("berth_service_gauge", help, Kind::Gauge, &[("service", svc), ("name", name)], *value);
        }
    }
}

/// One task's cgroup figures.
fn task(e: &mut Exposition, t: &TaskFigures) {
    let l = [("namespace", t.namespace.as_str()), ("container", t.container.as_str())];
    let m = &t.metrics;
    e.sample(
        "berth_task_cpu_seconds_total",
        "CPU time used by the task's cgroup.",
        Kind::Counter,
        &l,
        f(m.cpu_ns) / 1e9,
    );
    e.sample(
        "berth_task_memory_bytes",
        "Memory in use by the task's cgroup.",
        Kind::Gauge,
        &l,
        f(m.memory_bytes),
    );
    e.sample(
        "berth_task_memory_limit_bytes",
        "The task's memory limit (0: none).",
        Kind::Gauge,
        &l,
        f(m.memory_limit),
    );
    e.sample("berth_task_pids", "Processes in the task's cgroup.", Kind::Gauge, &l, f(m.pids));
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_ipc::metrics::Recorder;

    fn scrape() -> Scrape {
        let rec = Recorder::default();
        rec.record("Info", Duration::from_micros(3), false);
        rec.record("Info", Duration::from_millis(2), true);
        let mut content = rec.snapshot("content", Duration::from_secs(1));
        content.gauges = vec![("write_sessions".into(), 2.0), ("new_thing".into(), 7.0)];
        let mut metadata = Recorder::default().snapshot("metadata", Duration::ZERO);
        metadata.gauges = vec![("gc_runs".into(), 3.0), ("gc_last_duration_us".into(), 1500.0)];
        Scrape {
            launcher_uptime: Duration::from_millis(2500),
            services: vec![ServiceStatus {
                name: "content".into(),
                pid: Some(10),
                state: ServiceState::Running,
                restarts: 2,
                uptime_ms: 1500,
                last_exit: None,
                last_restart_ms: Some(40),
                next_retry_ms: None,
            }],
            snapshots: vec![
                ("content".into(), Some(content)),
                ("metadata".into(), Some(metadata)),
                ("runtime".into(), None),
            ],
            tasks: vec![TaskFigures {
                namespace: "default".into(),
                container: "web".into(),
                metrics: TaskMetrics { cpu_ns: 1_500_000_000, memory_bytes: 4096, memory_limit: 0, pids: 3 },
            }],
            errors: 1,
            took: Duration::from_millis(5),
        }
    }

    #[test]
    fn every_figure_is_rendered() {
        let text = render(&scrape());
        for want in [
            "berth_launcher_uptime_seconds 2.5\n",
            "berth_service_state{service=\"content\",state=\"running\"} 1\n",
            "berth_service_state{service=\"content\",state=\"failed\"} 0\n",
            "berth_service_restarts_total{service=\"content\"} 2\n",
            "berth_service_uptime_seconds{service=\"content\"} 1.5\n",
            "berth_service_last_restart_seconds{service=\"content\"} 0.04\n",
            "berth_service_up{service=\"runtime\"} 0\n",
            "berth_service_up{service=\"content\"} 1\n",
            "berth_requests_total{service=\"content\",method=\"Info\"} 2\n",
            "berth_request_errors_total{service=\"content\",method=\"Info\"} 1\n",
            "berth_request_duration_seconds_count{service=\"content\",method=\"Info\"} 2\n",
            "berth_content_write_sessions 2\n",
            "berth_service_gauge{service=\"content\",name=\"new_thing\"} 7\n",
            "berth_gc_runs_total 3\n",
            "berth_gc_last_duration_seconds 0.0015\n",
            "berth_task_cpu_seconds_total{namespace=\"default\",container=\"web\"} 1.5\n",
            "berth_task_pids{namespace=\"default\",container=\"web\"} 3\n",
            "berth_scrape_errors 1\n",
        ] {
            assert!(text.contains(want), "missing {want:?} in\n{text}");
        }
        assert_eq!(text.matches("# TYPE berth_requests_total counter\n").count(), 1);
        assert!(text.contains("# TYPE berth_gc_runs_total counter\n"));
    }
}
