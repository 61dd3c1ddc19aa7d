//! Signals by name, as an image config's `StopSignal` and `berth tasks kill --signal` give
//! them: `SIGQUIT`, `QUIT`, `quit` or a number (1 to 64; `SIGRTMIN+N` too).

/// Linux's signal names and numbers (x86 and arm numbering, which agree for these).
const NAMES: [(&str, i32); 31] = [
    ("HUP", 1),
    ("INT", 2),
    ("QUIT", 3),
    ("ILL", 4),
    ("TRAP", 5),
    ("ABRT", 6),
    ("BUS", 7),
    ("FPE", 8),
    ("KILL", 9),
    ("USR1", 10),
    ("SEGV", 11),
    ("USR2", 12),
    ("PIPE", 13),
    ("ALRM", 14),
    ("TERM", 15),
    ("STKFLT", 16),
    ("CHLD", 17),
    ("CONT", 18),
    ("STOP", 19),
    ("TSTP", 20),
    ("TTIN", 21),
    ("TTOU", 22),
    ("URG", 23),
    ("XCPU", 24),
    ("XFSZ", 25),
    ("VTALRM", 26),
    ("PROF", 27),
    ("WINCH", 28),
    ("IO", 29),
    ("PWR", 30),
    ("SYS", 31),
];

/// The first real-time signal.
const RTMIN: i32 = 34;
/// The last signal.
const MAX: i32 = 64;

/// The number of signal `s`; the error names it.
pub fn parse(s: &str) -> Result<i32, String> {
    let t = s.trim();
    if let Ok(n) = t.parse::<i32>() {
        return if (1..=MAX).contains(&n) {
            Ok(n)
        } else {
            Err(format!("signal {n}: out of range (1 to {MAX})"))
        };
    }
    let upper = t.to_ascii_uppercase();
    let name = upper.strip_prefix("SIG").unwrap_or(&upper);
    if let Some((_, n)) = NAMES.iter().find(|(n, _)| *n == name) {
        return Ok(*n);
    }
    let rt = match name {
        "IOT" => Some(6),
        "POLL" => Some(29),
        "RTMIN" => Some(RTMIN),
        "RTMAX" => Some(MAX),
        _ => name
            .strip_prefix("RTMIN+")
            .and_then(|k| k.parse::<i32>().ok())
            .map(|k| RTMIN + k)
            .or_else(|| name.strip_prefix("RTMAX-").and_then(|k| k.parse::<i32>().ok()).map(|k| MAX - k)),
    };
    rt.filter(|n| (1..=MAX).contains(n)).ok_or_else(|| format!("signal {s:?}: unknown"))
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn names_numbers_and_realtime() {
        for (s, n) in
            [("SIGQUIT", 3), ("quit", 3), ("TERM", 15), ("9", 9), ("SIGWINCH", 28), ("SIGRTMIN+3", 37)]
        {
            assert_eq!(parse(s), Ok(n), "{s}");
        }
        assert_eq!(parse("RTMAX-0"), Ok(64));
        for bad in ["", "SIGNOPE", "0", "65", "RTMIN+40", "-1"] {
            let err = parse(bad).expect_err(bad);
            assert!(err.contains("signal"), "{err}");
        }
    }
}
