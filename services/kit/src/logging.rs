//! Tracing set-up for every berth binary: plain text on stderr (colours only on a terminal)
//! or JSON lines ([`LogFormat::Json`], chosen by `--log-format json`, `BERTH_LOG_FORMAT=json`
//! or `[log] format = "json"`); level from `BERTH_LOG` (default `info`).
//!
//! JSON events are flat: the message and every field are top-level keys beside `timestamp`
//! and `level`, so that a line forwarded by the launcher can carry a top-level `service`.
//!
//! Writes that fail are dropped: a service whose launcher died (its stderr is a broken pipe)
//! must still log its way through a clean shutdown, and tracing-subscriber would otherwise
//! report the failure with `eprintln!`, which panics on that same broken pipe.

use std::io::{self, Write};

use serde::{Deserialize, Serialize};
use tracing_subscriber::EnvFilter;

/// How log lines are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// `<time>  <LEVEL> <message> key=value…`, coloured on a terminal.
    #[default]
    Plain,
    /// One JSON object per line: `timestamp`, `level`, `message`, then the fields.
    Json,
}

impl LogFormat {
    /// The flag value: `plain` or `json`.
    pub fn as_str(self) -> &'static str {
        match self {
            LogFormat::Plain => "plain",
            LogFormat::Json => "json",
        }
    }
}

/// Installs the global subscriber. Safe to call once per process.
pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_env("BERTH_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let ansi = io::IsTerminal::is_terminal(&io::stderr());
    let builder =
        tracing_subscriber::fmt().with_env_filter(filter).with_writer(|| LossyStderr).with_target(false);
    let _ = match format {
        LogFormat::Json => builder.json().flatten_event(true).with_current_span(false).try_init(),
        LogFormat::Plain => builder.with_ansi(ansi).try_init(),
    };
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
