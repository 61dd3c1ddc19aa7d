//! `berth gc`: run one garbage-collection pass now and say what it removed.

use std::process::ExitCode;

use berth_ipc::metadata::{Gc, GcReport};

use super::Ctx;
use super::namespaces::wire;
use crate::output::{self, Format};

/// Prints a GC report.
pub fn print_report(ctx: &Ctx, r: &GcReport) -> anyhow::Result<()> {
    match ctx.format {
        Format::Json => output::json(r),
        Format::Table => {
            println!(
                "gc: removed {} content records, {} snapshot records, {} expired leases; \
                 deleted {} blobs, {} snapshots; spared {} young unrecorded objects; {:.1} ms",
                r.content_records,
                r.snapshot_records,
                r.leases,
                r.blobs_deleted,
                r.snapshots_deleted,
                r.spared,
                r.total_us as f64 / 1000.0
            );
            for e in &r.errors {
                eprintln!("berth: gc: {e}");
            }
            Ok(())
        }
    }
}

/// Runs `berth gc`.
pub async fn run(ctx: &Ctx) -> anyhow::Result<ExitCode> {
    let report = ctx.services.metadata.call(Gc).await.map_err(wire)?;
    print_report(ctx, &report)?;
    Ok(if report.errors.is_empty() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}
