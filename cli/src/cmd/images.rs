//! `berth images ls|rm|tag|label`: image records in the metadata service. Pull, push,
//! import and export come with distribution.

use std::process::ExitCode;

use berth_ipc::metadata::{CreateImage, DeleteImage, GetImage, Image, ListImages, ListIn, UpdateImage};
use berth_ipc::{Code, Stream};
use clap::Subcommand;
use serde::Serialize;

use super::Ctx;
use super::gc::print_report;
use super::namespaces::{ago, label_update, show_labels, wire};
use crate::output::{self, Format};

/// `berth images …`
#[derive(Debug, Subcommand)]
pub enum ImagesCmd {
    /// List images (filters: name==…, name~=…, target.digest==…, target.mediatype==…, labels.K==…)
    #[command(alias = "list")]
    Ls {
        /// containerd-style filters; any one may match
        filters: Vec<String>,
        /// Print names only
        #[arg(short, long)]
        quiet: bool,
    },
    /// Remove images
    #[command(alias = "remove", alias = "del")]
    Rm {
        /// Their names
        #[arg(required = true)]
        names: Vec<String>,
        /// Run garbage collection before returning, so the disk is freed
        #[arg(long)]
        sync: bool,
    },
    /// Give an image more names
    Tag {
        /// The existing image
        source: String,
        /// New names
        #[arg(required = true)]
        targets: Vec<String>,
        /// Replace a target that exists
        #[arg(short, long)]
        force: bool,
    },
    /// Set labels (KEY=VALUE) or remove them (KEY or KEY=)
    Label {
        /// The image
        name: String,
        /// Labels to set or remove
        #[arg(required = true)]
        labels: Vec<String>,
    },
    #[command(flatten)]
    Distribution(super::distribution::DistributionCmd),
}

/// `images ls --format json`: `size` is the image's total (see [`super::image_size`]; null
/// when a blob is missing), `target_size` the manifest's (or index's) own.
#[derive(Serialize)]
struct Row<'a> {
    name: &'a str,
    media_type: &'a str,
    digest: String,
    size: Option<u64>,
    target_size: u64,
    labels: &'a berth_ipc::metadata::Labels,
    created_ns: u64,
    updated_ns: u64,
}

async fn print(ctx: &Ctx, list: &[Image], quiet: bool) -> anyhow::Result<()> {
    let content = berth_ipc::content::proxy::ContentClient::new(ctx.services.content.clone());
    let sizes = if quiet { vec![None; list.len()] } else { super::image_size::totals(&content, list).await };
    match ctx.format {
        Format::Json => output::json(
            &list
                .iter()
                .zip(&sizes)
                .map(|(i, size)| Row {
                    name: &i.name,
                    media_type: &i.target.media_type,
                    digest: i.target.digest.to_string(),
                    size: *size,
                    target_size: i.target.size,
                    labels: &i.labels,
                    created_ns: i.created,
                    updated_ns: i.updated,
                })
                .collect::<Vec<_>>(),
        ),
        Format::Table if quiet => {
            list.iter().for_each(|i| println!("{}", i.name));
            Ok(())
        }
        Format::Table => {
            let rows: Vec<Vec<String>> = list
                .iter()
                .zip(&sizes)
                .map(|(i, size)| {
                    vec![
                        i.name.clone(),
                        i.target.media_type.clone(),
                        i.target.digest.to_string(),
                        size.map_or_else(|| "-".into(), output::human_size),
                        ago(i.created),
                        show_labels(&i.labels),
                    ]
                })
                .collect();
            output::table(&["REF", "TYPE", "DIGEST", "SIZE", "CREATED", "LABELS"], &rows);
            Ok(())
        }
    }
}

/// Collects every page of a list stream.
pub async fn pages<C>(mut s: Stream<C>) -> anyhow::Result<Vec<<C::Reply as IntoIterator>::Item>>
where
    C: berth_ipc::Call,
    C::Reply: IntoIterator,
{
    let mut out = Vec::new();
    while let Some(page) = s.next().await {
        out.extend(page.map_err(wire)?);
    }
    Ok(out)
}

/// Runs an images command.
pub async fn run(ctx: &Ctx, cmd: ImagesCmd) -> anyhow::Result<ExitCode> {
    let md = &ctx.services.metadata;
    let ns = || ctx.namespace.clone();
    match cmd {
        ImagesCmd::Distribution(c) => return super::distribution::run(ctx, c).await,
        ImagesCmd::Ls { filters, quiet } => {
            let filters = filters.iter().map(|f| berth_client::names::normalize_filter(f)).collect();
            let list = pages(md.stream(ListImages(ListIn { namespace: ns(), filters })).await.map_err(wire)?)
                .await?;
            print(ctx, &list, quiet).await?;
        }
        ImagesCmd::Rm { names, sync } => {
            let mut failed = false;
            for name in names {
                let name = ctx.image_name(&name).await;
                match md.call(DeleteImage { namespace: ns(), name: name.clone(), sync: false }).await {
                    Ok(_) => println!("{name}"),
                    Err(e) => {
                        eprintln!("berth: {}", crate::failure::wire_line(e));
                        failed = true;
                    }
                }
            }
            if sync {
                // One pass after every removal: what they unreferenced leaves the disk now.
                print_report(ctx, &md.call(berth_ipc::metadata::Gc).await.map_err(wire)?)?;
            }
            if failed {
                return Ok(ExitCode::FAILURE);
            }
        }
        ImagesCmd::Tag { source, targets, force } => {
            let source = ctx.image_name(&source).await;
            let src = md
                .call(GetImage(berth_ipc::metadata::ByName { namespace: ns(), name: source }))
                .await
                .map_err(wire)?;
            for target in targets {
                let target = berth_client::reference::normalize(&target).map_err(wire)?;
                let image = Image { name: target.clone(), ..src.clone() };
                match md.call(CreateImage { namespace: ns(), image: image.clone() }).await {
                    Ok(_) => {}
                    Err(e) if e.code == Code::AlreadyExists && force => {
                        let paths = vec!["target".to_string(), "labels".to_string()];
                        md.call(UpdateImage { namespace: ns(), image, paths }).await.map_err(wire)?;
                    }
                    Err(e) => return Err(wire(e)),
                }
                println!("{target}");
            }
        }
        ImagesCmd::Label { name, labels } => {
            let (labels, paths) = label_update(&labels)?;
            let name = ctx.image_name(&name).await;
            let cur = md
                .call(GetImage(berth_ipc::metadata::ByName { namespace: ns(), name }))
                .await
                .map_err(wire)?;
            let image = Image { labels, ..cur };
            let img = md.call(UpdateImage { namespace: ns(), image, paths }).await.map_err(wire)?;
            print(ctx, &[img], false).await?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
