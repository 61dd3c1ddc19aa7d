//! `berth tasks logs`: a container's kept output, as `nerdctl logs` prints it.

use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

use berth_ipc::runtime::{Logs, OutputStream, Runtime, TaskRef};
use berth_ipc::{Client, Stream};
use berth_service_kit::time::{parse_rfc3339_nanos, rfc3339_nanos};

use super::namespaces::wire;

/// Prints the kept output of `task` (stdout to stdout, stderr to stderr); each line with
/// its time first with `timestamps`.
pub async fn print(
    rt: &Client<Runtime>,
    task: TaskRef,
    follow: bool,
    tail: Option<u64>,
    since: Option<&str>,
    timestamps: bool,
) -> anyhow::Result<()> {
    let since = since.map(parse_since).transpose()?;
    let mut stream: Stream<Logs> = rt.stream(Logs { task, follow, tail, since }).await.map_err(wire)?;
    let (mut out, mut err) = (std::io::stdout(), std::io::stderr());
    // Whether the last bytes printed on a stream ended a line (a time goes before the next).
    let mut at_line_start = [true, true];
    while let Some(batch) = stream.next().await {
        for entry in batch.map_err(wire)? {
            let (w, start): (&mut dyn Write, &mut bool) = match entry.stream {
                OutputStream::Stdout => (&mut out, &mut at_line_start[0]),
                OutputStream::Stderr => (&mut err, &mut at_line_start[1]),
            };
            if timestamps && *start {
                write!(w, "{} ", rfc3339_nanos(entry.time))?;
            }
            *start = entry.data.ends_with(b"\n");
            w.write_all(&entry.data)?;
        }
        out.flush()?;
    }
    Ok(())
}

/// `--since`: an RFC 3339 time (`2026-12-07T09:30:00Z`), Unix seconds, or a duration ago
/// (`90s`, `10m`, `2h`, `1d`); Unix nanoseconds.
pub fn parse_since(s: &str) -> anyhow::Result<u64> {
    if let Some(t) = parse_rfc3339_nanos(s) {
        return Ok(t);
    }
    if let Ok(secs) = s.parse::<u64>() {
        return secs.checked_mul(1_000_000_000).ok_or_else(|| anyhow::anyhow!("--since {s:?}: out of range"));
    }
    let unit = |suffix: &str, secs: u64| s.strip_suffix(suffix)?.parse::<u64>().ok()?.checked_mul(secs);
    let ago =
        unit("s", 1).or_else(|| unit("m", 60)).or_else(|| unit("h", 3600)).or_else(|| unit("d", 86_400));
    let Some(ago) = ago else {
        anyhow::bail!("--since {s:?}: not a time (2026-12-07T09:30:00Z), Unix seconds or a duration (10m)")
    };
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
    Ok(now.saturating_sub(ago.saturating_mul(1_000_000_000)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_forms() {
        assert_eq!(parse_since("2000-02-29T00:00:01Z").expect("time"), 951_782_401_000_000_000);
        assert_eq!(parse_since("951782401").expect("secs"), 951_782_401_000_000_000);
        let clock = || SystemTime::now().duration_since(UNIX_EPOCH).expect("now").as_nanos() as u64;
        let before = clock();
        let ten_min = parse_since("10m").expect("ago");
        let after = clock();
        assert!(ten_min >= before - 600_000_000_000 && ten_min <= after - 600_000_000_000);
        let e = parse_since("soon").expect_err("bad").to_string();
        assert!(e.contains("\"soon\": not a time"), "{e}");
    }
}
