//! The idempotency window: which (publisher, counter) keys the newest events carry, so a
//! retried publish answers with the seq already assigned instead of storing the event again.
//!
//! It lives in memory and is rebuilt from the newest `window` events of the log at start;
//! the keys are stored in the log records themselves, atomically with the events, so the
//! window survives crashes exactly.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

/// The window of remembered keys.
#[derive(Debug, Default)]
pub struct Dedup {
    window: usize,
    by_publisher: HashMap<Arc<str>, HashMap<u64, u64>>,
    order: VecDeque<(Arc<str>, u64)>,
}

impl Dedup {
    /// An empty window remembering the newest `window` keys.
    pub fn new(window: usize) -> Dedup {
        Dedup { window: window.max(1), ..Dedup::default() }
    }

    /// The seq stored for this key, if remembered.
    pub fn get(&self, publisher: &str, counter: u64) -> Option<u64> {
        self.by_publisher.get(publisher)?.get(&counter).copied()
    }

    /// The shared name of `publisher` (one allocation per publisher, not per event).
    pub fn intern(&self, publisher: &str) -> Arc<str> {
        match self.by_publisher.get_key_value(publisher) {
            Some((k, _)) => k.clone(),
            None => Arc::from(publisher),
        }
    }

    /// Remembers a stored key, forgetting the oldest beyond the window.
    pub fn insert(&mut self, publisher: Arc<str>, counter: u64, seq: u64) {
        self.by_publisher.entry(publisher.clone()).or_default().insert(counter, seq);
        self.order.push_back((publisher, counter));
        while self.order.len() > self.window {
            let Some((p, c)) = self.order.pop_front() else { break };
            if let Some(m) = self.by_publisher.get_mut(&p) {
                m.remove(&c);
                if m.is_empty() {
                    self.by_publisher.remove(&p);
                }
            }
        }
    }

    /// Keys remembered.
    pub fn len(&self) -> usize {
        self.order.len()
    }

    /// Whether no key is remembered.
    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_and_forgets_oldest() {
        let mut d = Dedup::new(2);
        let a = d.intern("a");
        d.insert(a.clone(), 1, 10);
        d.insert(a.clone(), 2, 11);
        assert_eq!(d.get("a", 1), Some(10));
        d.insert(d.intern("b"), 1, 12);
        assert_eq!(d.get("a", 1), None, "oldest forgotten");
        assert_eq!(d.get("a", 2), Some(11));
        assert_eq!(d.get("b", 1), Some(12));
        assert_eq!(d.len(), 2);
        assert!(Arc::ptr_eq(&d.intern("a"), &a), "interned");
    }
}
