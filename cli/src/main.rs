//! `berth`: the admin command line, shaped like containerd's `ctr`.
//!
//! Each command group lives in its own module under `cmd/`; this file holds the global
//! flags and the dispatch.

mod cmd;
mod failure;
mod help;
mod output;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{FromArgMatches, Parser, Subcommand};

/// berth: a container runtime built as a set of small supervised services.
#[derive(Debug, Parser)]
#[command(name = "berth", version, about, propagate_version = true)]
pub struct Cli {
    /// State directory holding berth's sockets
    #[arg(long, env = "BERTH_STATE", default_value = berth_client::DEFAULT_STATE, global = true)]
    pub state: PathBuf,
    /// Namespace to act in
    #[arg(short = 'n', long, env = "BERTH_NAMESPACE", default_value = "default", global = true)]
    pub namespace: String,
    /// Output format
    #[arg(long, value_enum, default_value = "table", global = true)]
    pub format: output::Format,
    /// How long to wait for a service that is (re)starting, in seconds
    #[arg(long, env = "BERTH_TIMEOUT", default_value_t = 10, global = true)]
    pub timeout: u64,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Show the version of the client and of every service
    Version,
    /// Configuration
    #[command(subcommand)]
    Config(cmd::config::ConfigCmd),
    /// Blobs in the content store
    #[command(subcommand)]
    Content(cmd::content::ContentCmd),
    /// Inspect and control the supervised services
    #[command(subcommand)]
    Services(cmd::services::ServicesCmd),
    /// Stream events (replay with --since), one line each, until interrupted
    Events(cmd::events::EventsArgs),
    /// Namespaces: list, create, remove, label
    #[command(subcommand, alias = "ns")]
    Namespaces(cmd::namespaces::NamespacesCmd),
    /// Image records: list, remove, tag, label
    #[command(subcommand, alias = "image", alias = "i")]
    Images(cmd::images::ImagesCmd),
    /// Container records: list, info, remove, label
    #[command(subcommand, alias = "container", alias = "c")]
    Containers(cmd::containers::ContainersCmd),
    /// Leases that protect work in progress from garbage collection
    #[command(subcommand, alias = "lease")]
    Leases(cmd::leases::LeasesCmd),
    /// Snapshots: prepare, view, commit, mount, diff, remove, usage
    #[command(alias = "snapshot")]
    Snapshots(cmd::snapshots::SnapshotsArgs),
    /// Run garbage collection now
    Gc,
    /// Create a container from an image and run it
    Run(Box<cmd::run::RunArgs>),
    /// CNI networks: list, inspect, create, remove
    #[command(subcommand, alias = "networks", alias = "net")]
    Network(cmd::network::NetworkCmd),
    /// Tasks: running containers
    #[command(subcommand, alias = "task", alias = "t")]
    Tasks(cmd::tasks::TasksCmd),
    /// Make an image of a container's changes
    Commit(cmd::commit::CommitArgs),
    /// Print every service's metrics in Prometheus text format
    Metrics,
}

fn main() -> ExitCode {
    output::quiet_on_broken_pipe();
    let cli = match Cli::from_arg_matches(&help::command().get_matches()) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("berth: cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) if output::is_broken_pipe(&e) => ExitCode::from(output::BROKEN_PIPE_EXIT),
        Err(e) => {
            eprintln!("berth: {}", failure::line(&e));
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let ctx = cmd::Ctx::new(&cli);
    // Everything but `config` talks to berthd: say at once when there is none.
    if !matches!(cli.command, Command::Config(_)) {
        cmd::reach::berthd(ctx.services.launcher.socket()).await?;
    }
    match cli.command {
        Command::Version => cmd::version::run(&ctx).await,
        Command::Config(c) => cmd::config::run(&ctx, c).await,
        Command::Services(c) => cmd::services::run(&ctx, c).await,
        Command::Events(a) => cmd::events::run(&ctx, a).await,
        Command::Namespaces(c) => cmd::namespaces::run(&ctx, c).await,
        Command::Images(c) => cmd::images::run(&ctx, c).await,
        Command::Containers(c) => cmd::containers::run(&ctx, c).await,
        Command::Leases(c) => cmd::leases::run(&ctx, c).await,
        Command::Gc => cmd::gc::run(&ctx).await,
        Command::Run(a) => cmd::run::run(&ctx, *a).await,
        Command::Tasks(c) => cmd::tasks::run(&ctx, c).await,
        Command::Network(c) => cmd::network::run(&ctx, c).await,
        Command::Snapshots(a) => cmd::snapshots::run(&ctx, a).await,
        Command::Content(c) => cmd::content::run(&ctx, c).await,
        Command::Commit(a) => cmd::commit::run(&ctx, a).await,
        Command::Metrics => cmd::metrics::run(&ctx).await,
    }
}
