//! A service's output in the launcher's log: every line of its stdout and stderr is written
//! to the launcher's stderr tagged with the service's name — `service=<name>` at the end of a
//! plain line, a top-level `"service":"<name>"` key in a JSON line.
//!
//! A service logs in the launcher's format (berthd passes `--log-format` on), so a line is
//! usually already one of the launcher's own: it is tagged and passed on as it is, keeping
//! the service's timestamp and level. Anything else (a panic message, a tool's output) is
//! logged by the launcher as a warning carrying the line as its message.

use std::io::Write;

use berth_service_kit::logging::LogFormat;

/// What to do with one line of a service's output.
#[derive(Debug, PartialEq, Eq)]
pub enum Tagged {
    /// Write this line as it is.
    Line(String),
    /// Not a log line: log it as the message of a warning.
    Message,
}

/// Tags `line` from service `name`.
pub fn tag(format: LogFormat, name: &str, line: &str) -> Tagged {
    match format {
        LogFormat::Plain => tag_plain(name, line),
        LogFormat::Json => tag_json(name, line),
    }
}

fn tag_plain(name: &str, line: &str) -> Tagged {
    if !is_plain_log_line(line) {
        return Tagged::Message;
    }
    let tagged = line
        .split_whitespace()
        .any(|w| w.strip_prefix("service=").is_some_and(|v| v == name || v.trim_matches('"') == name));
    if tagged { Tagged::Line(line.to_string()) } else { Tagged::Line(format!("{line} service={name}")) }
}

/// Whether `line` looks like tracing's plain format: an RFC 3339 UTC timestamp, then a level.
fn is_plain_log_line(line: &str) -> bool {
    let mut words = line.split_whitespace();
    let (Some(time), Some(level)) = (words.next(), words.next()) else { return false };
    let b = time.as_bytes();
    let timestamp = b.len() >= 20
        && b[..4].iter().all(u8::is_ascii_digit)
        && b[4] == b'-'
        && b[10] == b'T'
        && b.last() == Some(&b'Z');
    timestamp && matches!(level, "TRACE" | "DEBUG" | "INFO" | "WARN" | "ERROR")
}

fn tag_json(name: &str, line: &str) -> Tagged {
    let trimmed = line.trim();
    let Ok(serde_json::Value::Object(mut map)) = serde_json::from_str::<serde_json::Value>(trimmed) else {
        return Tagged::Message;
    };
    match map.get("service") {
        Some(v) if v == name => return Tagged::Line(trimmed.to_string()),
        Some(_) => {
            // The line names another service: the process it came from wins.
            map.insert("service".into(), name.into());
            return Tagged::Line(serde_json::Value::Object(map).to_string());
        }
        None => {}
    }
    // Insert at the front, keeping the service's own key order.
    let key = serde_json::Value::String(name.to_string());
    let rest = trimmed[1..].trim_start();
    let sep = if rest.starts_with('}') { "" } else { "," };
    Tagged::Line(format!("{{\"service\":{key}{sep}{rest}"))
}

/// The longest line kept whole; a longer one is passed on in pieces of this size.
const MAX_LINE: u64 = 64 * 1024;

/// Copies a service's output into the launcher's log, line by line, until it closes.
pub async fn forward<R: tokio::io::AsyncRead + Unpin>(format: LogFormat, name: String, from: R) {
    let mut reader = tokio::io::BufReader::new(from);
    let mut buf = Vec::new();
    while let Some(line) = read_line(&mut reader, &mut buf).await {
        if line.trim().is_empty() {
            continue;
        }
        match tag(format, &name, &line) {
            Tagged::Line(text) => {
                let _ = writeln!(std::io::stderr().lock(), "{text}");
            }
            Tagged::Message => tracing::warn!(service = %name, "{line}"),
        }
    }
}

/// The next line without its end, at most [`MAX_LINE`] bytes (the rest of a longer one
/// comes as the next line); bytes that are not UTF-8 are replaced. `None` at the end.
async fn read_line<R: tokio::io::AsyncBufRead + Unpin>(reader: &mut R, buf: &mut Vec<u8>) -> Option<String> {
    use tokio::io::{AsyncBufReadExt, AsyncReadExt};
    buf.clear();
    match reader.take(MAX_LINE).read_until(b'\n', buf).await {
        Ok(0) | Err(_) => None,
        Ok(_) => Some(String::from_utf8_lossy(buf).trim_end_matches(['\n', '\r']).to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn long_lines_come_in_pieces() {
        let mut data = vec![b'x'; MAX_LINE as usize + 10];
        data.extend_from_slice(b"\n\xffok\r\n");
        let (mut reader, mut buf) = (&data[..], Vec::new());
        let first = read_line(&mut reader, &mut buf).await.expect("first piece");
        assert_eq!(first.len(), MAX_LINE as usize);
        assert_eq!(read_line(&mut reader, &mut buf).await.as_deref(), Some("xxxxxxxxxx"));
        assert_eq!(read_line(&mut reader, &mut buf).await.as_deref(), Some("\u{fffd}ok"));
        assert_eq!(read_line(&mut reader, &mut buf).await, None);
    }

    #[test]
    fn plain_lines_get_the_name_once() {
        let line = "2026-11-29T21:24:20.123456Z  INFO ready pid=3";
        assert_eq!(tag(LogFormat::Plain, "content", line), Tagged::Line(format!("{line} service=content")));
        let own = "2026-11-29T21:24:20.123456Z  INFO ready service=\"content\" pid=3";
        assert_eq!(tag(LogFormat::Plain, "content", own), Tagged::Line(own.to_string()));
        let other = "2026-11-29T21:24:20.123456Z  WARN x service=\"events\"";
        assert_eq!(tag(LogFormat::Plain, "content", other), Tagged::Line(format!("{other} service=content")));
        let panic = "thread 'main' panicked at src/main.rs:3:5:";
        assert_eq!(tag(LogFormat::Plain, "content", panic), Tagged::Message);
        assert_eq!(tag(LogFormat::Plain, "content", "2026 INFO"), Tagged::Message);
    }

    #[test]
    fn json_lines_get_a_service_key() {
        let line = r#"{"timestamp":"t","level":"INFO","message":"ready"}"#;
        let Tagged::Line(out) = tag(LogFormat::Json, "snapshot", line) else { panic!("not tagged") };
        assert_eq!(out, r#"{"service":"snapshot","timestamp":"t","level":"INFO","message":"ready"}"#);
        let v: serde_json::Value = serde_json::from_str(&out).expect("still JSON");
        assert_eq!(v["service"], "snapshot");
        assert_eq!(tag(LogFormat::Json, "a", " {} "), Tagged::Line(r#"{"service":"a"}"#.to_string()));
        let own = r#"{"service":"events","message":"x"}"#;
        assert_eq!(tag(LogFormat::Json, "events", own), Tagged::Line(own.to_string()));
        let Tagged::Line(out) = tag(LogFormat::Json, "runtime", own) else { panic!("not tagged") };
        assert_eq!(out, r#"{"message":"x","service":"runtime"}"#);
        assert_eq!(tag(LogFormat::Json, "events", "[1,2]"), Tagged::Message);
        assert_eq!(tag(LogFormat::Json, "events", "panicked"), Tagged::Message);
    }
}
