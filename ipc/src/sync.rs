//! Poison-free locks (mutex, read-write lock, condition variable), for every berth crate.
//!
//! A thread that panics while holding a `std::sync::Mutex` or `RwLock` poisons it. berth's
//! locked state is kept consistent by each critical section before it can panic (or is a
//! cache that may be rebuilt), so the next holder takes the data as it is rather than
//! panicking too.

use std::sync::{Condvar, Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

/// Locks `m`, taking the data of a poisoned mutex as it is.
pub fn lock<T: ?Sized>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Takes `l` for reading, taking the data of a poisoned lock as it is.
pub fn read<T: ?Sized>(l: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(PoisonError::into_inner)
}

/// Takes `l` for writing, taking the data of a poisoned lock as it is.
pub fn write<T: ?Sized>(l: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(PoisonError::into_inner)
}

/// Waits once on `cv` (wakeups may be spurious: the caller loops on its condition), taking
/// a poisoned mutex's data as it is.
pub fn wait<'a, T>(cv: &Condvar, guard: MutexGuard<'a, T>) -> MutexGuard<'a, T> {
    cv.wait(guard).unwrap_or_else(PoisonError::into_inner)
}

/// Waits once on `cv`, at most `timeout` (early and spurious wakeups too: the caller looks
/// at its condition), taking a poisoned mutex's data as it is.
pub fn wait_timeout<'a, T>(cv: &Condvar, guard: MutexGuard<'a, T>, timeout: Duration) -> MutexGuard<'a, T> {
    match cv.wait_timeout(guard, timeout) {
        Ok((guard, _)) => guard,
        Err(p) => p.into_inner().0,
    }
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

    #[test]
    fn a_poisoned_rwlock_still_reads_and_writes_with_its_data() {
        let l = std::sync::Arc::new(RwLock::new(1));
        let l2 = l.clone();
        let panicked = std::thread::spawn(move || {
            let mut g = l2.write().expect("first write");
            *g = 2;
            panic!("poison it");
        })
        .join();
        assert!(panicked.is_err());
        assert!(l.is_poisoned());
        *write(&l) += 1;
        assert_eq!(*read(&l), 3);
    }

    #[test]
    fn wait_returns_the_guard_once_notified() {
        let pair = std::sync::Arc::new((Mutex::new(false), Condvar::new()));
        let pair2 = pair.clone();
        let setter = std::thread::spawn(move || {
            *lock(&pair2.0) = true;
            pair2.1.notify_all();
        });
        let mut g = lock(&pair.0);
        while !*g {
            g = wait(&pair.1, g);
        }
        assert!(*g);
        drop(g);
        setter.join().expect("setter");
    }
}
