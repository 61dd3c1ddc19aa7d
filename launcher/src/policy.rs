//! The restart policy, as pure logic: when to restart a service that exited, when to give
//! up on it, and when to try a given-up service again.
//!
//! The first restart is immediate; each further one within the window waits twice as long
//! as the one before (100 ms, 200 ms, …) up to the cap, unless the process that died had
//! served for [`STABLE`] or longer: a fault that strikes a working service now and then is
//! not a crash loop, and the service comes back at once.
//!
//! Only deaths of a process that never became ready count toward giving up: a process that
//! served and was then killed met an outside fault, however often that happens (a fault
//! storm kills working services every few seconds; they must not be left down for it).
//! More than `max_restarts` such failures within `window` marks the service failed. A
//! failed service is not abandoned: it is tried again every `retry_failed`, so a transient
//! cause (a full disk, a missing directory) heals without an operator.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// What to do after an exit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Start it again after this delay.
    Restart(Duration),
    /// Too many failures: mark it failed and try again after this (slow) delay.
    GiveUp(Duration),
}

/// How long a process must have been ready for its death to be restarted without back-off.
pub const STABLE: Duration = Duration::from_secs(1);

/// Restart bookkeeping of one service.
#[derive(Debug, Clone)]
pub struct Policy {
    max_restarts: u32,
    window: Duration,
    backoff_max: Duration,
    retry_failed: Duration,
    /// Recent restarts, each with whether it counts toward giving up (its process never
    /// became ready).
    recent: VecDeque<(Instant, bool)>,
}

impl Policy {
    /// A policy allowing `max_restarts` failures within `window`, back-off capped at
    /// `backoff_max`, a failed service retried every `retry_failed`.
    pub fn new(max_restarts: u32, window: Duration, backoff_max: Duration, retry_failed: Duration) -> Self {
        Policy { max_restarts, window, backoff_max, retry_failed, recent: VecDeque::new() }
    }

    /// Decides what follows an unrequested exit at `now` of a process that had been ready
    /// for `served` (`None`: it never became ready).
    pub fn on_exit(&mut self, now: Instant, served: Option<Duration>) -> Decision {
        while self.recent.front().is_some_and(|(t, _)| now.duration_since(*t) > self.window) {
            self.recent.pop_front();
        }
        let failures = self.recent.iter().filter(|(_, counts)| *counts).count();
        if served.is_none() && failures >= self.max_restarts as usize {
            return Decision::GiveUp(self.retry_failed.max(Duration::from_millis(100)));
        }
        let n = self.recent.len() as u32;
        self.recent.push_back((now, served.is_none()));
        if n == 0 || served.is_some_and(|s| s >= STABLE) {
            return Decision::Restart(Duration::ZERO);
        }
        let delay = Duration::from_millis(100).saturating_mul(1u32 << (n - 1).min(20));
        Decision::Restart(delay.min(self.backoff_max))
    }

    /// Forgets past restarts (after a restart or start by hand, or a failed service's
    /// retry that became ready).
    pub fn reset(&mut self) {
        self.recent.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RETRY: Duration = Duration::from_secs(30);

    fn policy(max: u32, window_s: u64) -> Policy {
        Policy::new(max, Duration::from_secs(window_s), Duration::from_secs(30), RETRY)
    }

    #[test]
    fn immediate_then_doubling_then_give_up() {
        let mut p = policy(5, 10);
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
                Decision::GiveUp(RETRY),
            ]
        );
        // A failed retry stays failed and is retried on the slow schedule again.
        assert_eq!(p.on_exit(t + RETRY.mul_f32(0.1), None), Decision::GiveUp(RETRY));
    }

    #[test]
    fn window_forgets_old_restarts_and_cap_holds() {
        let mut p = policy(100, 1000);
        let t = Instant::now();
        let last = (0..20).map(|_| p.on_exit(t, None)).last();
        assert_eq!(last, Some(Decision::Restart(Duration::from_secs(30))));

        let mut p = policy(2, 10);
        assert_eq!(p.on_exit(t, None), Decision::Restart(Duration::ZERO));
        assert_eq!(p.on_exit(t, None), Decision::Restart(Duration::from_millis(100)));
        assert_eq!(p.on_exit(t, None), Decision::GiveUp(RETRY));
        let later = t + Duration::from_secs(11);
        assert_eq!(p.on_exit(later, None), Decision::Restart(Duration::ZERO));
    }

    #[test]
    fn a_service_that_served_comes_back_at_once() {
        let mut p = policy(3, 10);
        let t = Instant::now();
        let served = Some(STABLE);
        assert_eq!(p.on_exit(t, served), Decision::Restart(Duration::ZERO));
        assert_eq!(p.on_exit(t, served), Decision::Restart(Duration::ZERO));
        // A quick death after those two waits as the third restart in the window would.
        assert_eq!(p.on_exit(t, Some(STABLE / 2)), Decision::Restart(Duration::from_millis(200)));
    }

    #[test]
    fn deaths_after_serving_never_count_toward_failed() {
        // The storm: a kill every few seconds, some soon after the replacement became ready.
        let mut p = policy(5, 10);
        let t = Instant::now();
        for i in 0..200u64 {
            let served = if i % 3 == 0 { STABLE / 10 } else { STABLE * 3 };
            let d = p.on_exit(t + Duration::from_millis(i * 200), Some(served));
            assert!(matches!(d, Decision::Restart(_)), "kill {i}: {d:?}");
        }
        // Those deaths still make quick ones back off, but only failures to start count:
        // five may fail, the sixth gives up.
        for i in 0..5u64 {
            let d = p.on_exit(t + Duration::from_secs(40) + Duration::from_millis(i), None);
            assert!(matches!(d, Decision::Restart(_)), "failure {i}: {d:?}");
        }
        assert_eq!(p.on_exit(t + Duration::from_secs(41), None), Decision::GiveUp(RETRY));
        // And a death after serving, even then, is restarted.
        assert!(matches!(p.on_exit(t + Duration::from_secs(41), Some(STABLE)), Decision::Restart(_)));
    }

    #[test]
    fn a_retry_that_serves_starts_afresh() {
        let mut p = policy(1, 100);
        let t = Instant::now();
        assert_eq!(p.on_exit(t, None), Decision::Restart(Duration::ZERO));
        assert_eq!(p.on_exit(t, None), Decision::GiveUp(RETRY));
        p.reset(); // the retry became ready
        assert_eq!(p.on_exit(t + RETRY, None), Decision::Restart(Duration::ZERO));
    }
}
