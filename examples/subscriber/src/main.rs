//! `berth-subscriber`: follows berth's events and prints one line per event, resuming
//! from the position file after a restart. See the library for how.

use std::path::PathBuf;

use clap::Parser;

/// Follow berth's events without ever missing one.
#[derive(Debug, Parser)]
struct Cli {
    /// berth's state directory (holds events.sock)
    #[arg(long, env = "BERTH_STATE", default_value = "/run/berth")]
    state: PathBuf,
    /// Where the last handled seq is kept
    #[arg(long, default_value = "berth-subscriber.pos")]
    position: PathBuf,
    /// Filter in containerd's syntax; repeat for "or"
    #[arg(long = "filter", short = 'f')]
    filters: Vec<String>,
    /// Stop after this many events
    #[arg(long)]
    count: Option<u64>,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let opts = berth_example_subscriber::Options {
        socket: cli.state.join("events.sock"),
        position: cli.position,
        filters: cli.filters,
        limit: cli.count,
    };
    let follow = berth_example_subscriber::follow(&opts, |e| {
        println!("{} {} {} {:?}", e.seq, e.namespace, e.topic, e.payload);
    });
    tokio::select! {
        r = follow => { r?; }
        _ = tokio::signal::ctrl_c() => {}
    }
    Ok(())
}
