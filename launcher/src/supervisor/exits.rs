//! What the supervisor does when a service's process has exited: stay stopped, respawn, or
//! ask the restart policy, which may restart it (perhaps after a back-off) or mark it
//! failed and schedule its slow retry.

use std::time::Instant;

use berth_ipc::Error;
use berth_ipc::events::payload::{ServiceExited, ServiceFailed};
use berth_ipc::launcher::ServiceState;

use super::{AfterExit, Event, SYSTEM_NAMESPACE, Supervisor};
use crate::policy::Decision;

impl Supervisor {
    pub(super) fn on_exit(&mut self, idx: usize, how: String) {
        let svc = &mut self.services[idx];
        let how = match svc.kill_reason.take() {
            Some(reason) => format!("{reason} ({how})"),
            None => how,
        };
        tracing::warn!(service = svc.name, pid = svc.pid, "exited: {how}");
        let exited =
            ServiceExited { name: svc.name.to_string(), pid: svc.pid.unwrap_or(0), status: how.clone() };
        self.events.publish(SYSTEM_NAMESPACE, exited);
        let svc = &mut self.services[idx];
        let served = svc.ready_at.map(|t| t.elapsed());
        svc.pid = None;
        svc.ready_at = None;
        svc.last_exit = Some(how);
        svc.exited_at = Some(Instant::now());
        match svc.after_exit {
            AfterExit::Stay => {
                svc.state = ServiceState::Stopped;
                svc.exited_at = None;
                let status = svc.status();
                for w in svc.waiters.drain(..) {
                    let _ = w.send(Ok(status.clone()));
                }
            }
            AfterExit::Respawn => {
                svc.restarts += 1;
                svc.policy.reset();
                self.spawn(idx);
            }
            AfterExit::Policy => match svc.policy.on_exit(Instant::now(), served) {
                Decision::GiveUp(retry) => {
                    svc.state = ServiceState::Failed;
                    svc.retry_at = Some(Instant::now() + retry);
                    if svc.retries == 0 {
                        tracing::error!(
                            service = svc.name,
                            restarts = svc.restarts,
                            retry_s = retry.as_secs_f64(),
                            "failed to start too often, marked failed; retrying on the slow schedule"
                        );
                        let sup = &self.config.supervisor;
                        let reason = format!(
                            "more than {} failed starts in {} s",
                            sup.max_restarts, sup.restart_window_s
                        );
                        let failed =
                            ServiceFailed { name: svc.name.to_string(), restarts: svc.restarts, reason };
                        self.events.publish(SYSTEM_NAMESPACE, failed);
                    } else {
                        tracing::warn!(
                            service = svc.name,
                            attempt = svc.retries,
                            retry_s = retry.as_secs_f64(),
                            "retry of failed service failed"
                        );
                    }
                    let svc = &mut self.services[idx];
                    let err =
                        Error::unavailable(format!("{}: failed after too many failed starts", svc.name));
                    for w in svc.waiters.drain(..) {
                        let _ = w.send(Err(err.clone()));
                    }
                    let (tx, generation) = (self.events_tx.clone(), svc.generation);
                    tokio::spawn(async move {
                        tokio::time::sleep(retry).await;
                        let _ = tx.send(Event::RetryFailed { idx, generation });
                    });
                }
                Decision::Restart(delay) => {
                    svc.restarts += 1;
                    if delay.is_zero() {
                        self.spawn(idx);
                    } else {
                        svc.state = ServiceState::Backoff;
                        let (tx, generation) = (self.events_tx.clone(), svc.generation);
                        tokio::spawn(async move {
                            tokio::time::sleep(delay).await;
                            let _ = tx.send(Event::BackoffOver { idx, generation });
                        });
                    }
                }
            },
        }
    }
}
