//! What `tasks ps` and `tasks metrics` print: a table for people, JSON with stable field
//! names for programs (`--format json`).

use berth_ipc::runtime::TaskMetrics;

use super::Ctx;
use crate::output::{self, Format};

/// `tasks ps`: a `PID` column, or `[{"pid"}]`.
pub fn ps(ctx: &Ctx, pids: Vec<u32>) -> anyhow::Result<()> {
    match ctx.format {
        Format::Json => output::json(&pids.iter().map(|p| serde_json::json!({"pid": p})).collect::<Vec<_>>()),
        Format::Table => {
            let rows: Vec<Vec<String>> = pids.iter().map(|p| vec![p.to_string()]).collect();
            output::table(&["PID"], &rows);
            Ok(())
        }
    }
}

/// `tasks metrics`: one row (`ID CPU MEMORY LIMIT PIDS`, human units), or
/// `{"id", "cpu_ns", "memory_bytes", "memory_limit", "pids"}` (bytes; `memory_limit` 0
/// when there is none).
pub fn metrics(ctx: &Ctx, id: &str, m: &TaskMetrics) -> anyhow::Result<()> {
    match ctx.format {
        Format::Json => output::json(&serde_json::json!({"id": id, "cpu_ns": m.cpu_ns,
            "memory_bytes": m.memory_bytes, "memory_limit": m.memory_limit, "pids": m.pids})),
        Format::Table => {
            let limit = if m.memory_limit == 0 { "-".into() } else { output::human_size(m.memory_limit) };
            let cpu = format!("{:.3}s", m.cpu_ns as f64 / 1e9);
            let row =
                vec![id.to_string(), cpu, output::human_size(m.memory_bytes), limit, m.pids.to_string()];
            output::table(&["ID", "CPU", "MEMORY", "LIMIT", "PIDS"], &[row]);
            Ok(())
        }
    }
}
