//! Percentiles and rates from raw samples.

use std::time::Duration;

/// Latency percentiles of a set of samples.
#[derive(Debug, Clone, Copy)]
pub struct Percentiles {
    /// Samples taken.
    pub count: usize,
    /// Median.
    pub p50: Duration,
    /// 90th percentile.
    pub p90: Duration,
    /// 99th percentile.
    pub p99: Duration,
    /// 99.9th percentile.
    pub p999: Duration,
    /// Slowest.
    pub max: Duration,
    /// Arithmetic mean.
    pub mean: Duration,
}

impl Percentiles {
    /// Percentiles of `samples` (sorted in place). `None` when there are none.
    pub fn of(samples: &mut [Duration]) -> Option<Percentiles> {
        if samples.is_empty() {
            return None;
        }
        samples.sort_unstable();
        let at = |q: f64| {
            let idx = ((samples.len() as f64) * q).ceil() as usize;
            samples[idx.clamp(1, samples.len()) - 1]
        };
        let total: Duration = samples.iter().sum();
        Some(Percentiles {
            count: samples.len(),
            p50: at(0.50),
            p90: at(0.90),
            p99: at(0.99),
            p999: at(0.999),
            max: samples[samples.len() - 1],
            mean: total / u32::try_from(samples.len()).unwrap_or(u32::MAX),
        })
    }
}

/// Microseconds with one decimal, for printing.
pub fn us(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1e6)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_of_one_to_hundred() {
        let mut s: Vec<Duration> = (1..=100).rev().map(Duration::from_micros).collect();
        let p = Percentiles::of(&mut s).expect("samples");
        assert_eq!(
            (p.p50, p.p99, p.max),
            (Duration::from_micros(50), Duration::from_micros(99), Duration::from_micros(100))
        );
        assert_eq!(p.mean, Duration::from_micros(50) + Duration::from_nanos(500));
        assert!(Percentiles::of(&mut []).is_none());
    }
}
