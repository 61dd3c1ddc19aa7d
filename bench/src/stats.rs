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

/// CPU time (user + system) a process has used so far, from `/proc/<pid>/stat` (`None` for
/// this process). Resolution is the kernel's USER_HZ, 10 ms.
pub fn cpu_time(pid: Option<u32>) -> Option<Duration> {
    let path = match pid {
        Some(p) => format!("/proc/{p}/stat"),
        None => "/proc/self/stat".to_string(),
    };
    let stat = std::fs::read_to_string(path).ok()?;
    // Fields after the command name (which may hold spaces) start at its closing paren.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(Duration::from_millis((utime + stime) * 10))
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

    #[test]
    fn cpu_time_of_self_grows() {
        let before = cpu_time(None).expect("own stat");
        let started = std::time::Instant::now();
        let mut x = 0u64;
        while started.elapsed() < Duration::from_millis(100) {
            x = x.wrapping_mul(31).wrapping_add(1);
        }
        assert!(x != 1);
        assert!(cpu_time(None).expect("own stat") > before);
        assert!(cpu_time(Some(u32::MAX)).is_none());
    }
}
