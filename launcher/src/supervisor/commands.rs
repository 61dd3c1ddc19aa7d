//! The supervisor's answers to the control socket's commands: list, restart, stop, start.

use std::time::Duration;

use berth_ipc::launcher::ServiceState;
use berth_ipc::{Error, Result};
use nix::sys::signal::Signal;

use super::{AfterExit, Command, Event, SERVICES, Service, Supervisor, signal};

impl Supervisor {
    pub(super) fn find(&self, name: &str) -> Result<usize> {
        self.services.iter().position(|s| s.name == name).ok_or_else(|| {
            Error::not_found(format!("service {name:?}: no such service (known: {})", SERVICES.join(", ")))
        })
    }

    pub(super) fn on_command(&mut self, cmd: Command) {
        match cmd {
            Command::List(reply) => {
                let _ = reply.send(self.services.iter().map(Service::status).collect());
            }
            Command::Restart(name, reply) => match self.find(&name) {
                Err(e) => {
                    let _ = reply.send(Err(e));
                }
                Ok(idx) => {
                    let svc = &mut self.services[idx];
                    svc.waiters.push(reply);
                    if svc.pid.is_some() {
                        svc.after_exit = AfterExit::Respawn;
                        svc.kill_reason = Some("restarted by request".into());
                        self.stop_process(idx);
                    } else {
                        svc.policy.reset();
                        svc.retries = 0;
                        self.spawn(idx);
                    }
                }
            },
            Command::Stop(name, reply) => match self.find(&name) {
                Err(e) => {
                    let _ = reply.send(Err(e));
                }
                Ok(idx) => {
                    let svc = &mut self.services[idx];
                    if svc.pid.is_some() {
                        svc.after_exit = AfterExit::Stay;
                        svc.kill_reason = Some("stopped by request".into());
                        svc.waiters.push(reply);
                        self.stop_process(idx);
                    } else {
                        svc.state = ServiceState::Stopped;
                        svc.retries = 0;
                        svc.generation += 1; // cancels a pending back-off or retry
                        let _ = reply.send(Ok(svc.status()));
                    }
                }
            },
            Command::Start(name, reply) => match self.find(&name) {
                Err(e) => {
                    let _ = reply.send(Err(e));
                }
                Ok(idx) => {
                    let svc = &mut self.services[idx];
                    if matches!(svc.state, ServiceState::Stopped | ServiceState::Failed) {
                        svc.waiters.push(reply);
                        svc.policy.reset();
                        svc.retries = 0;
                        self.spawn(idx);
                    } else {
                        let msg = format!("service {name}: already {}", svc.state.as_str());
                        let _ = reply.send(Err(Error::precondition(msg)));
                    }
                }
            },
            Command::Shutdown(_) => {}
        }
    }

    /// SIGTERM now, SIGKILL after the stop timeout if it is still the same process.
    pub(super) fn stop_process(&mut self, idx: usize) {
        let svc = &self.services[idx];
        signal(svc.pid, Signal::SIGTERM);
        let generation = svc.generation;
        let timeout = Duration::from_secs(self.config.supervisor.stop_timeout_s);
        let tx = self.events_tx.clone();
        tokio::spawn(async move {
            tokio::time::sleep(timeout).await;
            let _ = tx.send(Event::StopTimeout { idx, generation });
        });
    }
}
