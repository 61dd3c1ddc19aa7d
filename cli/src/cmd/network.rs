//! `berth network ls|inspect|create|rm`: the CNI networks of the runtime service's conf dir
//! (`[network] conf_dir`), and the addresses of containers on them (for `tasks ls` and
//! `containers info`).

use std::collections::BTreeMap;
use std::process::ExitCode;

use berth_ipc::metadata::{ListContainers, ListIn};
use berth_ipc::runtime::{
    CreateNetwork, GetNetwork, LABEL_SANDBOX, LABEL_SANDBOX_OWNER, ListNetworks, ListSandboxes, NetworkInfo,
    RemoveNetwork,
};
use clap::Subcommand;

use super::Ctx;
use super::images::pages;
use super::namespaces::{parse_labels, show_labels, wire};
use crate::output::{self, Format};

/// `berth network …`
#[derive(Debug, Subcommand)]
pub enum NetworkCmd {
    /// List networks
    #[command(alias = "list")]
    Ls {
        /// Print names only
        #[arg(short, long)]
        quiet: bool,
    },
    /// Show networks in full (JSON): plugins, subnets, bridge, file, the sandboxes on them
    Inspect {
        /// Their names
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Create a bridge network (a conflist like the default network's, in the conf dir)
    Create {
        /// Its name
        name: String,
        /// Its subnet, a CIDR (10.214.40.0/24)
        #[arg(long)]
        subnet: String,
        /// The bridge's address (default: the subnet's first)
        #[arg(long)]
        gateway: Option<String>,
        /// The bridge device (default: berth- and 8 hex digits)
        #[arg(long)]
        bridge: Option<String>,
        /// Label KEY=VALUE (repeatable)
        #[arg(long)]
        label: Vec<String>,
    },
    /// Remove networks berth created (refused while a container uses one)
    #[command(alias = "remove", alias = "del")]
    Rm {
        /// Their names
        #[arg(required = true)]
        names: Vec<String>,
    },
}

fn dash(v: &[String]) -> String {
    if v.is_empty() { "-".into() } else { v.join(",") }
}

fn print(ctx: &Ctx, list: &[NetworkInfo], quiet: bool) -> anyhow::Result<()> {
    match ctx.format {
        Format::Json => output::json(&list),
        Format::Table if quiet => {
            list.iter().for_each(|n| println!("{}", n.name));
            Ok(())
        }
        Format::Table => {
            let rows: Vec<Vec<String>> = list
                .iter()
                .map(|n| {
                    let name = if n.default { format!("{} (default)", n.name) } else { n.name.clone() };
                    vec![
                        name,
                        n.kind.clone(),
                        dash(&n.subnets),
                        n.bridge.clone().unwrap_or_else(|| "-".into()),
                        n.users.len().to_string(),
                        show_labels(&n.labels),
                        if n.file.is_empty() { "(written at first use)".into() } else { n.file.clone() },
                    ]
                })
                .collect();
            output::table(&["NETWORK", "TYPE", "SUBNET", "BRIDGE", "USERS", "LABELS", "FILE"], &rows);
            Ok(())
        }
    }
}

/// Runs a network command.
pub async fn run(ctx: &Ctx, cmd: NetworkCmd) -> anyhow::Result<ExitCode> {
    let rt = &ctx.services.runtime;
    match cmd {
        NetworkCmd::Ls { quiet } => {
            let list = rt.call(ListNetworks {}).await.map_err(wire)?;
            print(ctx, &list, quiet)?;
        }
        NetworkCmd::Inspect { names } => {
            let mut out = Vec::new();
            for name in names {
                out.push(rt.call(GetNetwork(name)).await.map_err(wire)?);
            }
            output::json(&out)?;
        }
        NetworkCmd::Create { name, subnet, gateway, bridge, label } => {
            let labels = parse_labels(&label)?;
            let req = CreateNetwork { name, subnet, gateway, bridge, labels };
            let n = rt.call(req).await.map_err(wire)?;
            match ctx.format {
                Format::Json => output::json(&n)?,
                Format::Table => println!("{}", n.name),
            }
        }
        NetworkCmd::Rm { names } => {
            let mut failed = false;
            for name in names {
                match rt.call(RemoveNetwork(name.clone())).await {
                    Ok(()) => println!("{name}"),
                    Err(e) => {
                        eprintln!("berth: {}", crate::failure::wire_line(e));
                        failed = true;
                    }
                }
            }
            if failed {
                return Ok(ExitCode::FAILURE);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The addresses of each container of the namespace that is in a sandbox on a network
/// (its own, from `berth run --network`, or a pod's), by container id.
pub async fn container_ips(ctx: &Ctx) -> anyhow::Result<BTreeMap<String, Vec<String>>> {
    let sandboxes =
        ctx.services.runtime.call(ListSandboxes { namespace: ctx.namespace.clone() }).await.map_err(wire)?;
    let mut out = BTreeMap::new();
    let mut pods = BTreeMap::new();
    for sb in sandboxes.into_iter().filter(|s| !s.ips.is_empty()) {
        match sb.labels.get(LABEL_SANDBOX_OWNER) {
            Some(owner) => {
                out.insert(owner.clone(), sb.ips);
            }
            None => {
                pods.insert(sb.id, sb.ips);
            }
        }
    }
    if !pods.is_empty() {
        let filter = format!("labels.\"{LABEL_SANDBOX}\"");
        let req = ListContainers(ListIn { namespace: ctx.namespace.clone(), filters: vec![filter] });
        for c in pages(ctx.services.metadata.stream(req).await.map_err(wire)?).await? {
            if let Some(ips) = c.labels.get(LABEL_SANDBOX).and_then(|sb| pods.get(sb)) {
                out.entry(c.id).or_insert_with(|| ips.clone());
            }
        }
    }
    Ok(out)
}
