//! The restart policy, as pure logic: when to restart a service that exited, and when to
//! give up on it.
//!
//! The first restart is immediate; each further one within the window waits twice as long
//! as the one before (100 ms, 200 ms, …) up to the cap, unless the process that died had
//! served for [`STABLE`] or longer: a fault that strikes a working service now and then is
//! not a crash loop, and the service comes back at once. More than `max_restarts` restarts
//! within `window` marks the service failed, whatever their delays. A service that stayed up
//! for a whole window starts afresh.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// What to do after an exit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Start it again after this delay.
    Restart(Duration),
    /// Too many restarts: leave it down.
    GiveUp,
}

/// How long a process must have been ready for its death to be restarted without back-off.
pub const STABLE: Duration = Duration::from_secs(1);

/// Restart bookkeeping of one service.
#[derive(Debug, Clone)]
pub struct Policy {
    max_restarts: u32,
    window: Duration,
    backoff_max: Duration,
    recent: VecDeque<Instant>,
}

impl Policy {
    /// A policy allowing `max_restarts` within `window`, back-off capped at `backoff_max`.
    pub fn new(max_restarts: u32, window: Duration, backoff_max: Duration) -> Self {
        Policy { max_restarts, window, backoff_max, recent: VecDeque::new() }
    }

    /// Decides what follows an unrequested exit at `now` of a process that had been ready
    /// for `served` (`None`: it never became ready).
    pub fn on_exit(&mut self, now: Instant, served: Option<Duration>) -> Decision {
        while self.recent.front().is_some_and(|t| now.duration_since(*t) > self.window) {
            self.recent.pop_front();
        }
        if self.recent.len() >= self.max_restarts as usize {
            return Decision::GiveUp;
        }
        let n = self.recent.len() as u32;
        self.recent.push_back(now);
        if n == 0 || served.is_some_and(|s| s >= STABLE) {
            return Decision::Restart(Duration::ZERO);
        }
        let delay = Duration::from_millis(100).saturating_mul(1u32 << (n - 1).min(20));
        Decision::Restart(delay.min(self.backoff_max))
    }

    /// Forgets past restarts (after a restart or start by hand).
    pub fn reset(&mut self) {
        self.recent.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn immediate_then_doubling_then_give_up() {
        let mut p = Policy::new(5, Duration::from_secs(10), Duration::from_secs(30));
        let t = Instant::now();
        let got: Vec<_> = (0..6).map(|i| p.on_exit(t + Duration::from_millis(i * 10), None)).collect();
        assert_eq!(
            got,
            vec![
                Decision::Restart(Duration::ZERO),
                Decision::Restart(Duration::from_millis(100)),
                Decision::Restart(Duration::from_millis(200)),
                Decision::Restart(Duration::from_millis(400)),
                Decision::Restart(Duration::from_millis(800)),
                Decision::GiveUp,
            ]
        );
    }

    #[test]
    fn window_forgets_old_restarts_and_cap_holds() {
        let mut p = Policy::new(100, Duration::from_secs(1000), Duration::from_secs(30));
        let t = Instant::now();
        let last = (0..20).map(|_| p.on_exit(t, None)).last();
        assert_eq!(last, Some(Decision::Restart(Duration::from_secs(30))));

        let mut p = Policy::new(2, Duration::from_secs(10), Duration::from_secs(30));
        assert_eq!(p.on_exit(t, Some(Duration::from_millis(10))), Decision::Restart(Duration::ZERO));
        assert_eq!(
            p.on_exit(t, Some(Duration::from_millis(10))),
            Decision::Restart(Duration::from_millis(100))
        );
        assert_eq!(p.on_exit(t, Some(Duration::from_millis(10))), Decision::GiveUp);
        let later = t + Duration::from_secs(11);
        assert_eq!(p.on_exit(later, None), Decision::Restart(Duration::ZERO));
    }

    #[test]
    fn a_service_that_served_comes_back_at_once_but_still_counts() {
        let mut p = Policy::new(3, Duration::from_secs(10), Duration::from_secs(30));
        let t = Instant::now();
        let served = Some(STABLE);
        assert_eq!(p.on_exit(t, served), Decision::Restart(Duration::ZERO));
        assert_eq!(p.on_exit(t, served), Decision::Restart(Duration::ZERO));
        // A quick death after those two waits as the third restart in the window would.
        assert_eq!(p.on_exit(t, Some(STABLE / 2)), Decision::Restart(Duration::from_millis(200)));
        assert_eq!(p.on_exit(t, served), Decision::GiveUp);
    }
}
