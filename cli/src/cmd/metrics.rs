//! `berth metrics`: every service's counters, the launcher's figures and every running
//! task's cgroup figures, in Prometheus text format — what berthd's `[metrics]` endpoint
//! serves at `/metrics`, available whether or not the endpoint is on.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Context as _;
use berth_ipc::launcher::ScrapeMetrics;

use super::Ctx;

/// Runs `berth metrics`.
pub async fn run(ctx: &Ctx) -> anyhow::Result<ExitCode> {
    let text = ctx.services.launcher.call(ScrapeMetrics).await.context("ask berthd for metrics")?;
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}
