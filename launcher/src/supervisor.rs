//! The supervisor: one actor that owns every service's process and state, starts them in
//! dependency order, restarts them by the policy, kills the ones that stop answering pings,
//! and answers the control socket.
//!
//! Everything that happens to a service arrives as an [`Event`] tagged with the service's
//! generation (bumped at every spawn), so news about a process that has since been replaced
//! is recognised and dropped.

use std::os::unix::net::UnixListener;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use berth_ipc::Result;
use berth_ipc::events::payload::{ServiceRestarted, ServiceRetrying, ServiceStarted};
use berth_ipc::launcher::{ServiceState, ServiceStatus};
use berth_ipc::publisher::Publisher;
use berth_service_kit::Config;
use berth_service_kit::logging::LogFormat;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio::sync::{mpsc, oneshot};

use crate::child;
use crate::policy::Policy;

mod commands;
mod exits;

/// The namespace of the launcher's own events (`/services/*`).
pub const SYSTEM_NAMESPACE: &str = "berth.system";

/// Services in start order; stopped in reverse.
pub const SERVICES: [&str; 6] = ["events", "content", "snapshot", "metadata", "runtime", "cri"];

/// A request from the control socket or from `main`.
pub enum Command {
    /// Every service's status.
    List(oneshot::Sender<Vec<ServiceStatus>>),
    /// Restart one; reply once it is ready again.
    Restart(String, oneshot::Sender<Result<ServiceStatus>>),
    /// Stop one; reply once it has exited.
    Stop(String, oneshot::Sender<Result<ServiceStatus>>),
    /// Start a stopped or failed one; reply once it is ready.
    Start(String, oneshot::Sender<Result<ServiceStatus>>),
    /// Stop everything in reverse order; reply when done.
    Shutdown(oneshot::Sender<()>),
}

/// News about a service process.
enum Event {
    Ready { idx: usize, generation: u64 },
    NotReady { idx: usize, generation: u64, why: String },
    Exited { idx: usize, generation: u64, how: String },
    Ping { idx: usize, generation: u64, ok: bool },
    BackoffOver { idx: usize, generation: u64 },
    RetryFailed { idx: usize, generation: u64 },
    StopTimeout { idx: usize, generation: u64 },
}

/// What the supervisor does once a process it asked to stop has exited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AfterExit {
    /// Apply the restart policy (the exit was not asked for).
    Policy,
    /// Start again at once (a restart by hand).
    Respawn,
    /// Stay stopped.
    Stay,
}

struct Service {
    name: &'static str,
    listener: UnixListener,
    socket: PathBuf,
    state: ServiceState,
    pid: Option<u32>,
    generation: u64,
    restarts: u32,
    ready_at: Option<Instant>,
    exited_at: Option<Instant>,
    last_exit: Option<String>,
    last_restart: Option<Duration>,
    kill_reason: Option<String>,
    after_exit: AfterExit,
    ping_failures: u32,
    policy: Policy,
    /// While failed: when the next slow retry is due.
    retry_at: Option<Instant>,
    /// Slow retries since it was marked failed (0: not failed, or a retry served).
    retries: u32,
    waiters: Vec<oneshot::Sender<Result<ServiceStatus>>>,
}

impl Service {
    fn status(&self) -> ServiceStatus {
        ServiceStatus {
            name: self.name.to_string(),
            pid: self.pid,
            state: self.state,
            restarts: self.restarts,
            uptime_ms: match (self.state, self.ready_at) {
                (ServiceState::Running, Some(t)) => {
                    u64::try_from(t.elapsed().as_millis()).unwrap_or(u64::MAX)
                }
                _ => 0,
            },
            last_exit: self.last_exit.clone(),
            last_restart_ms: self.last_restart.map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
            next_retry_ms: match (self.state, self.retry_at) {
                (ServiceState::Failed, Some(t)) => Some(
                    u64::try_from(t.saturating_duration_since(Instant::now()).as_millis())
                        .unwrap_or(u64::MAX),
                ),
                _ => None,
            },
        }
    }
}

/// The supervisor actor.
pub struct Supervisor {
    config: Config,
    config_file: Option<PathBuf>,
    log_format: LogFormat,
    services: Vec<Service>,
    events_tx: mpsc::UnboundedSender<Event>,
    events_rx: mpsc::UnboundedReceiver<Event>,
    events: Publisher,
}

impl Supervisor {
    /// A supervisor for the services whose sockets are already bound in `listeners`; they log
    /// in `log_format`.
    pub fn new(
        config: Config,
        config_file: Option<PathBuf>,
        log_format: LogFormat,
        listeners: Vec<(&'static str, UnixListener)>,
    ) -> Self {
        let sup = &config.supervisor;
        let services = listeners
            .into_iter()
            .map(|(name, listener)| Service {
                name,
                listener,
                socket: config.socket(name),
                state: ServiceState::Stopped,
                pid: None,
                generation: 0,
                restarts: 0,
                ready_at: None,
                exited_at: None,
                last_exit: None,
                last_restart: None,
                kill_reason: None,
                after_exit: AfterExit::Policy,
                ping_failures: 0,
                policy: Policy::new(
                    sup.max_restarts,
                    Duration::from_secs(sup.restart_window_s),
                    Duration::from_secs(sup.backoff_max_s),
                    Duration::from_secs(sup.failed_retry_s),
                ),
                retry_at: None,
                retries: 0,
                waiters: Vec::new(),
            })
            .collect();
        let (events_tx, events_rx) = mpsc::unbounded_channel();
        let events = Publisher::in_state_dir(&config.state, "berthd");
        Supervisor { config, config_file, log_format, services, events_tx, events_rx, events }
    }

    /// Starts every service in order, each waiting for the previous to be ready (or to fail
    /// to become ready), reports that on `started`, then serves commands until `Shutdown`
    /// has completed.
    pub async fn run(mut self, mut commands: mpsc::Receiver<Command>, started: oneshot::Sender<()>) {
        for idx in 0..self.services.len() {
            self.spawn(idx);
            self.wait_settled(idx).await;
        }
        let _ = started.send(());
        let mut ping =
            tokio::time::interval(Duration::from_millis(self.config.supervisor.ping_interval_ms.max(10)));
        ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                Some(ev) = self.events_rx.recv() => self.on_event(ev),
                cmd = commands.recv() => match cmd {
                    Some(Command::Shutdown(done)) => {
                        self.shutdown().await;
                        let _ = done.send(());
                        return;
                    }
                    Some(cmd) => self.on_command(cmd),
                    None => {
                        self.shutdown().await;
                        return;
                    }
                },
                _ = ping.tick() => self.ping_all(),
            }
        }
    }

    /// Handles events until service `idx` is running, failed or stopped.
    async fn wait_settled(&mut self, idx: usize) {
        while matches!(self.services[idx].state, ServiceState::Starting | ServiceState::Backoff) {
            match self.events_rx.recv().await {
                Some(ev) => self.on_event(ev),
                None => return,
            }
        }
    }

    fn spawn(&mut self, idx: usize) {
        let svc = &mut self.services[idx];
        svc.generation += 1;
        svc.ping_failures = 0;
        svc.kill_reason = None;
        svc.after_exit = AfterExit::Policy;
        svc.retry_at = None;
        let generation = svc.generation;
        match child::spawn(
            &self.config,
            self.config_file.as_deref(),
            self.log_format,
            svc.name,
            &svc.listener,
        ) {
            Ok(started) => {
                svc.state = ServiceState::Starting;
                svc.pid = Some(started.pid);
                tracing::info!(service = svc.name, pid = started.pid, "started");
                let timeout = Duration::from_secs(self.config.supervisor.ready_timeout_s.max(1));
                let tx = self.events_tx.clone();
                tokio::spawn(async move {
                    match child::wait_ready(started.ready, timeout).await {
                        Ok(()) => {
                            let _ = tx.send(Event::Ready { idx, generation });
                        }
                        Err(why) => {
                            let _ = tx.send(Event::NotReady { idx, generation, why });
                        }
                    }
                });
                let tx = self.events_tx.clone();
                let mut process = started.child;
                tokio::spawn(async move {
                    let how = match process.wait().await {
                        Ok(status) => child::describe_exit(&status),
                        Err(e) => format!("wait failed: {e}"),
                    };
                    let _ = tx.send(Event::Exited { idx, generation, how });
                });
            }
            Err(e) => {
                tracing::error!(service = svc.name, error = %e, "cannot start");
                let how = format!("cannot start {}: {e}", child::binary(&self.config, svc.name).display());
                let _ = self.events_tx.send(Event::Exited { idx, generation, how });
                svc.state = ServiceState::Starting;
            }
        }
    }

    fn on_event(&mut self, ev: Event) {
        match ev {
            Event::Ready { idx, generation } if self.services[idx].generation == generation => {
                let svc = &mut self.services[idx];
                if svc.state != ServiceState::Starting {
                    return;
                }
                svc.state = ServiceState::Running;
                svc.ready_at = Some(Instant::now());
                if svc.retries > 0 {
                    // A slow retry served: whatever made it fail has gone.
                    tracing::info!(service = svc.name, retries = svc.retries, "recovered from failed");
                    svc.retries = 0;
                    svc.policy.reset();
                }
                let (name, pid) = (svc.name.to_string(), svc.pid.unwrap_or(0));
                if let Some(t) = svc.exited_at.take() {
                    svc.last_restart = Some(t.elapsed());
                    let restarts = svc.restarts;
                    self.events.publish(SYSTEM_NAMESPACE, ServiceRestarted { name, pid, restarts });
                } else {
                    self.events.publish(SYSTEM_NAMESPACE, ServiceStarted { name, pid });
                }
                let svc = &mut self.services[idx];
                tracing::info!(service = svc.name, pid = svc.pid, restart_ms = ?svc.last_restart.map(|d| d.as_millis()), "ready");
                let status = svc.status();
                for w in svc.waiters.drain(..) {
                    let _ = w.send(Ok(status.clone()));
                }
            }
            Event::NotReady { idx, generation, why } if self.services[idx].generation == generation => {
                let svc = &mut self.services[idx];
                if svc.state == ServiceState::Starting {
                    tracing::warn!(service = svc.name, "{why}");
                    svc.kill_reason = Some(format!("killed: {why}"));
                    signal(svc.pid, Signal::SIGKILL);
                }
            }
            Event::Exited { idx, generation, how } if self.services[idx].generation == generation => {
                self.on_exit(idx, how);
            }
            Event::Ping { idx, generation, ok } if self.services[idx].generation == generation => {
                let limit = self.config.supervisor.ping_failures.max(1);
                let svc = &mut self.services[idx];
                if svc.state != ServiceState::Running {
                    return;
                }
                if ok {
                    svc.ping_failures = 0;
                    return;
                }
                svc.ping_failures += 1;
                if svc.ping_failures >= limit {
                    tracing::warn!(
                        service = svc.name,
                        pid = svc.pid,
                        "no answer to {limit} pings, killing it"
                    );
                    svc.kill_reason = Some(format!("killed: no answer to {limit} pings"));
                    signal(svc.pid, Signal::SIGKILL);
                }
            }
            Event::BackoffOver { idx, generation }
                if self.services[idx].generation == generation
                    && self.services[idx].state == ServiceState::Backoff =>
            {
                self.spawn(idx);
            }
            Event::RetryFailed { idx, generation }
                if self.services[idx].generation == generation
                    && self.services[idx].state == ServiceState::Failed =>
            {
                let svc = &mut self.services[idx];
                svc.retries += 1;
                tracing::info!(service = svc.name, attempt = svc.retries, "retrying failed service");
                let retrying = ServiceRetrying { name: svc.name.to_string(), attempt: svc.retries };
                self.events.publish(SYSTEM_NAMESPACE, retrying);
                self.spawn(idx);
            }
            Event::StopTimeout { idx, generation } if self.services[idx].generation == generation => {
                // Still the same process and still alive: it ignored SIGTERM.
                let svc = &self.services[idx];
                if svc.pid.is_some() {
                    tracing::warn!(service = svc.name, pid = svc.pid, "did not stop in time, killing it");
                    signal(svc.pid, Signal::SIGKILL);
                }
            }
            _ => {} // news about a replaced process
        }
    }

    fn ping_all(&mut self) {
        let timeout = Duration::from_millis(self.config.supervisor.ping_timeout_ms.max(1));
        for (idx, svc) in self.services.iter().enumerate() {
            if svc.state != ServiceState::Running {
                continue;
            }
            let (tx, socket, name, generation) =
                (self.events_tx.clone(), svc.socket.clone(), svc.name, svc.generation);
            tokio::spawn(async move {
                let ok = berth_ipc::probe::probe(&socket, name, timeout).await.is_ok();
                let _ = tx.send(Event::Ping { idx, generation, ok });
            });
        }
    }

    /// Stops every service in reverse start order, each SIGTERM then (after the stop
    /// timeout) SIGKILL.
    async fn shutdown(&mut self) {
        let timeout = Duration::from_secs(self.config.supervisor.stop_timeout_s);
        for idx in (0..self.services.len()).rev() {
            let svc = &mut self.services[idx];
            svc.after_exit = AfterExit::Stay;
            if svc.pid.is_none() {
                svc.state = ServiceState::Stopped;
                svc.generation += 1;
                continue;
            }
            tracing::info!(service = svc.name, "stopping");
            signal(svc.pid, Signal::SIGTERM);
            let deadline = tokio::time::Instant::now() + timeout;
            while self.services[idx].pid.is_some() {
                match tokio::time::timeout_at(deadline, self.events_rx.recv()).await {
                    Ok(Some(ev)) => self.on_event(ev),
                    Ok(None) => break,
                    Err(_) => {
                        tracing::warn!(service = self.services[idx].name, "did not stop in time, killing it");
                        signal(self.services[idx].pid, Signal::SIGKILL);
                        if let Ok(Some(ev)) =
                            tokio::time::timeout(Duration::from_secs(2), self.events_rx.recv()).await
                        {
                            self.on_event(ev);
                        }
                        break;
                    }
                }
            }
        }
        for svc in &self.services {
            let _ = std::fs::remove_file(&svc.socket);
        }
    }
}

fn signal(pid: Option<u32>, sig: Signal) {
    if let Some(pid) = pid.and_then(|p| i32::try_from(p).ok()) {
        let _ = kill(Pid::from_raw(pid), sig);
    }
}
