//! `berth commit CONTAINER IMAGE`: a container's changes as a new image (one new layer on
//! top of its image's layers).

use std::process::ExitCode;

use clap::Args;
use serde::Serialize;

use super::Ctx;

use crate::output::{self, Format};

/// `berth commit` arguments.
#[derive(Debug, Args)]
pub struct CommitArgs {
    /// The container
    pub container: String,
    /// The new image's name
    pub image: String,
    /// Freeze a running container while its changes are read (resumed after, even on
    /// failure); --pause=false commits it running, open to changes made meanwhile
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub pause: bool,
}

#[derive(Serialize)]
struct Shown {
    name: String,
    digest: String,
    layer: String,
    layer_size: u64,
}

/// Runs `berth commit`.
pub async fn run(ctx: &Ctx, a: CommitArgs) -> anyhow::Result<ExitCode> {
    let c = berth_client::commit::commit(&ctx.services, &ctx.namespace, &a.container, &a.image, a.pause)
        .await
        .map_err(super::namespaces::job_error(format!("commit {}", a.container)))?;
    let shown = Shown {
        name: c.name,
        digest: c.target.digest.to_string(),
        layer: c.layer.digest.to_string(),
        layer_size: c.layer.size,
    };
    match ctx.format {
        Format::Json => output::json(&shown)?,
        Format::Table => {
            println!("{} {} (layer {}, {} bytes)", shown.name, shown.digest, shown.layer, shown.layer_size)
        }
    }
    Ok(ExitCode::SUCCESS)
}
