//! What the shim does when a process it reaped has exited, and the order of the task's
//! events: the init's exit is recorded durably in the bundle before anyone hears of it,
//! `/tasks/start` goes out before `/tasks/exit` (an exit reaped first is held back) and an
//! exec's exit after its `/tasks/exec-started`, and the OCI runtime's `delete` of a started
//! container whose init has exited runs at once, off the reaper thread, so that deleting the
//! task later does not wait for it. Everything here is state of [`Shared`], under its one
//! lock.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use berth_ipc::events::payload::{TaskExit, TaskOom, TaskStart};
use berth_ipc::runtime::ExitInfo;

use super::events::ShimEvents;
use super::oom::OomWatch;
use super::process::RuntimeCalls;
use super::reaper::{OnExit, Reaper};
use super::state::{EarlyDelete, Procs, Shared, StartEvent};
use crate::bundle::{Bundle, write_exit};

/// How long `/tasks/start` may take to be stored before `Start` is answered anyway (an
/// events service restarting right now delays it at most this).
const START_STORED: Duration = Duration::from_millis(500);

/// What the exit hook works with.
#[derive(Clone)]
pub struct ExitCtx {
    /// The container id.
    pub id: String,
    /// The bundle (for `exit.json`).
    pub bundle: Bundle,
    /// The shim's state.
    pub shared: Arc<Shared>,
    /// Events.
    pub events: Arc<ShimEvents>,
    /// The OCI runtime, once the reaper exists.
    pub runtime: Arc<OnceLock<Arc<dyn RuntimeCalls>>>,
    /// The container's OOM counter, once its cgroup exists.
    pub oom: Arc<OnceLock<OomWatch>>,
}

/// The `/tasks/exit` of process `process` (the container id for the init, else an exec id).
pub fn exit_event(ctx: &ExitCtx, process: &str, pid: i32, exit: ExitInfo) -> TaskExit {
    TaskExit {
        container_id: ctx.id.clone(),
        id: process.to_string(),
        pid: u32::try_from(pid).unwrap_or(0),
        exit_status: exit.status,
        exited_at: exit.exited_at,
    }
}

/// Begins the runtime's `delete` of the exited container, then the unmount of its rootfs,
/// on a thread of its own, unless it began already (or there is no runtime yet).
fn begin_delete(ctx: &ExitCtx, p: &mut Procs) {
    let Some(runtime) = ctx.runtime.get() else { return };
    if p.early != EarlyDelete::NotBegun {
        return;
    }
    p.early = EarlyDelete::Running;
    let (shared, runtime, id, rootfs) =
        (ctx.shared.clone(), runtime.clone(), ctx.id.clone(), ctx.bundle.rootfs());
    let spawned = std::thread::Builder::new().name("delete".into()).stack_size(128 << 10).spawn(move || {
        super::sys::background_priority();
        let ok = runtime.call(&["delete", &id]).is_ok();
        // Nothing runs on the rootfs any more: it is unmounted now (the unmount syncs the
        // upper layer's file system, which the task's delete then need not wait for). The
        // delete unmounts it all the same, so a shim that dies first loses nothing.
        if ok {
            let _ = crate::mount::unmount_all(&rootfs);
        }
        shared.lock().early = EarlyDelete::Done(ok);
        shared.notify();
    });
    if spawned.is_err() {
        p.early = EarlyDelete::NotBegun;
    }
}

/// The init's exit: made durable, then published (or held back until `/tasks/start` is).
/// Whoever calls this was answered `true` by [`Procs::take_init_exit`], so it runs once.
pub fn init_exited(ctx: &ExitCtx, pid: i32, exit: ExitInfo) {
    // Read before the runtime's delete removes the cgroup.
    let oom = ctx.oom.get().is_some_and(OomWatch::check).then(|| TaskOom { container_id: ctx.id.clone() });
    let exit = ExitInfo { oom_killed: ctx.oom.get().is_some_and(OomWatch::killed), ..exit };
    // The runtime's delete overlaps the durable write (a container that exits before its
    // start is published is deleted early by the start instead).
    {
        let mut p = ctx.shared.lock();
        if p.started() {
            begin_delete(ctx, &mut p);
        }
    }
    if let Err(e) = write_exit(&ctx.bundle, exit) {
        eprintln!("berth-shim: recording exit: {e}");
    }
    let event = exit_event(ctx, &ctx.id, pid, exit);
    let mut p = ctx.shared.lock();
    if p.started() {
        if let Some(oom) = oom {
            ctx.events.publish(oom);
        }
        ctx.events.publish(event);
        // The start may have been published while the exit was being recorded.
        begin_delete(ctx, &mut p);
    } else {
        if oom.is_some() {
            p.pending_oom = oom;
        }
        p.pending = Some(event);
    }
}

/// Publishes `/tasks/start` once, stored (at most [`START_STORED`]) before this answers,
/// then what was held back behind it; a second caller waits for the first. The wait for
/// the events service is made without the lock, the start marked
/// [`StartEvent::Publishing`] meanwhile (exits are still held back).
pub fn publish_start(ctx: &ExitCtx, pid: u32) {
    let mut p = ctx.shared.lock();
    match p.start {
        StartEvent::Published => return,
        StartEvent::Publishing => {
            drop(ctx.shared.wait_while(p, 2 * START_STORED, |p| p.start == StartEvent::Publishing));
            return;
        }
        StartEvent::Unpublished => {}
    }
    p.start = StartEvent::Publishing;
    let stored = ctx.events.publish_stored(TaskStart { container_id: ctx.id.clone(), pid });
    drop(p);
    stored.wait(START_STORED);
    let mut p = ctx.shared.lock();
    p.start = StartEvent::Published;
    if let Some(oom) = p.pending_oom.take() {
        ctx.events.publish(oom);
    }
    if let Some(exit) = p.pending.take() {
        ctx.events.publish(exit);
        begin_delete(ctx, &mut p);
    }
    drop(p);
    ctx.shared.notify();
}

/// The OOM watcher was woken: publishes `/tasks/oom` if the counter rose (held back until
/// `/tasks/start` is out). Answers whether to keep watching: not once the init's exit is
/// handled (it reads the counter itself) or the cgroup is gone.
pub fn oom_seen(ctx: &ExitCtx) -> bool {
    let Some(watch) = ctx.oom.get() else { return false };
    let mut p = ctx.shared.lock();
    if p.init_exited() {
        return false;
    }
    if watch.check() {
        let oom = TaskOom { container_id: ctx.id.clone() };
        if p.started() {
            ctx.events.publish(oom);
        } else {
            p.pending_oom = Some(oom);
        }
    }
    drop(p);
    watch.alive()
}

/// Called once the init's pid is known: stores it, and handles its exit if it came first
/// (a container started by `run` may have exited before, when its exit looked like any
/// other child's).
pub fn init_known(ctx: &ExitCtx, reaper: &Reaper, pid: i32, since: u64) {
    let exit = {
        let mut p = ctx.shared.lock();
        p.init = pid;
        match reaper.exited(pid, since) {
            Some(exit) if p.take_init_exit(pid) => exit,
            _ => return,
        }
    };
    init_exited(ctx, pid, exit);
}

/// The reaper's hook.
pub fn hook(ctx: ExitCtx) -> OnExit {
    Box::new(move |pid: i32, exit: ExitInfo, reaper: &Reaper| {
        if ctx.shared.lock().take_init_exit(pid) {
            init_exited(&ctx, pid, exit);
            return false;
        }
        reaper.record(pid, exit);
        let mut p = ctx.shared.lock();
        // The init's pid became known meanwhile (`init_known`).
        if p.take_init_exit(pid) {
            drop(p);
            init_exited(&ctx, pid, exit);
            return true;
        }
        if let Some(exec_id) = p.exec_exits.remove(&pid) {
            ctx.events.publish(exit_event(&ctx, &exec_id, pid, exit));
        }
        true
    })
}
