//! `berth snapshots [--snapshotter S] ls|prepare|view|commit|mounts|rm|tree|usage|info|label|diff|apply`:
//! the snapshot service, like `ctr snapshots`. Every command sees and changes only the
//! namespace's (`-n`) own snapshots.

use std::collections::BTreeMap;
use std::process::ExitCode;

use berth_ipc::digest::Digest;
use berth_ipc::snapshot::{
    Apply, Commit, Diff, GetUsage, Info, KeyRef, List, Mount, Mounts, Prepare, Remove, Stat, Update, View,
};
use clap::{Args, Subcommand};

use super::Ctx;
use crate::output::{self, Format};

/// `berth snapshots …`
#[derive(Debug, Args)]
pub struct SnapshotsArgs {
    /// Snapshotter: overlayfs or native (default: the service's default)
    #[arg(long, default_value = "")]
    pub snapshotter: String,
    #[command(subcommand)]
    pub cmd: SnapshotsCmd,
}

/// The snapshot commands.
#[derive(Debug, Subcommand)]
pub enum SnapshotsCmd {
    /// List snapshots (filters in containerd syntax: kind==committed, labels."a"==b)
    #[command(alias = "list")]
    Ls {
        /// Filters; any may match
        filters: Vec<String>,
    },
    /// Prepare an active snapshot and print its mounts
    Prepare {
        /// New key
        key: String,
        /// Committed parent
        parent: Option<String>,
    },
    /// Make a read-only view and print its mounts
    View {
        /// New key
        key: String,
        /// Committed parent
        parent: Option<String>,
    },
    /// Commit an active snapshot under a name
    Commit {
        /// Committed name
        name: String,
        /// Active key
        key: String,
    },
    /// Print the mount command for a snapshot
    Mounts {
        /// Where to mount
        target: String,
        /// Snapshot key
        key: String,
    },
    /// Remove snapshots
    #[command(alias = "remove")]
    Rm {
        /// Keys
        #[arg(required = true)]
        keys: Vec<String>,
    },
    /// Show the parent tree
    Tree,
    /// Disk use of each snapshot's own layer (or of one)
    Usage {
        /// One key
        key: Option<String>,
    },
    /// Show a snapshot's record
    Info {
        /// Key
        key: String,
    },
    /// Set labels (key=value; key= removes)
    Label {
        /// Key
        key: String,
        /// Labels
        labels: Vec<String>,
    },
    /// Write the changes from LOWER to UPPER as a gzip layer into content
    Diff {
        /// Base snapshot (default: the empty tree)
        #[arg(long)]
        lower: Option<String>,
        /// Changed snapshot
        upper: String,
    },
    /// Extract a layer blob from content into an active snapshot
    Apply {
        /// Active key
        key: String,
        /// Blob digest
        digest: String,
    },
}

fn mount_command(m: &Mount, target: &str) -> String {
    format!("mount -t {} {} {} -o {}", m.kind, m.source, target, m.options.join(","))
}

fn print_mounts(ctx: &Ctx, mounts: &[Mount], target: &str) -> anyhow::Result<()> {
    match ctx.format {
        Format::Json => {
            output::json(&mounts.iter().map(|m| (&m.kind, &m.source, &m.options)).collect::<Vec<_>>())
        }
        Format::Table => {
            for m in mounts {
                println!("{}", mount_command(m, target));
            }
            Ok(())
        }
    }
}

fn info_json(i: &Info) -> serde_json::Value {
    serde_json::json!({
        "name": i.name, "parent": i.parent, "kind": i.kind.as_str(), "labels": i.labels,
        "created_ms": i.created_ms, "updated_ms": i.updated_ms,
    })
}

fn tree_lines(list: &[Info], parent: Option<&str>, depth: usize, out: &mut Vec<String>) {
    for i in list.iter().filter(|i| i.parent.as_deref() == parent) {
        out.push(format!("{}{} ({})", "  ".repeat(depth), i.name, i.kind.as_str()));
        tree_lines(list, Some(&i.name), depth + 1, out);
    }
}

/// Runs a snapshots command.
pub async fn run(ctx: &Ctx, args: SnapshotsArgs) -> anyhow::Result<ExitCode> {
    let c = &ctx.services.snapshot;
    let sn = args.snapshotter;
    let ns = ctx.namespace.clone();
    let key = |k: &str| KeyRef { snapshotter: sn.clone(), key: k.to_string(), namespace: ns.clone() };
    let list = |filters: Vec<String>| List {
        snapshotter: sn.clone(),
        filters,
        namespace: ns.clone(),
        all_namespaces: false,
    };
    let what = super::namespaces::wire;
    match args.cmd {
        SnapshotsCmd::Ls { filters } => {
            print_list(ctx, &c.call(list(filters)).await.map_err(what)?)?;
        }
        SnapshotsCmd::Prepare { key: k, parent } => {
            let m = c
                .call(Prepare {
                    snapshotter: sn.clone(),
                    key: k,
                    parent,
                    labels: BTreeMap::new(),
                    namespace: ns.clone(),
                })
                .await
                .map_err(what)?;
            print_mounts(ctx, &m, "/tmp/mnt")?;
        }
        SnapshotsCmd::View { key: k, parent } => {
            let m = c
                .call(View {
                    snapshotter: sn.clone(),
                    key: k,
                    parent,
                    labels: BTreeMap::new(),
                    namespace: ns.clone(),
                })
                .await
                .map_err(what)?;
            print_mounts(ctx, &m, "/tmp/mnt")?;
        }
        SnapshotsCmd::Commit { name, key: k } => {
            c.call(Commit {
                snapshotter: sn.clone(),
                name,
                key: k,
                labels: BTreeMap::new(),
                namespace: ns.clone(),
            })
            .await
            .map_err(what)?;
        }
        SnapshotsCmd::Mounts { target, key: k } => {
            let m = c.call(Mounts(key(&k))).await.map_err(what)?;
            print_mounts(ctx, &m, &target)?;
        }
        SnapshotsCmd::Rm { keys } => {
            let mut failed = false;
            for k in keys {
                if let Err(e) = c.call(Remove(key(&k))).await {
                    eprintln!("berth: {}", crate::failure::wire_line(e));
                    failed = true;
                }
            }
            return Ok(if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS });
        }
        SnapshotsCmd::Tree => {
            let list = c.call(list(vec![])).await.map_err(what)?;
            let mut lines = Vec::new();
            tree_lines(&list, None, 0, &mut lines);
            for l in lines {
                println!("{l}");
            }
        }
        SnapshotsCmd::Usage { key: one } => {
            let keys = match one {
                Some(k) => vec![k],
                None => c.call(list(vec![])).await.map_err(what)?.into_iter().map(|i| i.name).collect(),
            };
            let mut usage = Vec::new();
            for k in keys {
                let u = c.call(GetUsage(key(&k))).await.map_err(what)?;
                usage.push(serde_json::json!({"key": k, "size": u.size, "inodes": u.inodes}));
            }
            print_usage(ctx, &usage)?;
        }
        SnapshotsCmd::Info { key: k } => {
            let i = c.call(Stat(key(&k))).await.map_err(what)?;
            output::json(&info_json(&i))?;
        }
        SnapshotsCmd::Label { key: k, labels } => {
            let (map, fieldpaths) = label_update(labels)?;
            let i = c
                .call(Update {
                    snapshotter: sn.clone(),
                    key: k,
                    labels: map,
                    fieldpaths,
                    namespace: ns.clone(),
                })
                .await
                .map_err(what)?;
            output::json(&info_json(&i))?;
        }
        SnapshotsCmd::Diff { lower, upper } => {
            let d = c
                .call(Diff {
                    snapshotter: sn.clone(),
                    lower,
                    upper,
                    labels: BTreeMap::new(),
                    namespace: ns.clone(),
                })
                .await
                .map_err(what)?;
            print_diff(ctx, &d)?;
        }
        SnapshotsCmd::Apply { key: k, digest } => {
            let digest = Digest::parse(&digest).map_err(what)?;
            let a = c
                .call(Apply {
                    snapshotter: sn.clone(),
                    key: k,
                    digest,
                    media_type: String::new(),
                    namespace: ns.clone(),
                })
                .await
                .map_err(what)?;
            println!("{}", a.diff_id);
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `ls`: key, parent and kind of each snapshot.
fn print_list(ctx: &Ctx, list: &[berth_ipc::snapshot::Info]) -> anyhow::Result<()> {
    match ctx.format {
        Format::Json => output::json(&list.iter().map(info_json).collect::<Vec<_>>())?,
        Format::Table => {
            let rows: Vec<Vec<String>> = list
                .iter()
                .map(|i| vec![i.name.clone(), i.parent.clone().unwrap_or_default(), i.kind.as_str().into()])
                .collect();
            output::table(&["KEY", "PARENT", "KIND"], &rows);
        }
    }
    Ok(())
}

/// `usage`: each key's size and inodes (`{"key", "size", "inodes"}` objects).
fn print_usage(ctx: &Ctx, usage: &[serde_json::Value]) -> anyhow::Result<()> {
    match ctx.format {
        Format::Json => output::json(&usage)?,
        Format::Table => {
            let cell = |u: &serde_json::Value, f: &str| u[f].as_u64().unwrap_or(0);
            let rows: Vec<Vec<String>> = usage
                .iter()
                .map(|u| {
                    let k = u["key"].as_str().unwrap_or_default().to_string();
                    vec![k, output::human_size(cell(u, "size")), cell(u, "inodes").to_string()]
                })
                .collect();
            output::table(&["KEY", "SIZE", "INODES"], &rows)
        }
    }
    Ok(())
}

/// `label KEY k=v k=`: the labels to set and the field paths to update (an empty value
/// removes the label).
fn label_update(labels: Vec<String>) -> anyhow::Result<(BTreeMap<String, String>, Vec<String>)> {
    let mut map = BTreeMap::new();
    let mut fieldpaths = Vec::new();
    for l in labels {
        let (lk, lv) = l.split_once('=').ok_or_else(|| anyhow::anyhow!("label {l:?}: expected key=value"))?;
        fieldpaths.push(format!("labels.{lk}"));
        if !lv.is_empty() {
            map.insert(lk.to_string(), lv.to_string());
        }
    }
    Ok((map, fieldpaths))
}

/// `diff`: the layer written (its digest; JSON: descriptor and diff ID).
fn print_diff(ctx: &Ctx, d: &berth_ipc::snapshot::Descriptor) -> anyhow::Result<()> {
    match ctx.format {
        Format::Json => output::json(&serde_json::json!({
            "mediaType": d.media_type, "digest": d.digest.to_string(), "size": d.size, "diff_id": d.diff_id.to_string(),
        }))?,
        Format::Table => println!("{}", d.digest),
    }
    Ok(())
}
