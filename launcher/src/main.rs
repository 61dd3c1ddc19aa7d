//! `berthd`: the launcher. It prepares the directories, binds every service's socket
//! (so the sockets outlive any one service process: clients queue in the backlog while a
//! service restarts), starts the services in dependency order, supervises them, and serves
//! the control socket `berthd.sock` and, when configured, the Prometheus endpoint.
//!
//! # Layout
//! - `main.rs` — flags, directories, sockets, signals.
//! - `supervisor` — the actor owning every service process.
//! - `policy` — when to restart and when to give up.
//! - `child` — spawning one service with its inherited fds.
//! - `control` — the control socket's handler.
//! - `logs` — the services' output, tagged with their names, in the launcher's log.
//! - `metrics` — gathering, rendering and serving metrics.
//! - `sys` — the pre-exec code (the crate's only `unsafe`).

mod child;
mod control;
mod logs;
mod metrics;
mod policy;
mod supervisor;
mod sys;

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use berth_service_kit::logging::LogFormat;
use berth_service_kit::{CommonArgs, Config};
use clap::{Parser, Subcommand};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

/// berthd: starts and supervises berth's services.
#[derive(Debug, Parser)]
#[command(name = "berthd", version, about)]
struct Cli {
    #[command(flatten)]
    common: CommonArgs,
    #[command(subcommand)]
    command: Option<Cmd>,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Configuration
    #[command(subcommand)]
    Config(ConfigCmd),
}

#[derive(Debug, Subcommand)]
enum ConfigCmd {
    /// Print the full default configuration (TOML, commented)
    Default,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(Cmd::Config(ConfigCmd::Default)) = cli.command {
        print!("{}", berth_service_kit::config::DEFAULT_TOML);
        return ExitCode::SUCCESS;
    }
    let config = cli.common.load();
    let log_format = cli.common.log_format(config.as_ref().ok());
    berth_service_kit::logging::init(log_format);
    let result = config.and_then(|config| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("start the async runtime")
            .and_then(|rt| rt.block_on(run(cli, config, log_format)))
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("berthd: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli, config: Config, log_format: LogFormat) -> anyhow::Result<()> {
    berth_service_kit::boot::raise_nofile_limit();
    let config_file = cli.common.config.as_deref().map(std::path::absolute).transpose()?;
    let in_file = |e: String| match &config_file {
        Some(f) => anyhow::anyhow!("config {}: {e}", f.display()),
        None => anyhow::anyhow!("config: {e}"),
    };
    let metrics_addr = config.metrics.socket_addr().map_err(in_file)?;
    config.runtime.cgroup_parent(&config.state).map_err(in_file)?;
    config.runtime.check_logs().map_err(in_file)?;
    berth_service_kit::boot::create_private_dir(&config.root)
        .with_context(|| format!("create root {}", config.root.display()))?;
    berth_service_kit::boot::create_state_dir(&config.state)
        .with_context(|| format!("create state {}", config.state.display()))?;
    let _lock = lock_state(&config.state)?;
    let group = config.group_id();
    let metrics_listener = match metrics_addr {
        Some(addr) => Some(bind_metrics(addr).await?),
        None => None,
    };

    // With the lock held no other launcher owns these sockets: any file there is left over
    // (perhaps still open in a dying orphan), so it is replaced, never reused.
    let mut listeners = Vec::new();
    for name in supervisor::SERVICES {
        listeners.push((name, bind_fresh(&config.socket(name), group)?));
    }
    let control_path = config.socket("berthd");
    let control_listener = tokio::net::UnixListener::from_std(bind_fresh(&control_path, group)?)?;

    let (cmd_tx, cmd_rx) = mpsc::channel(64);
    let sup = supervisor::Supervisor::new(config.clone(), config_file, log_format, listeners);
    let (started_tx, started_rx) = oneshot::channel();
    let supervising = tokio::spawn(sup.run(cmd_rx, started_tx));

    let stop_control = CancellationToken::new();
    let server_config = berth_ipc::ServerConfig {
        access: berth_ipc::peer::AccessPolicy { group },
        ..berth_service_kit::boot::ServiceEnv::new("berthd", config.clone()).server_config()
    };
    let scraper = Arc::new(metrics::Scraper::new(&config.state, cmd_tx.clone()));
    let control =
        berth_ipc::Server::new(control::Control::new(cmd_tx.clone(), scraper.clone()), server_config);
    let serving = tokio::spawn(control.serve(control_listener, stop_control.clone()));
    let scraping =
        metrics_listener.map(|l| tokio::spawn(metrics::http::serve(l, scraper, stop_control.clone())));
    tracing::info!(root = %config.root.display(), state = %config.state.display(), "berthd started");

    let mut signals = std::pin::pin!(wait_for_signal());
    tokio::select! {
        r = &mut signals => r?,
        _ = started_rx => {
            tracing::info!("every service started");
            berth_service_kit::ready::sd_notify("READY=1").ok();
            signals.await?;
        }
    }
    tracing::info!("stopping services");
    let (tx, rx) = oneshot::channel();
    if cmd_tx.send(supervisor::Command::Shutdown(tx)).await.is_ok() {
        let _ = rx.await;
    }
    let _ = supervising.await;
    stop_control.cancel();
    let _ = serving.await;
    if let Some(scraping) = scraping {
        let _ = scraping.await;
    }
    let _ = std::fs::remove_file(&control_path);
    tracing::info!("berthd stopped");
    Ok(())
}

/// The metrics endpoint's listener.
async fn bind_metrics(addr: std::net::SocketAddr) -> anyhow::Result<tokio::net::TcpListener> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("bind the metrics endpoint {addr} ([metrics] address)"))?;
    tracing::info!(address = %addr, "serving metrics at http://{addr}/metrics");
    Ok(listener)
}

fn bind_fresh(path: &Path, group: Option<u32>) -> anyhow::Result<std::os::unix::net::UnixListener> {
    match std::fs::remove_file(path) {
        Ok(()) => tracing::warn!(socket = %path.display(), "removed a stale socket"),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("remove stale {}", path.display())),
    }
    berth_ipc::socket::bind_std(path, group).with_context(|| format!("bind {}", path.display()))
}

/// Takes `<state>/berthd.lock` so two launchers never share a state dir. The lock lasts as
/// long as the returned value (and dies with the process, however it dies).
fn lock_state(state: &Path) -> anyhow::Result<nix::fcntl::Flock<std::fs::File>> {
    let path = state.join("berthd.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("open {}", path.display()))?;
    nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock).map_err(|(_, e)| {
        anyhow::anyhow!("another berthd runs with state dir {} ({e}); stop it first", state.display())
    })
}

async fn wait_for_signal() -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    Ok(())
}
