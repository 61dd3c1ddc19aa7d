//! The clock as berth records it: [`now_ns`] for every stored timestamp, and RFC 3339 times
//! in UTC with nanoseconds, without a date library: containers' log records (written by the
//! shim, read by the runtime service) and the CLI's `--since`/`--timestamps`.

/// Nanoseconds since the Unix epoch now (0 for a clock set before 1970, `u64::MAX` past 2554).
pub fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// Unix nanoseconds as `2026-12-07T09:22:41.123456789Z`.
pub fn rfc3339_nanos(nanos: u64) -> String {
    let (date, h, m, sec) = civil(nanos / 1_000_000_000);
    format!("{date}T{h:02}:{m:02}:{sec:02}.{:09}Z", nanos % 1_000_000_000)
}

/// The date (`YYYY-MM-DD`), hour, minute and second of `secs` since the epoch.
pub fn civil(secs: u64) -> (String, u64, u64, u64) {
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

/// The inverse of [`rfc3339_nanos`] (UTC, `Z`, 0 to 9 fraction digits).
pub fn parse_rfc3339_nanos(s: &str) -> Option<u64> {
    let s = s.strip_suffix('Z')?;
    let (date, time) = s.split_once('T')?;
    let mut d = date.splitn(3, '-').map(|p| p.parse::<i64>().ok());
    let (year, month, day) = (d.next()??, d.next()??, d.next()??);
    let (hms, frac) = time.split_once('.').unwrap_or((time, ""));
    let mut t = hms.splitn(3, ':').map(|p| p.parse::<u64>().ok());
    let (h, m, sec) = (t.next()??, t.next()??, t.next()??);
    if frac.len() > 9
        || !frac.bytes().all(|b| b.is_ascii_digit())
        || !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || h > 23
        || m > 59
        || sec > 60
    {
        return None;
    }
    let nanos =
        if frac.is_empty() { 0 } else { frac.parse::<u64>().ok()? * 10u64.pow(9 - frac.len() as u32) };
    // Days since 1970-01-01 from a civil date (Howard Hinnant's algorithm).
    let y = year - i64::from(month <= 2);
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = if month > 2 { month - 3 } else { month + 9 };
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = u64::try_from(era * 146_097 + doe - 719_468).ok()?;
    days.checked_mul(86_400)?
        .checked_add(h * 3600 + m * 60 + sec)?
        .checked_mul(1_000_000_000)?
        .checked_add(nanos)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn now_is_after_this_code_was_written() {
        let a = now_ns();
        assert!(a > 1_796_635_361_000_000_000, "{a}");
        assert!(now_ns() >= a);
    }

    #[test]
    fn times_round_trip() {
        for t in [0, 951_782_400_000_000_000, 1_796_635_361_123_456_789, 1_798_761_599_999_999_999] {
            let s = rfc3339_nanos(t);
            assert_eq!(parse_rfc3339_nanos(&s), Some(t), "{s}");
        }
        assert_eq!(rfc3339_nanos(951_782_400_000_000_001), "2000-02-29T00:00:00.000000001Z");
        assert_eq!(parse_rfc3339_nanos("2000-02-29T00:00:01Z"), Some(951_782_401_000_000_000));
        assert_eq!(parse_rfc3339_nanos("2000-02-29T00:00:01.5Z"), Some(951_782_401_500_000_000));
        for bad in
            ["yesterday", "2000-13-01T00:00:00Z", "2000-01-01T00:00:00", "2000-01-01T00:00:00.1234567890Z"]
        {
            assert_eq!(parse_rfc3339_nanos(bad), None, "{bad}");
        }
    }
}
