//! RFC 3339 times in UTC without a date library: image configs' `created` and the CLI's
//! event times.

/// `secs` since the epoch as `2026-11-29T18:45:37Z`.
pub fn rfc3339(secs: u64) -> String {
    let (date, h, m, s) = civil(secs);
    format!("{date}T{h:02}:{m:02}:{s:02}Z")
}

/// Unix nanoseconds as `2026-11-29T18:45:37.123Z`.
pub fn rfc3339_millis(nanos: u64) -> String {
    let (date, h, m, s) = civil(nanos / 1_000_000_000);
    format!("{date}T{h:02}:{m:02}:{s:02}.{:03}Z", (nanos / 1_000_000) % 1000)
}

/// The date (`YYYY-MM-DD`), hour, minute and second of `secs` since the epoch.
fn civil(secs: u64) -> (String, u64, u64, u64) {
    let (days, rem) = ((secs / 86_400) as i64, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm, proleptic Gregorian).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (format!("{year:04}-{month:02}-{day:02}"), rem / 3600, rem % 3600 / 60, rem % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_known_times() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_798_761_599), "2026-12-31T23:59:59Z");
    }

    #[test]
    fn times_are_rfc3339() {
        assert_eq!(rfc3339_millis(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339_millis(1_795_977_937_123_000_000), "2026-11-29T18:45:37.123Z");
        assert_eq!(rfc3339_millis(951_782_400_000_000_000), "2000-02-29T00:00:00.000Z");
    }
}
