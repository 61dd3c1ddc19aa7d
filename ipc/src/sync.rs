//! A poison-free mutex lock, for every berth crate.
//!
//! A thread that panics while holding a `std::sync::Mutex` poisons it. berth's locked state
//! is kept consistent by each critical section before it can panic (or is a cache that may
//! be rebuilt), so the next holder takes the data as it is rather than panicking too.

use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::Duration;

/// Locks `m`, taking the data of a poisoned mutex as it is.
pub fn lock<T: ?Sized>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Waits on `cv` while `cond` holds, at most `timeout`, taking a poisoned mutex's data as
/// it is; answers the guard (whether `cond` still holds is for the caller to look at).
pub fn wait_timeout_while<'a, T>(
    cv: &Condvar,
    guard: MutexGuard<'a, T>,
    timeout: Duration,
    cond: impl FnMut(&mut T) -> bool,
) -> MutexGuard<'a, T> {
    match cv.wait_timeout_while(guard, timeout, cond) {
        Ok((guard, _)) => guard,
        Err(p) => p.into_inner().0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_poisoned_mutex_still_locks_with_its_data() {
        let m = std::sync::Arc::new(Mutex::new(1));
        let m2 = m.clone();
        let panicked = std::thread::spawn(move || {
            let mut g = m2.lock().expect("first lock");
            *g = 2;
            panic!("poison it");
        })
        .join();
        assert!(panicked.is_err());
        assert!(m.is_poisoned());
        *lock(&m) += 1;
        assert_eq!(*lock(&m), 3);
    }
}
