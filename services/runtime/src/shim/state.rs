//! What the shim's request threads share about its processes, under one lock: the init's
//! status, whether a `run` container's `Start` was answered, and each exec's pid, output log
//! and terminal. Each exec is one entry, added whole once its pid is known and removed whole
//! when its id is reused, so no reader sees an exec with a log but no pid (separate locks
//! allowed that). Event order and the early delete stay with the exit hook ([`super::exit`]).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use berth_ipc::runtime::TaskStatus;
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

/// The shared state (see the module doc).
pub struct Procs {
    /// The init's status as last set by a request (an exit the reaper saw overrides it).
    pub status: TaskStatus,
    /// A `Start` was answered (for a container started by `run`).
    start_answered: bool,
    execs: HashMap<String, Exec>,
    /// Exec ids whose process is being started (freed, not yet added).
    starting: HashSet<String>,
}

impl Procs {
    /// The state of a shim whose init is `status`.
    pub fn new(status: TaskStatus) -> Procs {
        Procs { status, start_answered: false, execs: HashMap::new(), starting: HashSet::new() }
    }

    /// Marks `Start` answered; whether it was already.
    pub fn answer_start(&mut self) -> bool {
        std::mem::replace(&mut self.start_answered, true)
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

    /// Records a started exec, ending its reservation.
    pub fn add(&mut self, exec_id: &str, exec: Exec) {
        self.starting.remove(exec_id);
        self.execs.insert(exec_id.to_string(), exec);
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
    fn start_is_answered_once() {
        let mut p = Procs::new(TaskStatus::Running);
        assert!(!p.answer_start());
        assert!(p.answer_start());
    }

    #[test]
    fn an_exec_id_is_refused_while_it_runs_and_freed_whole_once_it_exited() {
        let mut p = Procs::new(TaskStatus::Running);
        assert!(p.reserve("e1", |_, _| unreachable!("no such exec")).expect("reserve unknown").is_none());
        p.add("e1", Exec { pid: 42, since: 7, output: output(), tty: None });
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
        p.add("e1", Exec { pid: 5, since: 1, output: output(), tty: None });
        let e = p.reserve("e1", |_, _| false).err().expect("now it runs");
        assert!(e.to_string().contains("still runs"), "{e}");
    }
}
