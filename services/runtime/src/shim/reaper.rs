//! The reaper: one thread waits for every child and orphan (the shim is a subreaper) and
//! records how each ended; everyone else waits on the record instead of on the pid, so no
//! exit is ever lost to a race between two `waitpid` callers.

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
    exits: Mutex<HashMap<i32, ExitInfo>>,
    spawns: std::sync::atomic::AtomicU64,
    changed: Condvar,
}

/// A hook called with each reaped pid (the shim records the init's exit durably).
pub type OnExit = Box<dyn Fn(i32, ExitInfo, &Reaper) + Send>;

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
                    let guard = self.exits.lock().unwrap_or_else(|p| p.into_inner());
                    if self.spawns.load(Ordering::SeqCst) == spawns {
                        let _ = self.changed.wait_timeout(guard, Duration::from_millis(50));
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
            let exit = ExitInfo { status, exited_at: now_ns() };
            // The hook first (the init's exit is made durable before anyone hears of it), but
            // exec exits are recorded first so that an exec registering late still finds them.
            on_exit(pid.as_raw(), exit, self);
            let mut exits = self.exits.lock().unwrap_or_else(|p| p.into_inner());
            exits.insert(pid.as_raw(), exit);
            self.changed.notify_all();
        }
    }

    /// Wakes the reaper after a spawn.
    pub fn spawned(&self) {
        self.spawns.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let _guard = self.exits.lock().unwrap_or_else(|p| p.into_inner());
        self.changed.notify_all();
    }

    /// Waits for `pid`'s exit (consuming the record unless `keep`).
    pub fn wait(&self, pid: i32, keep: bool) -> ExitInfo {
        let mut exits = self.exits.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if let Some(exit) = if keep { exits.get(&pid).copied() } else { exits.remove(&pid) } {
                return exit;
            }
            exits = self.changed.wait(exits).unwrap_or_else(|p| p.into_inner());
        }
    }

    /// Records `pid`'s exit before the hook's caller does (see `run`).
    pub fn record(&self, pid: i32, exit: ExitInfo) {
        self.exits.lock().unwrap_or_else(|p| p.into_inner()).insert(pid, exit);
    }

    /// `pid`'s exit if it has happened.
    pub fn exited(&self, pid: i32) -> Option<ExitInfo> {
        self.exits.lock().unwrap_or_else(|p| p.into_inner()).get(&pid).copied()
    }
}
