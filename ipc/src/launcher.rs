//! The launcher's control socket (`berthd.sock`): list the supervised services, restart,
//! stop or start one, and read every service's metrics as Prometheus text.

use serde::{Deserialize, Serialize};

/// A service's state in the supervisor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ServiceState {
    /// Spawned, not yet ready.
    Starting,
    /// Ready and answering pings.
    Running,
    /// Exited; waiting out the back-off delay before the next start.
    Backoff,
    /// Failed to start too often; tried again every `supervisor.failed_retry_s` (see
    /// [`ServiceStatus::next_retry_ms`]) or when started by hand.
    Failed,
    /// Stopped by request.
    Stopped,
}

impl ServiceState {
    /// Lowercase name, as the CLI prints it.
    pub fn as_str(self) -> &'static str {
        match self {
            ServiceState::Starting => "starting",
            ServiceState::Running => "running",
            ServiceState::Backoff => "backoff",
            ServiceState::Failed => "failed",
            ServiceState::Stopped => "stopped",
        }
    }
}

/// One supervised service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceStatus {
    /// Its name (`content`, …).
    pub name: String,
    /// Its pid while it has a process.
    pub pid: Option<u32>,
    /// Its state.
    pub state: ServiceState,
    /// Restarts since the launcher started.
    pub restarts: u32,
    /// Milliseconds since it last became ready (0 when not running).
    pub uptime_ms: u64,
    /// How its last process ended (`exit status 1`, `signal 9 (SIGKILL)`, `killed: no answer
    /// to ping`), if one did.
    pub last_exit: Option<String>,
    /// Milliseconds from its last exit to its replacement being ready.
    pub last_restart_ms: Option<u64>,
    /// While `failed`: milliseconds until the next retry.
    pub next_retry_ms: Option<u64>,
}

/// `ListServices`: every service in start order.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ListServices;

/// `RestartService`: kill (SIGTERM, then SIGKILL) and start again; clears `failed`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RestartService {
    /// The service's name.
    pub name: String,
}

/// `StopService`: stop and keep stopped.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StopService {
    /// The service's name.
    pub name: String,
}

/// `StartService`: start a stopped or failed service.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StartService {
    /// The service's name.
    pub name: String,
}

/// `ScrapeMetrics`: every service's counters, the launcher's figures and every running
/// task's cgroup figures, in Prometheus text exposition format (version 0.0.4) — the same
/// text the launcher's HTTP endpoint serves at `/metrics`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ScrapeMetrics;

crate::protocol! {
    /// The launcher's control socket.
    pub protocol Launcher = "berthd";
    request LauncherRequest; response LauncherResponse;
    /// List services. Always allowed.
    List(ListServices) -> Vec<ServiceStatus> [idempotent];
    /// Restart one service. Allowed in any state; the reply comes once it is ready again
    /// (or has failed to become ready).
    Restart(RestartService) -> ServiceStatus [];
    /// Stop one service. Allowed in any state.
    Stop(StopService) -> ServiceStatus [idempotent];
    /// Start a stopped or failed service; `FailedPrecondition` while it runs.
    Start(StartService) -> ServiceStatus [];
    /// Gather and render metrics. Always allowed; a service that does not answer in time is
    /// left out (its `berth_service_up` is 0).
    Metrics(ScrapeMetrics) -> String [idempotent];
}
