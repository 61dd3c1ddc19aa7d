//! `berth containers create|ls|info|rm|label`: containers. `create` and `rm` go through the
//! runtime service, which prepares or removes the snapshot and builds the OCI spec.

use std::process::ExitCode;

use berth_ipc::metadata::{ByName, Container, GetContainer, ListContainers, ListIn, UpdateContainer};
use berth_ipc::runtime::{GetSandbox, RemoveContainer, SandboxRef};
use clap::Subcommand;
use serde::Serialize;

use super::Ctx;
use super::images::pages;
use super::namespaces::{ago, label_update, show_labels, wire};
use crate::output::{self, Format};

/// `berth containers …`
#[derive(Debug, Subcommand)]
pub enum ContainersCmd {
    /// List containers (filters: id==…, image~=…, runtime.name==…, labels.K==…)
    #[command(alias = "list")]
    Ls {
        /// containerd-style filters; any one may match
        filters: Vec<String>,
        /// Print ids only
        #[arg(short, long)]
        quiet: bool,
    },
    /// Show one container in full, its spec included
    Info {
        /// The container id
        id: String,
    },
    /// Create a container from an image (snapshot, OCI spec, record)
    Create(Box<super::run::RunFlags>),
    /// Remove containers and their snapshots (refused while a task exists, unless --force)
    #[command(alias = "remove", alias = "del")]
    Rm {
        /// Their ids
        #[arg(required = true)]
        ids: Vec<String>,
        /// Kill and delete a task first
        #[arg(short, long)]
        force: bool,
    },
    /// Set labels (KEY=VALUE) or remove them (KEY or KEY=)
    Label {
        /// The container id
        id: String,
        /// Labels to set or remove
        #[arg(required = true)]
        labels: Vec<String>,
    },
}

#[derive(Serialize)]
struct Info<'a> {
    id: &'a str,
    image: &'a str,
    runtime: &'a str,
    snapshotter: &'a str,
    snapshot_key: &'a str,
    labels: &'a berth_ipc::metadata::Labels,
    extensions: Vec<&'a str>,
    created_ns: u64,
    updated_ns: u64,
    /// The sandbox it is in (its own, from `run --network`, or a pod's).
    #[serde(skip_serializing_if = "Option::is_none")]
    sandbox: Option<&'a str>,
    /// Its sandbox's network (CNI network name, `host`, or `none`).
    #[serde(skip_serializing_if = "Option::is_none")]
    network: Option<String>,
    /// Its addresses on that network.
    ips: Vec<String>,
    /// Host ports forwarded to it.
    ports: Vec<String>,
    /// The OCI spec as JSON (or a string if it is not JSON).
    spec: serde_json::Value,
}

fn info(c: &Container) -> Info<'_> {
    let spec = serde_json::from_slice(&c.spec)
        .unwrap_or_else(|_| serde_json::Value::String(String::from_utf8_lossy(&c.spec).into_owned()));
    Info {
        id: &c.id,
        image: &c.image,
        runtime: &c.runtime.name,
        snapshotter: &c.snapshotter,
        snapshot_key: &c.snapshot_key,
        labels: &c.labels,
        extensions: c.extensions.keys().map(String::as_str).collect(),
        created_ns: c.created,
        updated_ns: c.updated,
        sandbox: c.labels.get(berth_ipc::runtime::LABEL_SANDBOX).map(String::as_str),
        network: None,
        ips: Vec::new(),
        ports: Vec::new(),
        spec,
    }
}

fn print(ctx: &Ctx, list: &[Container], quiet: bool) -> anyhow::Result<()> {
    match ctx.format {
        Format::Json => output::json(&list.iter().map(info).collect::<Vec<_>>()),
        Format::Table if quiet => {
            list.iter().for_each(|c| println!("{}", c.id));
            Ok(())
        }
        Format::Table => {
            let rows: Vec<Vec<String>> = list
                .iter()
                .map(|c| {
                    vec![
                        c.id.clone(),
                        if c.image.is_empty() { "-".into() } else { c.image.clone() },
                        c.runtime.name.clone(),
                        ago(c.created),
                        show_labels(&c.labels),
                    ]
                })
                .collect();
            output::table(&["CONTAINER", "IMAGE", "RUNTIME", "CREATED", "LABELS"], &rows);
            Ok(())
        }
    }
}

/// Runs a containers command.
pub async fn run(ctx: &Ctx, cmd: ContainersCmd) -> anyhow::Result<ExitCode> {
    let md = &ctx.services.metadata;
    let by = |name: String| ByName { namespace: ctx.namespace.clone(), name };
    match cmd {
        ContainersCmd::Ls { filters, quiet } => {
            let req = ListContainers(ListIn { namespace: ctx.namespace.clone(), filters });
            let list = pages(md.stream(req).await.map_err(wire)?).await?;
            print(ctx, &list, quiet)?;
        }
        ContainersCmd::Info { id } => {
            let c = md.call(GetContainer(by(id))).await.map_err(wire)?;
            let mut shown = info(&c);
            if let Some(sb) = shown.sandbox {
                let at = SandboxRef { namespace: ctx.namespace.clone(), id: sb.to_string() };
                if let Ok(s) = ctx.services.runtime.call(GetSandbox(at)).await {
                    shown.network = Some(if s.spec.net_host {
                        "host".to_string()
                    } else {
                        s.spec.network.clone().unwrap_or_else(|| "none".into())
                    });
                    shown.ips = s.ips;
                    shown.ports = s.spec.ports.iter().map(super::run::show_port).collect();
                }
            }
            output::json(&shown)?;
        }
        ContainersCmd::Create(flags) => {
            let request = flags.request(&ctx.namespace)?;
            let c = ctx.create_container(request).await?;
            println!("{}", c.id);
        }
        ContainersCmd::Rm { ids, force } => {
            let mut failed = false;
            for id in ids {
                let req = RemoveContainer { namespace: ctx.namespace.clone(), id: id.clone(), force };
                match ctx.services.runtime.call(req).await {
                    Ok(()) => println!("{id}"),
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
        ContainersCmd::Label { id, labels } => {
            let (labels, paths) = label_update(&labels)?;
            let cur = md.call(GetContainer(by(id))).await.map_err(wire)?;
            let container = Container { labels, ..cur };
            let c = md
                .call(UpdateContainer { namespace: ctx.namespace.clone(), container, paths })
                .await
                .map_err(wire)?;
            print(ctx, &[c], false)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
