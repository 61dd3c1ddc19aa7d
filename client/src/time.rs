//! RFC 3339 times in UTC without a date library: image configs' `created` and the CLI's
//! event times. The calendar arithmetic is the service kit's ([`civil`]).

use berth_service_kit::time::civil;

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
