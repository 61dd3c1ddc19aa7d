//! `Logs`: a container's kept output, after the fact (`berth tasks logs`), as `nerdctl logs`
//! gives it: all that is kept or the last N lines, from a time on, then (`follow`) live until
//! the process exits. Readable until `containers rm` removes the log dir.

use std::collections::VecDeque;
use std::time::Duration;

use berth_ipc::metadata::{ByName, GetContainer};
use berth_ipc::runtime::{LogEntry, Logs, RuntimeResponse};
use berth_ipc::{Error, Result};
use tokio::sync::mpsc;

use crate::Runtime;
use crate::logfile::Record;
use crate::logread::Follower;
use crate::tasks::check;

/// How often a follow looks for new output.
const FOLLOW_POLL: Duration = Duration::from_millis(20);

/// About this many bytes of output per answer.
const BATCH_BYTES: usize = 64 << 10;

impl Runtime {
    /// `Logs`.
    pub async fn logs(&self, req: Logs, tx: mpsc::Sender<Result<RuntimeResponse>>) {
        if let Err(e) = self.send_logs(req, &tx).await {
            let _ = tx.send(Err(e)).await;
        }
    }

    async fn send_logs(&self, req: Logs, tx: &mpsc::Sender<Result<RuntimeResponse>>) -> Result<()> {
        let task = &req.task;
        check(task)?;
        let (ns, id) = (task.namespace.as_str(), task.id.as_str());
        let container =
            self.metadata.call(GetContainer(ByName { namespace: ns.into(), name: id.into() })).await?;
        let log_path = crate::log_path::of(&container)?;
        let mut log = Follower::new(self.process_log(task, log_path.as_deref()));
        if let (Some(exec), false) = (&task.exec_id, log.exists()) {
            return Err(Error::not_found(format!("exec {exec} of container {id}: no output kept")));
        }
        let since = req.since.unwrap_or(0);
        let keep = |r: &Record| r.time_ns >= since;
        if let Some(n) = req.tail {
            // Whole lines: a line is its partial records up to the one that ends it.
            let mut lines: VecDeque<Vec<Record>> = VecDeque::new();
            let mut open = false;
            loop {
                let records = log.read();
                if records.is_empty() {
                    break;
                }
                for r in records.into_iter().filter(keep) {
                    let partial = r.partial;
                    match lines.back_mut() {
                        Some(line) if open => line.push(r),
                        _ => lines.push_back(vec![r]),
                    }
                    open = partial;
                    if lines.len() as u64 > n {
                        lines.pop_front();
                    }
                }
            }
            send(tx, lines.into_iter().flatten().collect()).await?;
        } else {
            loop {
                let records: Vec<Record> = log.read().into_iter().filter(keep).collect();
                if records.is_empty() {
                    break;
                }
                send(tx, records).await?;
            }
        }
        if !req.follow {
            return Ok(());
        }
        // Live until the process has exited (at once if it has, or has no task).
        let waiter = {
            let (rt, task) = (self.clone(), task.clone());
            tokio::spawn(async move { rt.wait(task).await })
        };
        let mut exited = false;
        loop {
            let finished = exited || waiter.is_finished();
            let records = log.read();
            let any = !records.is_empty();
            if any && send(tx, records).await.is_err() {
                waiter.abort();
                return Ok(());
            }
            if finished && !any {
                return Ok(());
            }
            if !any {
                tokio::select! {
                    _ = tokio::time::sleep(FOLLOW_POLL) => {}
                    _ = tx.closed() => { waiter.abort(); return Ok(()); }
                }
                exited = exited || waiter.is_finished();
            }
        }
    }
}

/// Sends `records` in batches of about [`BATCH_BYTES`]; an error once the client is gone.
async fn send(tx: &mpsc::Sender<Result<RuntimeResponse>>, records: Vec<Record>) -> Result<()> {
    let mut batch = Vec::new();
    let mut size = 0;
    for r in records {
        let data = r.bytes();
        size += data.len();
        batch.push(LogEntry { stream: r.stream, time: r.time_ns, data });
        if size >= BATCH_BYTES {
            let full = std::mem::take(&mut batch);
            size = 0;
            tx.send(Ok(RuntimeResponse::Logs(full)))
                .await
                .map_err(|_| Error::unavailable("logs: client gone"))?;
        }
    }
    if !batch.is_empty() {
        tx.send(Ok(RuntimeResponse::Logs(batch)))
            .await
            .map_err(|_| Error::unavailable("logs: client gone"))?;
    }
    Ok(())
}
