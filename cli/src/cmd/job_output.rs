//! What `images pull|import` and `images check` print: a line per image for people, JSON
//! with stable field names for programs (`--format json`). Progress stays on stderr.

use berth_client::check::CheckReport;
use berth_client::import::Imported;
use serde::Serialize;

use super::Ctx;
use crate::output::{self, Format};

/// An image a job made: `{"name", "digest", "media_type", "size", "unpacked"}` (size: the
/// target manifest's or index's, bytes; unpacked: its layers are unpacked here).
#[derive(Serialize)]
pub struct MadeRow {
    name: String,
    digest: String,
    media_type: String,
    size: u64,
    unpacked: bool,
}

impl MadeRow {
    /// The row of an imported or pulled image.
    pub fn of(i: &Imported) -> MadeRow {
        MadeRow {
            name: i.name.clone(),
            digest: i.target.digest.to_string(),
            media_type: i.target.media_type.clone(),
            size: i.target.size,
            unpacked: i.chain_id.is_some(),
        }
    }
}

/// Prints the images a pull or import made: `NAME DIGEST` lines, or one JSON array.
pub fn made(ctx: &Ctx, images: &[Imported]) -> anyhow::Result<()> {
    match ctx.format {
        Format::Json => output::json(&images.iter().map(MadeRow::of).collect::<Vec<_>>()),
        Format::Table => {
            for i in images {
                println!("{} {}", i.name, i.target.digest);
            }
            Ok(())
        }
    }
}

/// One image's check: `{"name", "complete", "present", "total", "missing": [digest…],
/// "unpacked"}`.
#[derive(Serialize)]
pub struct CheckRow {
    name: String,
    pub complete: bool,
    present: u64,
    total: u64,
    missing: Vec<String>,
    unpacked: bool,
}

impl CheckRow {
    /// The row of image `name`'s report.
    pub fn new(name: &str, r: &CheckReport) -> CheckRow {
        CheckRow {
            name: name.to_string(),
            complete: r.missing.is_empty(),
            present: r.present,
            total: r.present + r.missing.len() as u64,
            missing: r.missing.iter().map(|d| d.to_string()).collect(),
            unpacked: r.unpacked,
        }
    }
}

/// Prints `images check` results: a line per image (and one per missing blob), or one JSON
/// array.
pub fn checked(ctx: &Ctx, rows: &[CheckRow]) -> anyhow::Result<()> {
    if ctx.format == Format::Json {
        return output::json(&rows);
    }
    for r in rows {
        let state = if r.complete { "complete" } else { "incomplete" };
        let unpacked = if r.unpacked { "unpacked" } else { "not unpacked" };
        println!("{}\t{state}\t{}/{} blobs\t{unpacked}", r.name, r.present, r.total);
        for m in &r.missing {
            println!("  missing {m}");
        }
    }
    Ok(())
}
