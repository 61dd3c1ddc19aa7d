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
use super::namespaces::wire;
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
    let s = Snapshots { ctx, sn: args.snapshotter };
    match args.cmd {
        SnapshotsCmd::Ls { filters } => s.ls(filters).await?,
        SnapshotsCmd::Prepare { key, parent } => s.prepare(key, parent).await?,
        SnapshotsCmd::View { key, parent } => s.view(key, parent).await?,
        SnapshotsCmd::Commit { name, key } => s.commit(name, key).await?,
        SnapshotsCmd::Mounts { target, key } => s.mounts(&target, &key).await?,
        SnapshotsCmd::Rm { keys } => return s.rm(keys).await,
        SnapshotsCmd::Tree => s.tree().await?,
        SnapshotsCmd::Usage { key } => s.usage(key).await?,
        SnapshotsCmd::Info { key } => s.info(&key).await?,
        SnapshotsCmd::Label { key, labels } => s.label(key, labels).await?,
        SnapshotsCmd::Diff { lower, upper } => s.diff(lower, upper).await?,
        SnapshotsCmd::Apply { key, digest } => s.apply(key, &digest).await?,
    }
    Ok(ExitCode::SUCCESS)
}

/// One snapshotter (`""`: the service's default) in the namespace of `ctx`, one method per
/// command.
struct Snapshots<'a> {
    ctx: &'a Ctx,
    sn: String,
}

impl Snapshots<'_> {
    fn key(&self, key: &str) -> KeyRef {
        KeyRef { snapshotter: self.sn.clone(), key: key.to_string(), namespace: self.ctx.namespace.clone() }
    }

    /// The namespace's snapshots matching any of `filters`.
    async fn list(&self, filters: Vec<String>) -> anyhow::Result<Vec<Info>> {
        let req = List {
            snapshotter: self.sn.clone(),
            filters,
            namespace: self.ctx.namespace.clone(),
            all_namespaces: false,
        };
        self.ctx.services.snapshot.call(req).await.map_err(wire)
    }

    async fn ls(&self, filters: Vec<String>) -> anyhow::Result<()> {
        print_list(self.ctx, &self.list(filters).await?)
    }

    async fn prepare(&self, key: String, parent: Option<String>) -> anyhow::Result<()> {
        let (snapshotter, namespace) = (self.sn.clone(), self.ctx.namespace.clone());
        let req = Prepare { snapshotter, key, parent, labels: BTreeMap::new(), namespace };
        let m = self.ctx.services.snapshot.call(req).await.map_err(wire)?;
        print_mounts(self.ctx, &m, "/tmp/mnt")
    }

    async fn view(&self, key: String, parent: Option<String>) -> anyhow::Result<()> {
        let (snapshotter, namespace) = (self.sn.clone(), self.ctx.namespace.clone());
        let req = View { snapshotter, key, parent, labels: BTreeMap::new(), namespace };
        let m = self.ctx.services.snapshot.call(req).await.map_err(wire)?;
        print_mounts(self.ctx, &m, "/tmp/mnt")
    }

    async fn commit(&self, name: String, key: String) -> anyhow::Result<()> {
        let (snapshotter, namespace) = (self.sn.clone(), self.ctx.namespace.clone());
        let req = Commit { snapshotter, name, key, labels: BTreeMap::new(), namespace };
        self.ctx.services.snapshot.call(req).await.map_err(wire)
    }

    async fn mounts(&self, target: &str, key: &str) -> anyhow::Result<()> {
        let m = self.ctx.services.snapshot.call(Mounts(self.key(key))).await.map_err(wire)?;
        print_mounts(self.ctx, &m, target)
    }

    /// Removes each key, going on after a failure (told on stderr, and by the exit code).
    async fn rm(&self, keys: Vec<String>) -> anyhow::Result<ExitCode> {
        let mut failed = false;
        for k in keys {
            if let Err(e) = self.ctx.services.snapshot.call(Remove(self.key(&k))).await {
                eprintln!("berth: {}", crate::failure::wire_line(e));
                failed = true;
            }
        }
        Ok(if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS })
    }

    async fn tree(&self) -> anyhow::Result<()> {
        let list = self.list(vec![]).await?;
        let mut lines = Vec::new();
        tree_lines(&list, None, 0, &mut lines);
        for l in lines {
            println!("{l}");
        }
        Ok(())
    }

    /// The usage of `one`, or of every snapshot.
    async fn usage(&self, one: Option<String>) -> anyhow::Result<()> {
        let keys = match one {
            Some(k) => vec![k],
            None => self.list(vec![]).await?.into_iter().map(|i| i.name).collect(),
        };
        let mut usage = Vec::new();
        for k in keys {
            let u = self.ctx.services.snapshot.call(GetUsage(self.key(&k))).await.map_err(wire)?;
            usage.push(serde_json::json!({"key": k, "size": u.size, "inodes": u.inodes}));
        }
        print_usage(self.ctx, &usage)
    }

    async fn info(&self, key: &str) -> anyhow::Result<()> {
        let i = self.ctx.services.snapshot.call(Stat(self.key(key))).await.map_err(wire)?;
        output::json(&info_json(&i))
    }

    async fn label(&self, key: String, labels: Vec<String>) -> anyhow::Result<()> {
        let (labels, fieldpaths) = label_update(labels)?;
        let (snapshotter, namespace) = (self.sn.clone(), self.ctx.namespace.clone());
        let req = Update { snapshotter, key, labels, fieldpaths, namespace };
        let i = self.ctx.services.snapshot.call(req).await.map_err(wire)?;
        output::json(&info_json(&i))
    }

    async fn diff(&self, lower: Option<String>, upper: String) -> anyhow::Result<()> {
        let (snapshotter, namespace) = (self.sn.clone(), self.ctx.namespace.clone());
        let req = Diff { snapshotter, lower, upper, labels: BTreeMap::new(), namespace };
        let d = self.ctx.services.snapshot.call(req).await.map_err(wire)?;
        print_diff(self.ctx, &d)
    }

    async fn apply(&self, key: String, digest: &str) -> anyhow::Result<()> {
        let digest = Digest::parse(digest).map_err(wire)?;
        let (snapshotter, namespace) = (self.sn.clone(), self.ctx.namespace.clone());
        let req = Apply { snapshotter, key, digest, media_type: String::new(), namespace };
        let a = self.ctx.services.snapshot.call(req).await.map_err(wire)?;
        println!("{}", a.diff_id);
        Ok(())
    }
}

/// `ls`: key, parent and kind of each snapshot.
fn print_list(ctx: &Ctx, list: &[Info]) -> anyhow::Result<()> {
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
