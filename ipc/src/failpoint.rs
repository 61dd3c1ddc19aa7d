//! Failpoints: named places in the commit paths where a test can cut the power.
//!
//! `berth_ipc::failpoint!("content.commit.after_rename")` marks a step. In a release build
//! (no `debug_assertions`) the macro expands to nothing: neither the names nor this module's
//! code are in the binary. In a debug build (what the tests run) it looks the name up in the
//! environment variable `BERTH_FAILPOINTS`, a comma list parsed once per process; `name@N`
//! fires at the N-th hit of `name` in this process instead of the first. berthd passes its
//! environment to every service, so setting the variable for berthd arms every service.
//!
//! When an armed point is reached the whole berth process tree dies at once, as in a power
//! cut: if this process's group is led by its parent (berthd started as a process-group
//! leader, as the test harness does), one `kill(-pgid, SIGKILL)` takes berthd and every
//! service together; otherwise only this process is SIGKILLed (a plain crash). Nothing gets
//! to run cleanup code: no destructor, no signal handler, no `PDEATHSIG` SIGTERM (berthd and
//! its services die in the same kernel call). Before dying, the name is appended to the file
//! named by `BERTH_FAILPOINT_LOG` when set, so a test can tell a cut from another death.
//!
//! Names are `<service>.<operation>.<step>`; `docs/power-cut.md` lists them.

/// Marks failpoint `name` (a string literal). A no-op in release builds.
#[macro_export]
macro_rules! failpoint {
    ($name:literal) => {{
        #[cfg(debug_assertions)]
        {
            $crate::failpoint::hit($name);
        }
    }};
}

#[cfg(debug_assertions)]
pub use armed::hit;

#[cfg(debug_assertions)]
mod armed {
    use std::collections::HashMap;
    use std::io::Write;
    use std::sync::{Mutex, OnceLock};

    use nix::sys::signal::{Signal, kill};
    use nix::unistd::{Pid, getpgrp, getpid, getppid};

    /// The variable listing armed failpoints.
    const VAR: &str = "BERTH_FAILPOINTS";
    /// The variable naming a file each fired failpoint's name is appended to.
    const LOG_VAR: &str = "BERTH_FAILPOINT_LOG";

    /// Armed names with the hit that fires them (1 = the first).
    fn armed() -> &'static HashMap<String, u64> {
        static ARMED: OnceLock<HashMap<String, u64>> = OnceLock::new();
        ARMED.get_or_init(|| parse(&std::env::var(VAR).unwrap_or_default()))
    }

    /// Parses `a,b@3` into `{a: 1, b: 3}`; malformed counts arm at the first hit.
    pub(super) fn parse(list: &str) -> HashMap<String, u64> {
        list.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| match s.split_once('@') {
                Some((name, n)) => (name.to_string(), n.parse().unwrap_or(1).max(1)),
                None => (s.to_string(), 1),
            })
            .collect()
    }

    /// Counts a hit of `name`; cuts the power if it is armed for this hit.
    pub fn hit(name: &str) {
        let Some(&at) = armed().get(name) else { return };
        static HITS: OnceLock<Mutex<HashMap<String, u64>>> = OnceLock::new();
        let n = {
            let mut hits = crate::sync::lock(HITS.get_or_init(Mutex::default));
            let n = hits.entry(name.to_string()).or_insert(0);
            *n += 1;
            *n
        };
        if n == at {
            cut(name);
        }
    }

    /// SIGKILLs the whole berth tree (or this process alone), never returning.
    fn cut(name: &str) -> ! {
        if let Some(path) = std::env::var_os(LOG_VAR)
            && let Ok(mut f) = std::fs::OpenOptions::new().create(true).append(true).open(path)
        {
            let _ = writeln!(f, "{name}");
        }
        let group = getpgrp();
        if group == getppid() && group.as_raw() > 1 {
            let _ = kill(Pid::from_raw(-group.as_raw()), Signal::SIGKILL);
        }
        let _ = kill(getpid(), Signal::SIGKILL);
        loop {
            std::thread::park();
        }
    }
}

#[cfg(all(test, debug_assertions))]
mod tests {
    use super::armed::parse;

    #[test]
    fn parses_names_and_counts() {
        let m = parse(" a.b.c , d.e.f@3,,g@x");
        assert_eq!(m.get("a.b.c"), Some(&1));
        assert_eq!(m.get("d.e.f"), Some(&3));
        assert_eq!(m.get("g"), Some(&1));
        assert_eq!(m.len(), 3);
    }

    #[test]
    fn unarmed_points_do_nothing() {
        crate::failpoint!("test.never.armed");
        super::hit("test.never.armed");
    }
}
