//! `berth namespaces ls|create|rm|label`, and the label and time helpers the other
//! metadata command groups share.

use std::process::ExitCode;

use berth_ipc::metadata::{
    CreateNamespace, DeleteNamespace, Labels, ListNamespaces, Namespace, UpdateNamespace,
};
use clap::Subcommand;

use super::Ctx;
use crate::output::{self, Format};

/// `berth namespaces …`
#[derive(Debug, Subcommand)]
pub enum NamespacesCmd {
    /// List namespaces with their labels
    #[command(alias = "list")]
    Ls {
        /// Print names only
        #[arg(short, long)]
        quiet: bool,
    },
    /// Create a namespace
    Create {
        /// Its name
        name: String,
        /// Labels as KEY=VALUE
        labels: Vec<String>,
    },
    /// Remove empty namespaces
    #[command(alias = "remove", alias = "del")]
    Rm {
        /// Their names
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Set labels (KEY=VALUE) or remove them (KEY or KEY=)
    Label {
        /// The namespace
        name: String,
        /// Labels to set or remove
        #[arg(required = true)]
        labels: Vec<String>,
    },
}

/// Parses `KEY=VALUE` arguments into labels (a bare `KEY` has an empty value).
pub fn parse_labels(args: &[String]) -> anyhow::Result<Labels> {
    let mut out = Labels::new();
    for a in args {
        let (k, v) = a.split_once('=').unwrap_or((a.as_str(), ""));
        if k.is_empty() {
            anyhow::bail!("label {a:?}: empty key (write KEY=VALUE)");
        }
        out.insert(k.to_string(), v.to_string());
    }
    Ok(out)
}

/// The update for `label` commands: field paths `labels.<k>` for every argument; keys
/// with an empty value are left out of the labels, so the update removes them.
pub fn label_update(args: &[String]) -> anyhow::Result<(Labels, Vec<String>)> {
    let parsed = parse_labels(args)?;
    let paths = parsed.keys().map(|k| format!("labels.{k}")).collect();
    let labels = parsed.into_iter().filter(|(_, v)| !v.is_empty()).collect();
    Ok((labels, paths))
}

/// Labels as `k=v,k2=v2` for a table cell.
pub fn show_labels(labels: &Labels) -> String {
    if labels.is_empty() {
        return "-".into();
    }
    labels.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(",")
}

/// How long ago a timestamp (ns since the epoch) was, as people read it.
pub fn ago(ns: u64) -> String {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let secs = now.as_secs().saturating_sub(ns / 1_000_000_000);
    format!("{} ago", output::human_duration(secs))
}

/// A wire error as a CLI error: the message as it is, the error (and so its code) kept in the
/// chain for the failure line (`crate::failure`).
pub fn wire(e: berth_ipc::Error) -> anyhow::Error {
    anyhow::Error::new(e)
}

/// [`wire`] for a client job (`pull REF`, `commit ID`…): a job that gave up waiting for a
/// service (`Unavailable` once the retries' deadline passed) says which job it was.
pub fn job_error(job: String) -> impl FnOnce(berth_ipc::Error) -> anyhow::Error {
    move |e| {
        if e.is(berth_ipc::Code::Unavailable) {
            wire(e.context(format!("{job}: gave up waiting for a service")))
        } else {
            wire(e)
        }
    }
}

fn print(ctx: &Ctx, list: &[Namespace], quiet: bool) -> anyhow::Result<()> {
    match ctx.format {
        Format::Json => output::json(&list),
        Format::Table if quiet => {
            list.iter().for_each(|n| println!("{}", n.name));
            Ok(())
        }
        Format::Table => {
            let rows: Vec<Vec<String>> =
                list.iter().map(|n| vec![n.name.clone(), show_labels(&n.labels)]).collect();
            output::table(&["NAME", "LABELS"], &rows);
            Ok(())
        }
    }
}

/// Runs a namespaces command.
pub async fn run(ctx: &Ctx, cmd: NamespacesCmd) -> anyhow::Result<ExitCode> {
    let md = &ctx.services.metadata;
    match cmd {
        NamespacesCmd::Ls { quiet } => print(ctx, &md.call(ListNamespaces).await.map_err(wire)?, quiet)?,
        NamespacesCmd::Create { name, labels } => {
            let namespace = Namespace { name, labels: parse_labels(&labels)? };
            let n = md.call(CreateNamespace { namespace }).await.map_err(wire)?;
            print(ctx, &[n], false)?;
        }
        NamespacesCmd::Rm { names } => {
            let mut failed = false;
            for name in names {
                match md.call(DeleteNamespace { name: name.clone() }).await {
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
        NamespacesCmd::Label { name, labels } => {
            let (labels, paths) = label_update(&labels)?;
            let n = md
                .call(UpdateNamespace { namespace: Namespace { name, labels }, paths })
                .await
                .map_err(wire)?;
            print(ctx, &[n], false)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_arguments() {
        let (labels, paths) = label_update(&["a=1".into(), "b".into(), "c=x=y".into()]).expect("parses");
        assert_eq!(paths, ["labels.a", "labels.b", "labels.c"]);
        assert_eq!(labels.get("a").map(String::as_str), Some("1"));
        assert_eq!(labels.get("c").map(String::as_str), Some("x=y"));
        assert!(!labels.contains_key("b"), "b is removed");
        assert!(parse_labels(&["=v".into()]).is_err());
    }
}
