//! Prometheus text exposition format (version 0.0.4): samples grouped by metric family, each
//! family once with its `# HELP` and `# TYPE` lines, label values escaped.

use berth_ipc::metrics::{BUCKETS, Latency};

/// A family's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Only goes up (resets when its process restarts).
    Counter,
    /// Goes up and down.
    Gauge,
    /// Cumulative `le` buckets, `_sum` and `_count`.
    Histogram,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

struct Family {
    name: &'static str,
    help: &'static str,
    kind: Kind,
    lines: String,
}

/// The text being built.
#[derive(Default)]
pub struct Exposition {
    families: Vec<Family>,
}

/// Latency histogram bounds, as indices into [`Latency::buckets`]: every other power of two
/// of microseconds (1 µs, 4 µs, 16 µs, … 67 s). Each is a bucket boundary of the services'
/// own histograms, so the cumulative counts are exact.
const LE_BUCKETS: [usize; 14] = [0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26];

impl Exposition {
    fn family(&mut self, name: &'static str, help: &'static str, kind: Kind) -> &mut String {
        let idx = match self.families.iter().position(|f| f.name == name) {
            Some(i) => i,
            None => {
                self.families.push(Family { name, help, kind, lines: String::new() });
                self.families.len() - 1
            }
        };
        &mut self.families[idx].lines
    }

    /// Adds one sample of a counter or gauge.
    pub fn sample(
        &mut self,
        name: &'static str,
        help: &'static str,
        kind: Kind,
        labels: &[(&str, &str)],
        value: f64,
    ) {
        let line = format!("{name}{} {}\n", label_set(labels, None), number(value));
        self.family(name, help, kind).push_str(&line);
    }

    /// Adds one histogram (`name_bucket`, `name_sum`, `name_count`) from a service's
    /// latency counts, in seconds.
    pub fn histogram(
        &mut self,
        name: &'static str,
        help: &'static str,
        labels: &[(&str, &str)],
        l: &Latency,
    ) {
        let mut text = String::new();
        let mut seen = 0u64;
        let mut next = 0;
        for &bound in &LE_BUCKETS {
            while next <= bound {
                seen += l.buckets.get(next).copied().unwrap_or(0);
                next += 1;
            }
            let le = number(berth_ipc::metrics::bucket_bound_us(bound) as f64 / 1e6);
            text.push_str(&format!("{name}_bucket{} {seen}\n", label_set(labels, Some(&le))));
        }
        debug_assert!(next < BUCKETS);
        text.push_str(&format!("{name}_bucket{} {}\n", label_set(labels, Some("+Inf")), l.count));
        text.push_str(&format!("{name}_sum{} {}\n", label_set(labels, None), number(l.sum_us as f64 / 1e6)));
        text.push_str(&format!("{name}_count{} {}\n", label_set(labels, None), l.count));
        self.family(name, help, Kind::Histogram).push_str(&text);
    }

    /// The finished text.
    pub fn finish(self) -> String {
        let mut out = String::new();
        for f in self.families {
            out.push_str(&format!("# HELP {} {}\n# TYPE {} {}\n", f.name, f.help, f.name, f.kind.as_str()));
            out.push_str(&f.lines);
        }
        out
    }
}

/// `{a="x",b="y"}` (empty when there are no labels), with `le` last if given.
fn label_set(labels: &[(&str, &str)], le: Option<&str>) -> String {
    let mut parts: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{}\"", escape(v))).collect();
    if let Some(le) = le {
        parts.push(format!("le=\"{le}\""));
    }
    if parts.is_empty() { String::new() } else { format!("{{{}}}", parts.join(",")) }
}

/// A label value with `\`, `"` and newlines escaped.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// A sample value: integers without a fraction, `NaN`, `+Inf`, `-Inf`.
pub fn number(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf".into() } else { "-Inf".into() }
    } else if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_are_grouped_and_labels_escaped() {
        let mut e = Exposition::default();
        e.sample("berth_a_total", "A.", Kind::Counter, &[("service", "x")], 1.0);
        e.sample("berth_b", "B.", Kind::Gauge, &[], 0.5);
        e.sample("berth_a_total", "A.", Kind::Counter, &[("service", "q\"\\\n")], 2.0);
        assert_eq!(
            e.finish(),
            "# HELP berth_a_total A.\n# TYPE berth_a_total counter\nberth_a_total{service=\"x\"} 1\n\
             berth_a_total{service=\"q\\\"\\\\\\n\"} 2\n# HELP berth_b B.\n# TYPE berth_b gauge\nberth_b 0.5\n"
        );
    }

    #[test]
    fn histogram_buckets_are_cumulative_in_seconds() {
        let mut l = Latency { count: 4, sum_us: 1_000_010, max_us: 1_000_000, buckets: vec![0; BUCKETS] };
        l.buckets[0] = 1; // 0 µs
        l.buckets[3] = 2; // 4..8 µs
        l.buckets[20] = 1; // ~1 s
        let mut e = Exposition::default();
        e.histogram("berth_h_seconds", "H.", &[("m", "Info")], &l);
        let text = e.finish();
        assert!(text.contains("# TYPE berth_h_seconds histogram\n"), "{text}");
        assert!(text.contains("berth_h_seconds_bucket{m=\"Info\",le=\"0.000001\"} 1\n"), "{text}");
        assert!(text.contains("berth_h_seconds_bucket{m=\"Info\",le=\"0.000004\"} 1\n"), "{text}");
        assert!(text.contains("berth_h_seconds_bucket{m=\"Info\",le=\"0.000016\"} 3\n"), "{text}");
        assert!(text.contains("berth_h_seconds_bucket{m=\"Info\",le=\"0.262144\"} 3\n"), "{text}");
        assert!(text.contains("berth_h_seconds_bucket{m=\"Info\",le=\"1.048576\"} 4\n"), "{text}");
        assert!(text.contains("berth_h_seconds_bucket{m=\"Info\",le=\"+Inf\"} 4\n"), "{text}");
        assert!(text.contains("berth_h_seconds_sum{m=\"Info\"} 1.00001\n"), "{text}");
        assert!(text.contains("berth_h_seconds_count{m=\"Info\"} 4\n"), "{text}");
        assert_eq!(text.matches("_bucket{").count(), LE_BUCKETS.len() + 1);
    }

    #[test]
    fn numbers() {
        assert_eq!(number(3.0), "3");
        assert_eq!(number(0.25), "0.25");
        assert_eq!(number(1e-6), "0.000001");
        assert_eq!(number(f64::NAN), "NaN");
        assert_eq!(number(f64::INFINITY), "+Inf");
    }
}
