//! `berth version`: the client's version and every service's.

use std::process::ExitCode;

use serde::Serialize;

use super::Ctx;
use crate::output::{self, Format};

#[derive(Serialize)]
struct Row {
    name: String,
    version: Option<String>,
    pid: Option<u32>,
    error: Option<String>,
}

/// Runs `berth version`. Exits 1 if any service did not answer.
pub async fn run(ctx: &Ctx) -> anyhow::Result<ExitCode> {
    let mut rows = vec![Row {
        name: "client".into(),
        version: Some(env!("CARGO_PKG_VERSION").into()),
        pid: None,
        error: None,
    }];
    let mut failed = false;
    for (name, health) in ctx.services.health_all().await {
        match health {
            Ok(h) => {
                rows.push(Row { name: name.into(), version: Some(h.version), pid: Some(h.pid), error: None })
            }
            Err(e) => {
                failed = true;
                rows.push(Row { name: name.into(), version: None, pid: None, error: Some(e.to_string()) });
            }
        }
    }
    match ctx.format {
        Format::Json => output::json(&rows)?,
        Format::Table => {
            let table: Vec<Vec<String>> = rows
                .iter()
                .map(|r| {
                    vec![
                        r.name.clone(),
                        r.version.clone().unwrap_or_else(|| "-".into()),
                        r.pid.map(|p| p.to_string()).unwrap_or_else(|| "-".into()),
                        r.error.clone().unwrap_or_default(),
                    ]
                })
                .collect();
            output::table(&["NAME", "VERSION", "PID", "ERROR"], &table);
        }
    }
    Ok(if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}
