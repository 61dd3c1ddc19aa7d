//! Per-method request counters and latency histograms, kept by the server scaffold for every
//! service and returned by the common `Metrics` call.

use crate::sync::lock;
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Number of latency buckets: bucket `i` counts calls that took less than `2^i` µs; the last
/// one counts everything slower.
pub const BUCKETS: usize = 28;

/// Upper bound of bucket `i` in microseconds (`u64::MAX` for the last).
pub fn bucket_bound_us(i: usize) -> u64 {
    if i + 1 >= BUCKETS { u64::MAX } else { 1u64 << i }
}

/// A latency histogram with power-of-two buckets.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Latency {
    /// Calls counted.
    pub count: u64,
    /// Sum of their durations, µs.
    pub sum_us: u64,
    /// The slowest, µs.
    pub max_us: u64,
    /// Counts per bucket (see [`bucket_bound_us`]).
    pub buckets: Vec<u64>,
}

impl Latency {
    fn record(&mut self, d: Duration) {
        let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        if self.buckets.len() != BUCKETS {
            self.buckets = vec![0; BUCKETS];
        }
        let idx = (u64::BITS - us.leading_zeros()) as usize;
        self.buckets[idx.min(BUCKETS - 1)] += 1;
        self.count += 1;
        self.sum_us = self.sum_us.saturating_add(us);
        self.max_us = self.max_us.max(us);
    }

    /// The bucket bound below which at least `q` (0..=1) of the calls fall, µs.
    pub fn quantile_us(&self, q: f64) -> u64 {
        if self.count == 0 {
            return 0;
        }
        let want = ((self.count as f64) * q).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, n) in self.buckets.iter().enumerate() {
            seen += n;
            if seen >= want {
                return bucket_bound_us(i).min(self.max_us.max(1));
            }
        }
        self.max_us
    }
}

/// Counters of one method.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MethodMetrics {
    /// The method name (`Health`, `Info`, …).
    pub method: String,
    /// Requests answered.
    pub requests: u64,
    /// Of those, how many ended in an error.
    pub errors: u64,
    /// How long they took, from decode to the last frame queued.
    pub latency: Latency,
}

/// A service's metrics, as returned by `Metrics`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MetricsSnapshot {
    /// The service's name.
    pub service: String,
    /// Milliseconds since it started.
    pub uptime_ms: u64,
    /// Connections open now.
    pub connections_open: u64,
    /// Connections accepted since start.
    pub connections_total: u64,
    /// Connections refused (credentials, cap, bad handshake).
    pub connections_refused: u64,
    /// Frames that ended a connection because they were malformed.
    pub bad_frames: u64,
    /// Per method, sorted by name.
    pub methods: Vec<MethodMetrics>,
    /// Service-specific figures (`name`, value), e.g. the event log's length.
    pub gauges: Vec<(String, f64)>,
}

/// The live counters behind a [`MetricsSnapshot`].
#[derive(Debug, Default)]
pub struct Recorder {
    methods: Mutex<BTreeMap<&'static str, MethodMetrics>>,
    /// Connections open now.
    pub connections_open: AtomicU64,
    /// Connections accepted since start.
    pub connections_total: AtomicU64,
    /// Connections refused.
    pub connections_refused: AtomicU64,
    /// Malformed frames seen.
    pub bad_frames: AtomicU64,
}

impl Recorder {
    /// Counts one call of `method` that took `took`.
    pub fn record(&self, method: &'static str, took: Duration, failed: bool) {
        let mut map = lock(&self.methods);
        let m = map
            .entry(method)
            .or_insert_with(|| MethodMetrics { method: method.to_string(), ..Default::default() });
        m.requests += 1;
        if failed {
            m.errors += 1;
        }
        m.latency.record(took);
    }

    /// A copy of the counters.
    pub fn snapshot(&self, service: &str, uptime: Duration) -> MetricsSnapshot {
        let methods = lock(&self.methods).values().cloned().collect();
        MetricsSnapshot {
            service: service.to_string(),
            uptime_ms: u64::try_from(uptime.as_millis()).unwrap_or(u64::MAX),
            connections_open: self.connections_open.load(Ordering::Relaxed),
            connections_total: self.connections_total.load(Ordering::Relaxed),
            connections_refused: self.connections_refused.load(Ordering::Relaxed),
            bad_frames: self.bad_frames.load(Ordering::Relaxed),
            methods,
            gauges: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_from_buckets() {
        let r = Recorder::default();
        for _ in 0..99 {
            r.record("Info", Duration::from_micros(10), false);
        }
        r.record("Info", Duration::from_millis(5), true);
        let s = r.snapshot("content", Duration::ZERO);
        let m = &s.methods[0];
        assert_eq!((m.requests, m.errors), (100, 1));
        assert_eq!(m.latency.quantile_us(0.5), 16);
        assert_eq!(m.latency.quantile_us(0.99), 16);
        assert_eq!(m.latency.quantile_us(1.0), 5000);
    }
}
