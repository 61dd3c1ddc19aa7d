//! What the shim does when a process it reaped has exited: the init's exit is recorded
//! durably in the bundle before anyone hears of it, exits are published in order (see
//! [`Order`]), and the OCI runtime's `delete` of a started container whose init has exited
//! runs at once, off the reaper thread ([`EarlyDelete`]), so that deleting the task later
//! does not wait for it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::Duration;

use berth_ipc::events::payload::{TaskExit, TaskOom};
use berth_ipc::runtime::ExitInfo;

use super::events::ShimEvents;
use super::oom::OomWatch;
use super::process::Runner;
use super::reaper::{OnExit, Reaper};
use crate::bundle::{Bundle, write_exit};

/// Keeps `/tasks/start` before `/tasks/exit` and `/tasks/exec-started` before the exec's
/// exit. Never held while waiting for a child.
#[derive(Default)]
pub struct Order {
    /// `/tasks/start` is published.
    pub started: bool,
    /// The init's exit, reaped before start was published.
    pub pending: Option<TaskExit>,
    /// Its OOM kill, published before it.
    pub pending_oom: Option<TaskOom>,
    /// Exec pids whose exit is still to be published, with their exec ids.
    pub exec_pids: HashMap<i32, String>,
    /// The init's exit has been handled (recorded, published or held back).
    pub init_exited: bool,
}

/// The runtime's `delete` of an exited container, begun by the exit hook.
#[derive(Default)]
pub struct EarlyDelete {
    /// `None` before it began; `Some(None)` while it runs; `Some(Some(ok))` once done.
    state: Mutex<Option<Option<bool>>>,
    changed: Condvar,
}

impl EarlyDelete {
    /// Runs `delete` on a thread of its own.
    pub fn begin(self: &Arc<Self>, runner: Runner, id: String) {
        *self.state.lock().unwrap_or_else(|p| p.into_inner()) = Some(None);
        let this = self.clone();
        let spawned =
            std::thread::Builder::new().name("delete".into()).stack_size(128 << 10).spawn(move || {
                super::sys::background_priority();
                let ok = runner.run(&["delete", &id]).is_ok();
                *this.state.lock().unwrap_or_else(|p| p.into_inner()) = Some(Some(ok));
                this.changed.notify_all();
            });
        if spawned.is_err() {
            *self.state.lock().unwrap_or_else(|p| p.into_inner()) = None;
        }
    }

    /// Whether the early delete succeeded: `false` when it never began, failed, or is still
    /// running after `timeout` (then the caller deletes itself).
    pub fn wait(&self, timeout: Duration) -> bool {
        let guard = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let (guard, _) = self
            .changed
            .wait_timeout_while(guard, timeout, |s| matches!(s, Some(None)))
            .unwrap_or_else(|p| p.into_inner());
        matches!(*guard, Some(Some(true)))
    }
}

/// What the exit hook works with.
#[derive(Clone)]
pub struct ExitCtx {
    /// The container id.
    pub id: String,
    /// The bundle (for `exit.json`).
    pub bundle: Bundle,
    /// The init's pid once known (0 before).
    pub init: Arc<AtomicI32>,
    /// Event order.
    pub order: Arc<Mutex<Order>>,
    /// Events.
    pub events: Arc<ShimEvents>,
    /// The runner, once the reaper exists.
    pub runner: Arc<OnceLock<Runner>>,
    /// The early delete.
    pub early: Arc<EarlyDelete>,
    /// The container's OOM counter, once its cgroup exists.
    pub oom: Arc<OnceLock<OomWatch>>,
}

fn exit_event(ctx: &ExitCtx, process: &str, pid: i32, exit: ExitInfo) -> TaskExit {
    TaskExit {
        container_id: ctx.id.clone(),
        id: process.to_string(),
        pid: u32::try_from(pid).unwrap_or(0),
        exit_status: exit.status,
        exited_at: exit.exited_at,
    }
}

/// The init's exit: made durable, then published (or held back until `/tasks/start` is).
/// Whoever calls this has set `Order::init_exited` under the lock, so it runs once.
pub fn init_exited(ctx: &ExitCtx, pid: i32, exit: ExitInfo) {
    // Read before the runtime's delete removes the cgroup.
    let oom = ctx.oom.get().is_some_and(OomWatch::check).then(|| TaskOom { container_id: ctx.id.clone() });
    let exit = ExitInfo { oom_killed: ctx.oom.get().is_some_and(OomWatch::killed), ..exit };
    // The runtime's delete overlaps the durable write (a container that exits before its
    // start is answered is deleted early by the start instead).
    if ctx.order.lock().unwrap_or_else(|p| p.into_inner()).started
        && let Some(runner) = ctx.runner.get()
    {
        ctx.early.begin(runner.clone(), ctx.id.clone());
    }
    if let Err(e) = write_exit(&ctx.bundle, exit) {
        eprintln!("berth-shim: recording exit: {e}");
    }
    let mut o = ctx.order.lock().unwrap_or_else(|p| p.into_inner());
    if o.started {
        if let Some(oom) = oom {
            ctx.events.publish(oom);
        }
        ctx.events.publish(exit_event(ctx, &ctx.id, pid, exit));
    } else {
        if oom.is_some() {
            o.pending_oom = oom;
        }
        o.pending = Some(exit_event(ctx, &ctx.id, pid, exit));
    }
}

/// The OOM watcher was woken: publishes `/tasks/oom` if the counter rose (held back until
/// `/tasks/start` is out). Answers whether to keep watching: not once the init's exit is
/// handled (it reads the counter itself) or the cgroup is gone.
pub fn oom_seen(ctx: &ExitCtx) -> bool {
    let Some(watch) = ctx.oom.get() else { return false };
    let mut o = ctx.order.lock().unwrap_or_else(|p| p.into_inner());
    if o.init_exited {
        return false;
    }
    if watch.check() {
        let oom = TaskOom { container_id: ctx.id.clone() };
        if o.started {
            ctx.events.publish(oom);
        } else {
            o.pending_oom = Some(oom);
        }
    }
    watch.alive()
}

/// Called once the init's pid is known (stored in `ctx.init` under the order lock): a
/// container started by `run` may have exited before, when its exit looked like any
/// other child's.
pub fn init_known(ctx: &ExitCtx, reaper: &Reaper, pid: i32, since: u64) {
    let exit = {
        let mut o = ctx.order.lock().unwrap_or_else(|p| p.into_inner());
        ctx.init.store(pid, Ordering::SeqCst);
        match reaper.exited(pid, since) {
            Some(exit) if !o.init_exited => {
                o.init_exited = true;
                exit
            }
            _ => return,
        }
    };
    init_exited(ctx, pid, exit);
}

/// The reaper's hook.
pub fn hook(ctx: ExitCtx) -> OnExit {
    Box::new(move |pid: i32, exit: ExitInfo, reaper: &Reaper| {
        let is_init = |o: &mut Order| {
            let yes = pid == ctx.init.load(Ordering::SeqCst) && !o.init_exited;
            o.init_exited |= yes;
            yes
        };
        if is_init(&mut ctx.order.lock().unwrap_or_else(|p| p.into_inner())) {
            init_exited(&ctx, pid, exit);
            return false;
        }
        reaper.record(pid, exit);
        let mut o = ctx.order.lock().unwrap_or_else(|p| p.into_inner());
        // The init's pid became known meanwhile (`init_known`).
        if is_init(&mut o) {
            drop(o);
            init_exited(&ctx, pid, exit);
            return true;
        }
        if let Some(exec_id) = o.exec_pids.remove(&pid) {
            ctx.events.publish(exit_event(&ctx, &exec_id, pid, exit));
        }
        true
    })
}
