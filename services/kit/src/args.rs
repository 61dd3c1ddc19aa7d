//! The flags every berth process takes.

use std::path::PathBuf;

use clap::Args;

use crate::config::Config;
use crate::logging::LogFormat;

/// `--root`, `--state`, `--config`, `--log-format`, shared by `berthd` and every service binary.
#[derive(Debug, Clone, Default, Args)]
pub struct CommonArgs {
    /// Persistent data directory [default: /var/lib/berth]
    #[arg(long, env = "BERTH_ROOT", global = true)]
    pub root: Option<PathBuf>,
    /// Runtime state directory, where the sockets live [default: /run/berth]
    #[arg(long, env = "BERTH_STATE", global = true)]
    pub state: Option<PathBuf>,
    /// TOML configuration file (see `berthd config default`)
    #[arg(long, env = "BERTH_CONFIG", global = true)]
    pub config: Option<PathBuf>,
    /// Log format: plain text or JSON lines [default: the config's `[log] format`, else plain]
    #[arg(long, value_enum, env = "BERTH_LOG_FORMAT", global = true)]
    pub log_format: Option<LogFormat>,
}

impl CommonArgs {
    /// The configuration file with the flags applied on top.
    pub fn load(&self) -> anyhow::Result<Config> {
        let mut config = Config::load(self.config.as_deref())?;
        if let Some(root) = &self.root {
            config.root = root.clone();
        }
        if let Some(state) = &self.state {
            config.state = state.clone();
        }
        Ok(config)
    }

    /// The log format: the flag (or `BERTH_LOG_FORMAT`), else the configuration's, else plain.
    pub fn log_format(&self, config: Option<&Config>) -> LogFormat {
        self.log_format.or(config.map(|c| c.log.format)).unwrap_or_default()
    }
}
