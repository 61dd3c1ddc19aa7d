//! `berth leases ls|create|rm|add-resource|rm-resource|resources`: leases protect what a
//! client is creating from GC.

use std::process::ExitCode;
use std::time::Duration;

use berth_ipc::metadata::{CreateLease, DeleteLease, Lease, ListIn, ListLeases};
use clap::Subcommand;

use super::Ctx;
use super::gc::print_report;
use super::namespaces::{ago, parse_labels, show_labels, wire};
use crate::output::{self, Format};

/// `berth leases …`
#[derive(Debug, Subcommand)]
pub enum LeasesCmd {
    /// List leases (filters: id==…, labels.K==…)
    #[command(alias = "list")]
    Ls {
        /// containerd-style filters; any one may match
        filters: Vec<String>,
        /// Print ids only
        #[arg(short, long)]
        quiet: bool,
    },
    /// Create a lease and print its id
    Create {
        /// Its id (generated if absent)
        #[arg(long)]
        id: Option<String>,
        /// Time to live (`90s`, `30m`, `24h`, `500ms`); none lives until removed
        #[arg(long, value_parser = parse_duration)]
        expires: Option<Duration>,
        /// Labels as KEY=VALUE
        #[arg(long = "label", short)]
        labels: Vec<String>,
    },
    /// Remove leases
    #[command(alias = "remove", alias = "del")]
    Rm {
        /// Their ids
        #[arg(required = true)]
        ids: Vec<String>,
        /// Run garbage collection before returning
        #[arg(long)]
        sync: bool,
    },
    /// Add a resource to a lease (protected from GC while the lease lives)
    AddResource {
        /// The lease id
        lease: String,
        /// content, snapshots/<snapshotter> (e.g. snapshots/overlayfs) or ingests
        #[arg(value_name = "TYPE")]
        kind: String,
        /// A digest (content), a snapshot key, or an ingest ref
        id: String,
    },
    /// Remove a resource from a lease
    #[command(alias = "remove-resource", alias = "delete-resource")]
    RmResource {
        /// The lease id
        lease: String,
        /// content, snapshots/<snapshotter> or ingests
        #[arg(value_name = "TYPE")]
        kind: String,
        /// A digest (content), a snapshot key, or an ingest ref
        id: String,
    },
    /// List a lease's resources
    Resources {
        /// The lease id
        lease: String,
    },
}

/// Parses `500ms`, `90s`, `30m`, `24h`, `7d`, or a plain number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 =
        num.parse().map_err(|_| format!("duration {s:?}: expected a number and a unit (90s, 30m, 24h)"))?;
    let ms = match unit {
        "ms" => Some(n),
        "" | "s" => n.checked_mul(1000),
        "m" => n.checked_mul(60_000),
        "h" => n.checked_mul(3_600_000),
        "d" => n.checked_mul(86_400_000),
        _ => return Err(format!("duration {s:?}: unknown unit {unit:?} (ms, s, m, h, d)")),
    };
    ms.map(Duration::from_millis).ok_or_else(|| format!("duration {s:?}: too long"))
}

fn print(ctx: &Ctx, list: &[Lease], quiet: bool) -> anyhow::Result<()> {
    match ctx.format {
        Format::Json => output::json(&list),
        Format::Table if quiet => {
            list.iter().for_each(|l| println!("{}", l.id));
            Ok(())
        }
        Format::Table => {
            let now = now_ns();
            let rows: Vec<Vec<String>> = list
                .iter()
                .map(|l| {
                    let expires = match l.expires {
                        None => "never".to_string(),
                        Some(e) if e <= now => "expired".to_string(),
                        Some(e) => format!("in {}", output::human_duration((e - now) / 1_000_000_000)),
                    };
                    vec![l.id.clone(), ago(l.created), expires, show_labels(&l.labels)]
                })
                .collect();
            output::table(&["ID", "CREATED", "EXPIRES", "LABELS"], &rows);
            Ok(())
        }
    }
}

use berth_service_kit::time::now_ns;

/// Runs a leases command.
pub async fn run(ctx: &Ctx, cmd: LeasesCmd) -> anyhow::Result<ExitCode> {
    let md = &ctx.services.metadata;
    match cmd {
        LeasesCmd::Ls { filters, quiet } => {
            let list = md
                .call(ListLeases(ListIn { namespace: ctx.namespace.clone(), filters }))
                .await
                .map_err(wire)?;
            print(ctx, &list, quiet)?;
        }
        LeasesCmd::Create { id, expires, labels } => {
            let ttl_ms = expires.map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
            let req = CreateLease {
                namespace: ctx.namespace.clone(),
                id: id.unwrap_or_default(),
                labels: parse_labels(&labels)?,
                ttl_ms,
            };
            let lease = md.call(req).await.map_err(wire)?;
            match ctx.format {
                Format::Json => output::json(&lease)?,
                Format::Table => println!("{}", lease.id),
            }
        }
        LeasesCmd::AddResource { lease, kind, id } => {
            super::lease_resources::change(ctx, lease, &kind, &id, true).await?
        }
        LeasesCmd::RmResource { lease, kind, id } => {
            super::lease_resources::change(ctx, lease, &kind, &id, false).await?
        }
        LeasesCmd::Resources { lease } => super::lease_resources::list(ctx, lease).await?,
        LeasesCmd::Rm { ids, sync } => {
            let mut failed = false;
            for id in ids {
                match md
                    .call(DeleteLease { namespace: ctx.namespace.clone(), id: id.clone(), sync: false })
                    .await
                {
                    Ok(_) => println!("{id}"),
                    Err(e) => {
                        eprintln!("berth: {}", crate::failure::wire_line(e));
                        failed = true;
                    }
                }
            }
            if sync {
                print_report(ctx, &md.call(berth_ipc::metadata::Gc).await.map_err(wire)?)?;
            }
            if failed {
                return Ok(ExitCode::FAILURE);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("30m"), Ok(Duration::from_secs(1800)));
        assert_eq!(parse_duration("24h"), Ok(Duration::from_secs(86_400)));
        assert!(parse_duration("5y").is_err());
        assert!(parse_duration("h").is_err());
    }
}
