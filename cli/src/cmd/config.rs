//! `berth config default`.

use std::process::ExitCode;

use clap::Subcommand;

use super::Ctx;

/// `berth config …`
#[derive(Debug, Subcommand)]
pub enum ConfigCmd {
    /// Print the full default configuration (TOML, commented)
    Default,
}

/// Runs a config command.
pub async fn run(_ctx: &Ctx, cmd: ConfigCmd) -> anyhow::Result<ExitCode> {
    match cmd {
        ConfigCmd::Default => print!("{}", berth_service_kit::config::DEFAULT_TOML),
    }
    Ok(ExitCode::SUCCESS)
}
