//! What the shim's threads share about its processes, under one lock ([`Shared`]): the
//! init's pid and status, whether a `run` container's `Start` was answered, each exec's pid,
//! output log and terminal, the order of the task's events (start before exit, an exec's
//! exit after its start) and the OCI runtime's early `delete` of an exited container. The
//! request threads, the reaper's exit hook ([`super::exit`]) and the OOM watcher all take it,
//! so each invariant is kept by one critical section: an exec is added whole with its exit
//! registered for publishing, an exit is either published (after `/tasks/start`) or held
//! back, and a published exit of a started container has its early delete begun.
//!
//! Lock order: this lock first; the leaf locks taken inside it are the reaper's record
//! ([`super::reaper::Reaper`]), the OOM counter ([`super::oom::OomWatch`]) and the event
//! queue ([`super::events::ShimEvents`]). None of them calls out while held, and nothing
//! that waits for a child, the disk or the events service holds this lock (the wait for
//! `/tasks/start` to be stored happens outside it, [`StartEvent::Publishing`]).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use berth_ipc::events::payload::{TaskExit, TaskOom};
use berth_ipc::runtime::TaskStatus;
use berth_ipc::sync::{lock, wait_timeout_while};
use berth_ipc::{Error, Result};

use super::relay::Output;
use super::tty::Tty;

/// An exec'd process.
#[derive(Clone)]
pub struct Exec {
    /// Its pid.
    pub pid: i32,
    /// The reaper's mark taken before it was spawned.
    pub since: u64,
    /// Its output log.
    pub output: Arc<Output>,
    /// Its terminal, if it has one.
    pub tty: Option<Arc<Tty>>,
}

/// Where `/tasks/start` stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartEvent {
    /// Not published: exits are held back.
    Unpublished,
    /// Queued by one thread, which waits (without the lock) for it to be stored; exits are
    /// still held back, and a second publisher waits for it.
    Publishing,
    /// Published: exits go out as they happen.
    Published,
}

/// The OCI runtime's `delete` of an exited container, begun by its exit (or by the start
/// that had held the exit back), so that deleting the task later does not wait for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EarlyDelete {
    /// Not begun.
    NotBegun,
    /// Running on a thread of its own.
    Running,
    /// Done: whether it succeeded.
    Done(bool),
}

/// The shared state (see the module doc).
pub struct Procs {
    /// The init's pid once known (0 before).
    pub init: i32,
    /// The init's status as last set by a request (an exit the reaper saw overrides it).
    pub status: TaskStatus,
    /// A `Start` was answered (for a container started by `run`).
    start_answered: bool,
    execs: HashMap<String, Exec>,
    /// Exec ids whose process is being started (freed, not yet added).
    starting: HashSet<String>,
    /// `/tasks/start`.
    pub start: StartEvent,
    /// The init's exit, held back until `/tasks/start` is published.
    pub pending: Option<TaskExit>,
    /// Its OOM kill, published before it.
    pub pending_oom: Option<TaskOom>,
    /// Exec pids whose exit is still to be published, with their exec ids.
    pub exec_exits: HashMap<i32, String>,
    /// The init's exit has been handled (recorded, published or held back).
    init_exited: bool,
    /// The early delete.
    pub early: EarlyDelete,
}

impl Procs {
    /// The state of a shim whose init is `status`.
    pub fn new(status: TaskStatus) -> Procs {
        Procs {
            init: 0,
            status,
            start_answered: false,
            execs: HashMap::new(),
            starting: HashSet::new(),
            start: StartEvent::Unpublished,
            pending: None,
            pending_oom: None,
            exec_exits: HashMap::new(),
            init_exited: false,
            early: EarlyDelete::NotBegun,
        }
    }

    /// Marks `Start` answered; whether it was already.
    pub fn answer_start(&mut self) -> bool {
        std::mem::replace(&mut self.start_answered, true)
    }

    /// Whether `/tasks/start` is out (exits may be published).
    pub fn started(&self) -> bool {
        self.start == StartEvent::Published
    }

    /// Whether the exit of `pid` is the init's, not yet handled: the first caller to ask
    /// of the init's pid is answered `true` and handles it, every later one `false`.
    pub fn take_init_exit(&mut self, pid: i32) -> bool {
        let yes = pid == self.init && pid != 0 && !self.init_exited;
        self.init_exited |= yes;
        yes
    }

    /// Whether the init's exit has been handled.
    pub fn init_exited(&self) -> bool {
        self.init_exited
    }

    /// The exec `exec_id`, or NotFound naming it.
    pub fn exec(&self, exec_id: &str) -> Result<&Exec> {
        self.execs.get(exec_id).ok_or_else(|| Error::not_found(format!("exec {exec_id}: not found")))
    }

    /// Reserves `exec_id` for a new process: refused (AlreadyExists) while its process
    /// runs (`exited` says whether a pid, spawned after a mark, has exited) or another
    /// request is starting one under it; one that has exited is forgotten and answered, for
    /// the caller to clean up after. The reservation ends with [`Procs::add`] or
    /// [`Procs::unreserve`].
    pub fn reserve(&mut self, exec_id: &str, exited: impl Fn(i32, u64) -> bool) -> Result<Option<Exec>> {
        if self.starting.contains(exec_id) {
            return Err(Error::already_exists(format!("exec {exec_id}: being started")));
        }
        let old = match self.execs.get(exec_id) {
            Some(exec) if !exited(exec.pid, exec.since) => {
                return Err(Error::already_exists(format!("exec {exec_id}: already exists and still runs")));
            }
            Some(_) => self.execs.remove(exec_id),
            None => None,
        };
        self.starting.insert(exec_id.to_string());
        Ok(old)
    }

    /// Ends a reservation whose process did not start.
    pub fn unreserve(&mut self, exec_id: &str) {
        self.starting.remove(exec_id);
    }

    /// Records a started exec, ending its reservation; its exit is to be published unless
    /// `exited` (the caller publishes that one itself).
    pub fn add(&mut self, exec_id: &str, exec: Exec, exited: bool) {
        self.starting.remove(exec_id);
        if !exited {
            self.exec_exits.insert(exec.pid, exec_id.to_string());
        }
        self.execs.insert(exec_id.to_string(), exec);
    }
}

/// [`Procs`] under its one lock, with the condition variable of its waits (`/tasks/start`
/// being stored, the early delete running).
pub struct Shared {
    procs: Mutex<Procs>,
    changed: Condvar,
}

impl Shared {
    /// The state of a shim whose init is `status`.
    pub fn new(status: TaskStatus) -> Arc<Shared> {
        Arc::new(Shared { procs: Mutex::new(Procs::new(status)), changed: Condvar::new() })
    }

    /// The state, locked (a poisoned lock is taken over: every critical section leaves it
    /// whole before it can panic).
    pub fn lock(&self) -> MutexGuard<'_, Procs> {
        lock(&self.procs)
    }

    /// Wakes the waiters after a change of `start` or `early`.
    pub fn notify(&self) {
        self.changed.notify_all();
    }

    /// Waits while `cond` holds, at most `timeout`; answers the guard.
    pub fn wait_while<'a>(
        &self,
        guard: MutexGuard<'a, Procs>,
        timeout: Duration,
        cond: impl FnMut(&mut Procs) -> bool,
    ) -> MutexGuard<'a, Procs> {
        wait_timeout_while(&self.changed, guard, timeout, cond)
    }

    /// Whether the early delete succeeded: `false` when it never began, failed, or is still
    /// running after `timeout` (then the caller deletes itself).
    pub fn early_deleted(&self, timeout: Duration) -> bool {
        let guard = self.wait_while(self.lock(), timeout, |p| p.early == EarlyDelete::Running);
        guard.early == EarlyDelete::Done(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn output() -> Arc<Output> {
        let dir = tempfile::tempdir().expect("tempdir");
        let paths = crate::logfile::LogPaths::new(dir.path(), Some("e"));
        Output::open(paths, 1 << 20, 1).expect("output")
    }

    #[test]
    fn the_init_exit_is_handled_once_and_only_once_its_pid_is_known() {
        let mut p = Procs::new(TaskStatus::Running);
        assert!(!p.take_init_exit(0), "no init yet");
        assert!(!p.take_init_exit(42), "not the init's pid yet");
        p.init = 42;
        assert!(!p.take_init_exit(7), "another pid");
        assert!(p.take_init_exit(42));
        assert!(p.init_exited());
        assert!(!p.take_init_exit(42), "handled by the first caller only");
    }

    #[test]
    fn an_added_exec_has_its_exit_left_to_the_hook_unless_it_already_exited() {
        let mut p = Procs::new(TaskStatus::Running);
        p.reserve("e1", |_, _| true).expect("reserve");
        p.add("e1", Exec { pid: 42, since: 7, output: output(), tty: None }, false);
        assert_eq!(p.exec_exits.get(&42).map(String::as_str), Some("e1"));
        p.reserve("e2", |_, _| true).expect("reserve");
        p.add("e2", Exec { pid: 43, since: 8, output: output(), tty: None }, true);
        assert!(!p.exec_exits.contains_key(&43), "told by the adder");
    }

    #[test]
    fn an_early_delete_is_waited_for_until_done() {
        let shared = Shared::new(TaskStatus::Stopped);
        assert!(!shared.early_deleted(Duration::from_millis(1)), "never began");
        shared.lock().early = EarlyDelete::Running;
        let t0 = std::time::Instant::now();
        assert!(!shared.early_deleted(Duration::from_millis(30)), "still running");
        assert!(t0.elapsed() >= Duration::from_millis(30));
        let s2 = shared.clone();
        let done = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            s2.lock().early = EarlyDelete::Done(true);
            s2.notify();
        });
        assert!(shared.early_deleted(Duration::from_secs(5)), "woken when done");
        done.join().expect("thread");
        shared.lock().early = EarlyDelete::Done(false);
        assert!(!shared.early_deleted(Duration::from_secs(5)), "a failed delete");
    }

    #[test]
    fn start_is_answered_once() {
        let mut p = Procs::new(TaskStatus::Running);
        assert!(!p.answer_start());
        assert!(p.answer_start());
    }

    #[test]
    fn an_exec_id_is_refused_while_it_runs_and_freed_whole_once_it_exited() {
        let mut p = Procs::new(TaskStatus::Running);
        assert!(p.reserve("e1", |_, _| unreachable!("no such exec")).expect("reserve unknown").is_none());
        p.add("e1", Exec { pid: 42, since: 7, output: output(), tty: None }, false);
        assert_eq!(p.exec("e1").map(|e| (e.pid, e.since)).ok(), Some((42, 7)));
        let running = p.reserve("e1", |pid, since| {
            assert_eq!((pid, since), (42, 7));
            false
        });
        let e = running.err().expect("refused while running");
        assert!(e.to_string().contains("exec e1: already exists and still runs"), "{e}");
        assert!(p.exec("e1").is_ok(), "kept while running");
        let freed = p.reserve("e1", |_, _| true).expect("exited").expect("the old exec");
        assert_eq!(freed.pid, 42);
        let gone = p.exec("e1").err().expect("forgotten");
        assert!(gone.to_string().contains("exec e1: not found"), "{gone}");
    }

    #[test]
    fn an_exec_id_being_started_is_refused_until_added_or_unreserved() {
        let mut p = Procs::new(TaskStatus::Running);
        p.reserve("e1", |_, _| true).expect("first");
        let e = p.reserve("e1", |_, _| true).err().expect("second start of the same id refused");
        assert!(
            e.is(berth_ipc::Code::AlreadyExists) && e.to_string().contains("exec e1: being started"),
            "{e}"
        );
        p.unreserve("e1");
        p.reserve("e1", |_, _| true).expect("free again after a failed start");
        p.add("e1", Exec { pid: 5, since: 1, output: output(), tty: None }, true);
        let e = p.reserve("e1", |_, _| false).err().expect("now it runs");
        assert!(e.to_string().contains("still runs"), "{e}");
    }
}
