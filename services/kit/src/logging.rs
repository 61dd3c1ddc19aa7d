//! Tracing set-up for every berth binary: plain text on stderr (JSON with
//! `BERTH_LOG_FORMAT=json`), level from `BERTH_LOG` (default `info`), colours only on a
//! terminal.
//!
//! Writes that fail are dropped: a service whose launcher died (its stderr is a broken pipe)
//! must still log its way through a clean shutdown, and tracing-subscriber would otherwise
//! report the failure with `eprintln!`, which panics on that same broken pipe.

use std::io::{self, Write};

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber. Safe to call once per process.
pub fn init() {
    let filter = EnvFilter::try_from_env("BERTH_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let json = std::env::var("BERTH_LOG_FORMAT").is_ok_and(|v| v == "json");
    let ansi = io::IsTerminal::is_terminal(&io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(|| LossyStderr)
        .with_ansi(ansi)
        .with_target(false);
    let _ = if json { builder.json().try_init() } else { builder.try_init() };
}

/// Standard error that never fails.
struct LossyStderr;

impl Write for LossyStderr {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let _ = io::stderr().write_all(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Prints a line to stderr, ignoring a closed stderr (unlike `eprintln!`, which panics).
pub fn print_err(line: &str) {
    let _ = writeln!(io::stderr().lock(), "{line}");
}
