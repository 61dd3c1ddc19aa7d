//! An outside subscriber of berth's events that never misses one: it remembers the seq
//! of the last event it handled in a small file and, when it starts again (or when the
//! events service restarts, or when it falls behind), subscribes from the next seq.
//!
//! The position is written after each event is handled (write to a temp file, fsync,
//! rename), so a crash repeats at most the one event being handled and loses none.
//!
//! # Layout
//! - `lib.rs` — [`follow`] and the position file.
//! - `main.rs` — flags and printing.

use std::path::{Path, PathBuf};
use std::time::Duration;

use berth_ipc::events::{Envelope, Events, Since, Subscribe, SubscribeItem};
use berth_ipc::{Client, ClientOptions, Code};

/// What to follow and where to keep the position.
#[derive(Debug, Clone)]
pub struct Options {
    /// `<state>/events.sock`.
    pub socket: PathBuf,
    /// The position file.
    pub position: PathBuf,
    /// Filters in containerd's syntax.
    pub filters: Vec<String>,
    /// Stop after handling this many events (`None` = run forever).
    pub limit: Option<u64>,
}

/// Reads the last handled seq (0 when the file does not exist).
pub fn read_position(path: &Path) -> anyhow::Result<u64> {
    match std::fs::read_to_string(path) {
        Ok(s) => Ok(s.trim().parse()?),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
        Err(e) => Err(e.into()),
    }
}

/// Durably records `seq` as the last handled event.
pub fn write_position(path: &Path, seq: u64) -> anyhow::Result<()> {
    let tmp = path.with_extension("tmp");
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&tmp)?;
        writeln!(f, "{seq}")?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    Ok(())
}

/// Follows the events, calling `handle` for each, in seq order, exactly once across
/// restarts of this program and of the service. Returns after `limit` events, or never.
pub async fn follow(opts: &Options, mut handle: impl FnMut(&Envelope)) -> anyhow::Result<u64> {
    let options =
        ClientOptions { deadline: Duration::from_secs(3600), client_name: "berth-subscriber".into() };
    let client = Client::<Events>::new(&opts.socket, options);
    let mut handled = 0;
    loop {
        let last = read_position(&opts.position)?;
        let req = Subscribe { filters: opts.filters.clone(), since: Since::Seq(last + 1) };
        let mut stream = match client.stream(req).await {
            Ok(s) => s,
            Err(e) if e.code == Code::Unavailable => continue,
            Err(e) => return Err(e.into()),
        };
        while let Some(item) = stream.next().await {
            match item {
                Ok(SubscribeItem::Ready { oldest, .. }) if oldest > last + 1 => {
                    eprintln!(
                        "events {}..{} were removed by retention before we saw them",
                        last + 1,
                        oldest - 1
                    );
                }
                Ok(SubscribeItem::Ready { .. }) => {}
                Ok(SubscribeItem::Event(e)) => {
                    handle(&e);
                    write_position(&opts.position, e.seq)?;
                    handled += 1;
                    if opts.limit.is_some_and(|l| handled >= l) {
                        return Ok(handled);
                    }
                }
                Ok(SubscribeItem::Lagged { resume_from }) => {
                    // Everything before resume_from that matched was delivered; skip ahead
                    // over the non-matching rest so the next subscription starts there.
                    write_position(&opts.position, resume_from.saturating_sub(1).max(last))?;
                }
                Err(e) if e.code == Code::Unavailable => break, // service restarting
                Err(e) => return Err(e.into()),
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
