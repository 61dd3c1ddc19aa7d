//! The single writer: one thread that owns appends. It takes every publish waiting in its
//! inbox at once (group commit), answers already-stored idempotency keys from the window,
//! appends the new events with one sync, answers each caller with its seqs, and hands the
//! batch to the hub. Many concurrent publishers thus share one `fdatasync`.

use std::collections::HashMap;
use std::sync::Arc;

use berth_ipc::events::NewEvent;
use berth_ipc::{Error, Result};
use tokio::sync::{mpsc, oneshot};

use crate::dedup::Dedup;
use crate::hub::Hub;
use crate::store::{Log, Pending};

/// Most events appended in one group.
const GROUP_MAX: usize = 32_768;

/// One publish waiting for the writer.
struct Append {
    publisher: Arc<str>,
    first_counter: u64,
    events: Vec<NewEvent>,
    reply: oneshot::Sender<Result<Vec<u64>>>,
}

/// The handle publishers send to.
#[derive(Clone)]
pub struct Writer {
    tx: mpsc::Sender<Append>,
}

impl Writer {
    /// Starts the writer thread over `log`, with the dedup window rebuilt from it.
    pub fn start(log: Arc<Log>, hub: Arc<Hub>, dedup_window: usize) -> Result<Writer> {
        let mut dedup = Dedup::new(dedup_window);
        let from = (log.last() + 1).saturating_sub(dedup_window as u64);
        for run in log.recent_keys(dedup_window)? {
            let p = dedup.intern(&run.publisher);
            for (counter, seq) in run.keys_from(from) {
                dedup.insert(p.clone(), counter, seq);
            }
        }
        let (tx, rx) = mpsc::channel(4096);
        std::thread::Builder::new()
            .name("events-writer".into())
            .spawn(move || run(rx, &log, &hub, dedup))
            .map_err(|e| Error::internal_cause("start writer thread", e))?;
        Ok(Writer { tx })
    }

    /// Appends (or finds) the events; returns their seqs once durable.
    pub async fn append(
        &self,
        publisher: &str,
        first_counter: u64,
        events: Vec<NewEvent>,
    ) -> Result<Vec<u64>> {
        let (reply, rx) = oneshot::channel();
        let cmd = Append { publisher: Arc::from(publisher), first_counter, events, reply };
        self.tx.send(cmd).await.map_err(|_| Error::unavailable("event log: writer stopped"))?;
        rx.await.map_err(|_| Error::internal("event log: writer stopped"))?
    }
}

/// Where one event's seq comes from.
enum Slot {
    Known(u64),
    New(usize),
}

fn run(mut rx: mpsc::Receiver<Append>, log: &Log, hub: &Hub, mut dedup: Dedup) {
    while let Some(first) = rx.blocking_recv() {
        let mut cmds = vec![first];
        let mut n = cmds[0].events.len();
        while n < GROUP_MAX {
            match rx.try_recv() {
                Ok(c) => {
                    n += c.events.len();
                    cmds.push(c);
                }
                Err(_) => break,
            }
        }
        let mut pending = Vec::with_capacity(n);
        let mut in_group: HashMap<(Arc<str>, u64), usize> = HashMap::new();
        let mut slots: Vec<Vec<Slot>> = Vec::with_capacity(cmds.len());
        let mut replies = Vec::with_capacity(cmds.len());
        for cmd in cmds {
            let publisher = dedup.intern(&cmd.publisher);
            let mut these = Vec::with_capacity(cmd.events.len());
            for (i, event) in cmd.events.into_iter().enumerate() {
                let counter = cmd.first_counter.wrapping_add(i as u64);
                if let Some(seq) = dedup.get(&publisher, counter) {
                    these.push(Slot::Known(seq));
                } else if let Some(idx) = in_group.get(&(publisher.clone(), counter)) {
                    these.push(Slot::New(*idx));
                } else {
                    in_group.insert((publisher.clone(), counter), pending.len());
                    these.push(Slot::New(pending.len()));
                    pending.push(Pending { publisher: publisher.clone(), counter, event });
                }
            }
            slots.push(these);
            replies.push(cmd.reply);
        }
        let keys: Vec<(Arc<str>, u64)> = pending.iter().map(|p| (p.publisher.clone(), p.counter)).collect();
        match log.append(pending) {
            Ok(envelopes) => {
                for ((publisher, counter), env) in keys.into_iter().zip(&envelopes) {
                    dedup.insert(publisher, counter, env.seq);
                }
                let answers: Vec<Vec<u64>> = slots
                    .iter()
                    .map(|these| {
                        these
                            .iter()
                            .map(|s| match s {
                                Slot::Known(seq) => *seq,
                                Slot::New(i) => envelopes.get(*i).map_or(0, |e| e.seq),
                            })
                            .collect()
                    })
                    .collect();
                // Hand to the hub before answering: once a publish returns, a new
                // subscriber's `Ready.last` covers it.
                hub.deliver(Arc::new(envelopes));
                for (seqs, reply) in answers.into_iter().zip(replies) {
                    let _ = reply.send(Ok(seqs));
                }
            }
            Err(e) => {
                tracing::error!(error = %e, events = keys.len(), "append to event log failed");
                for reply in replies {
                    let _ = reply.send(Err(e.clone()));
                }
            }
        }
    }
}
