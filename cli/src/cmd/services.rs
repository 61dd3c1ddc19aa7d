//! `berth services ls|restart|stop|start`: the launcher's view of its services.

use std::process::ExitCode;

use berth_ipc::launcher::{ListServices, RestartService, ServiceStatus, StartService, StopService};
use clap::Subcommand;
use serde::Serialize;

use super::Ctx;
use crate::output::{self, Format};

/// `berth services …`
#[derive(Debug, Subcommand)]
pub enum ServicesCmd {
    /// List the services with pid, state, restarts, uptime and last exit
    #[command(alias = "list")]
    Ls,
    /// Restart a service (and clear its failed state)
    Restart {
        /// Service name: events, content, snapshot, metadata, runtime
        name: String,
    },
    /// Stop a service and keep it stopped
    Stop {
        /// Service name
        name: String,
    },
    /// Start a stopped or failed service
    Start {
        /// Service name
        name: String,
    },
}

#[derive(Serialize)]
struct Json<'a> {
    name: &'a str,
    pid: Option<u32>,
    state: &'a str,
    restarts: u32,
    uptime_s: u64,
    last_exit: Option<&'a str>,
    next_retry_s: Option<u64>,
}

fn to_json(s: &ServiceStatus) -> Json<'_> {
    Json {
        name: &s.name,
        pid: s.pid,
        state: s.state.as_str(),
        restarts: s.restarts,
        uptime_s: s.uptime_ms / 1000,
        last_exit: s.last_exit.as_deref(),
        next_retry_s: s.next_retry_ms.map(|ms| ms.div_ceil(1000)),
    }
}

fn print(ctx: &Ctx, list: &[ServiceStatus]) -> anyhow::Result<()> {
    match ctx.format {
        Format::Json => output::json(&list.iter().map(to_json).collect::<Vec<_>>()),
        Format::Table => {
            let rows: Vec<Vec<String>> = list
                .iter()
                .map(|s| {
                    vec![
                        s.name.clone(),
                        s.pid.map(|p| p.to_string()).unwrap_or_else(|| "-".into()),
                        s.state.as_str().into(),
                        s.restarts.to_string(),
                        if s.pid.is_some() { output::human_duration(s.uptime_ms / 1000) } else { "-".into() },
                        match s.next_retry_ms {
                            Some(ms) => format!("in {}", output::human_duration(ms.div_ceil(1000))),
                            None => "-".into(),
                        },
                        s.last_exit.clone().unwrap_or_else(|| "-".into()),
                    ]
                })
                .collect();
            output::table(&["NAME", "PID", "STATE", "RESTARTS", "UPTIME", "NEXT RETRY", "LAST EXIT"], &rows);
            Ok(())
        }
    }
}

/// Runs a services command.
pub async fn run(ctx: &Ctx, cmd: ServicesCmd) -> anyhow::Result<ExitCode> {
    let launcher = &ctx.services.launcher;
    let what = |e: berth_ipc::Error| anyhow::anyhow!("{e}");
    let status = match cmd {
        ServicesCmd::Ls => {
            let list = launcher.call(ListServices).await.map_err(what)?;
            print(ctx, &list)?;
            return Ok(ExitCode::SUCCESS);
        }
        ServicesCmd::Restart { name } => launcher.call(RestartService { name }).await.map_err(what)?,
        ServicesCmd::Stop { name } => launcher.call(StopService { name }).await.map_err(what)?,
        ServicesCmd::Start { name } => launcher.call(StartService { name }).await.map_err(what)?,
    };
    print(ctx, std::slice::from_ref(&status))?;
    Ok(ExitCode::SUCCESS)
}
