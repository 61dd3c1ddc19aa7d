//! The reaper: one thread waits for every child and orphan (the shim is a subreaper) and
//! records how each ended; everyone else waits on the record instead of on the pid, so no
//! exit is ever lost to a race between two `waitpid` callers.
//!
//! Pids are reused (32768 of them by default, and a long-lived container's shim reaps many
//! thousands of processes), so a record is looked up together with a [`Reaper::mark`] taken
//! before the process was spawned: a record older than the mark belongs to an earlier
//! process that had the same pid. Without that, an exec that drew the pid of an exec reaped
//! long before was reported exited at once, with the old exit status and none of its output
//! (the fault campaign's keepers, after some 2,000 execs each).

use berth_ipc::sync::{lock, wait, wait_timeout};
use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::Pid;

use crate::bundle::now_ns;
use berth_ipc::runtime::ExitInfo;

/// Exits by pid, shared between the reaper thread and the shim's request threads.
#[derive(Default)]
pub struct Reaper {
    exits: Mutex<Exits>,
    spawns: std::sync::atomic::AtomicU64,
    changed: Condvar,
}

/// The last exit recorded for each pid, numbered in the order they were recorded.
#[derive(Default)]
struct Exits {
    by_pid: HashMap<i32, (u64, ExitInfo)>,
    recorded: u64,
}

impl Exits {
    fn insert(&mut self, pid: i32, exit: ExitInfo) {
        self.recorded += 1;
        self.by_pid.insert(pid, (self.recorded, exit));
    }

    /// `pid`'s exit if it was recorded after `since`.
    fn since(&self, pid: i32, since: u64) -> Option<ExitInfo> {
        self.by_pid.get(&pid).filter(|(n, _)| *n > since).map(|(_, exit)| *exit)
    }
}

/// A hook called with each reaped pid (the shim records the init's exit durably); it
/// returns whether it recorded the exit in the reaper itself ([`Reaper::record`]).
pub type OnExit = Box<dyn Fn(i32, ExitInfo, &Reaper) -> bool + Send>;

impl Reaper {
    /// Starts the reaper thread.
    pub fn start(on_exit: OnExit) -> Arc<Reaper> {
        let reaper = Arc::new(Reaper::default());
        let r = reaper.clone();
        std::thread::Builder::new()
            .name("reaper".into())
            .stack_size(64 << 10)
            .spawn(move || r.run(on_exit))
            .map(|_| ())
            .unwrap_or_else(|e| eprintln!("berth-shim: reaper thread: {e}"));
        reaper
    }

    fn run(&self, on_exit: OnExit) {
        use std::sync::atomic::Ordering;
        loop {
            let spawns = self.spawns.load(Ordering::SeqCst);
            let (pid, status) = match waitpid(None::<Pid>, None) {
                Ok(WaitStatus::Exited(pid, code)) => (pid, u32::try_from(code).unwrap_or(255)),
                Ok(WaitStatus::Signaled(pid, sig, _)) => (pid, 128 + sig as u32),
                Ok(_) => continue,
                Err(Errno::ECHILD) => {
                    // Nothing to wait for: sleep until a spawn says otherwise.
                    let guard = self.lock();
                    if self.spawns.load(Ordering::SeqCst) == spawns {
                        drop(wait_timeout(&self.changed, guard, Duration::from_millis(50)));
                    }
                    continue;
                }
                Err(Errno::EINTR) => continue,
                Err(e) => {
                    eprintln!("berth-shim: waitpid: {e}");
                    std::thread::sleep(Duration::from_millis(50));
                    continue;
                }
            };
            let exit = ExitInfo { status, exited_at: now_ns(), oom_killed: false };
            self.reaped(&on_exit, pid.as_raw(), exit);
        }
    }

    /// What follows the reaping of `pid`: the hook first (the init's exit is made durable
    /// before anyone hears of it), but exec exits are recorded first so that an exec
    /// registering late still finds them; then the exit is recorded and the waiters woken.
    /// (Unit tests call it for processes their runtime double pretends to have run.)
    pub fn reaped(&self, on_exit: &OnExit, pid: i32, exit: ExitInfo) {
        let recorded = on_exit(pid, exit, self);
        let mut exits = self.lock();
        if !recorded {
            exits.insert(pid, exit);
        }
        self.changed.notify_all();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Exits> {
        lock(&self.exits)
    }

    /// Wakes the reaper after a spawn.
    pub fn spawned(&self) {
        self.spawns.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let _guard = self.lock();
        self.changed.notify_all();
    }

    /// Where the record stands now: taken before spawning a process, it tells that process's
    /// exit from an older one of the same pid.
    pub fn mark(&self) -> u64 {
        self.lock().recorded
    }

    /// Waits for `pid`'s exit recorded after `since` (consuming the record unless `keep`).
    pub fn wait(&self, pid: i32, since: u64, keep: bool) -> ExitInfo {
        let mut exits = self.lock();
        loop {
            if let Some(exit) = exits.since(pid, since) {
                if !keep {
                    exits.by_pid.remove(&pid);
                }
                return exit;
            }
            exits = wait(&self.changed, exits);
        }
    }

    /// Records `pid`'s exit before the hook's caller does (see `run`).
    pub fn record(&self, pid: i32, exit: ExitInfo) {
        self.lock().insert(pid, exit);
    }

    /// `pid`'s exit if it has happened since `since`.
    pub fn exited(&self, pid: i32, since: u64) -> Option<ExitInfo> {
        self.lock().since(pid, since)
    }
}
