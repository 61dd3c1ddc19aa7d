//! `berth events [--since SEQ|DURATION] [--filter F]...`: stream events until interrupted,
//! one line each (JSON lines with `--format json`).
//!
//! The stream survives the events service restarting and the subscriber lagging: it
//! subscribes again from the first seq it has not seen, so no event is lost or repeated.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context as _, bail};
use berth_client::time::rfc3339_millis;
use berth_ipc::events::{Envelope, Since, Subscribe, SubscribeItem};
use berth_ipc::{Code, Error};
use clap::Args;

use super::Ctx;
use crate::output::Format;

/// `berth events …`
#[derive(Debug, Args)]
pub struct EventsArgs {
    /// Replay from a seq (`42`) or from a time ago (`90s`, `5m`, `2h`, `1d`) before
    /// following; without it, only new events are shown
    #[arg(long, value_parser = parse_since)]
    since: Option<Since>,
    /// Filter in containerd's syntax (`topic==/tasks/exit`, `topic~="^/images/"`,
    /// `namespace==k8s.io`, `event.container_id==web`); comma = and; repeat = or
    #[arg(long = "filter", short = 'f')]
    filters: Vec<String>,
}

/// Runs `berth events`.
pub async fn run(ctx: &Ctx, args: EventsArgs) -> anyhow::Result<ExitCode> {
    let client = &ctx.services.events;
    let mut since = args.since.unwrap_or(Since::Live);
    loop {
        let req = Subscribe { filters: args.filters.clone(), since };
        let mut stream = client.stream(req).await.context("subscribe to events")?;
        let mut next: Option<u64> = match since {
            Since::Seq(s) => Some(s),
            _ => None,
        };
        let ended = loop {
            match stream.next().await {
                None => break None,
                Some(Err(e)) => break Some(e),
                Some(Ok(SubscribeItem::Ready { last, .. })) => {
                    if since == Since::Live {
                        next = Some(last + 1);
                    }
                }
                Some(Ok(SubscribeItem::Event(e))) => {
                    print_event(ctx.format, &e)?;
                    next = Some(e.seq + 1);
                }
                Some(Ok(SubscribeItem::Lagged { resume_from })) => {
                    eprintln!("berth: fell behind; resuming from seq {resume_from}");
                    next = Some(resume_from);
                }
            }
        };
        match ended {
            Some(e) if e.code != Code::Unavailable => return Err(user_error(e)),
            Some(e) => eprintln!("berth: {e}; reconnecting"),
            None => {}
        }
        since = next.map_or(Since::Live, Since::Seq);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn user_error(e: Error) -> anyhow::Error {
    anyhow::anyhow!("{}", e.message)
}

fn print_event(format: Format, e: &Envelope) -> anyhow::Result<()> {
    let event = e.payload.to_json();
    match format {
        Format::Json => {
            let line = serde_json::json!({
                "seq": e.seq,
                "timestamp": e.timestamp,
                "time": rfc3339_millis(e.timestamp),
                "namespace": e.namespace,
                "topic": e.topic,
                "type": e.payload.type_name(),
                "event": event,
            });
            println!("{line}");
        }
        Format::Table => {
            println!("{:>8}  {}  {}  {}  {}", e.seq, rfc3339_millis(e.timestamp), e.namespace, e.topic, event)
        }
    }
    Ok(())
}

/// `42` is a seq; `90s`, `5m`, `2h`, `1d`, `250ms` is that long ago.
fn parse_since(s: &str) -> anyhow::Result<Since> {
    if let Ok(seq) = s.parse::<u64>() {
        return Ok(Since::Seq(seq));
    }
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let Ok(n) = num.parse::<u64>() else { bail!("{s:?}: expected a seq or a duration like 5m") };
    let unit_ns: u64 = match unit {
        "ms" => 1_000_000,
        "s" => 1_000_000_000,
        "m" => 60 * 1_000_000_000,
        "h" => 3600 * 1_000_000_000,
        "d" => 86_400 * 1_000_000_000,
        _ => bail!("{s:?}: unknown unit {unit:?} (use ms, s, m, h or d)"),
    };
    let now =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
    Ok(Since::Time(now.saturating_sub(n.saturating_mul(unit_ns))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_parses_seqs_and_durations() {
        assert_eq!(parse_since("42").expect("seq"), Since::Seq(42));
        assert!(matches!(parse_since("5m").expect("duration"), Since::Time(t) if t > 0));
        assert!(parse_since("5y").is_err());
        assert!(parse_since("m").is_err());
    }
}
