//! `berth images import|export|pull|push|check|mount|unmount`: distribution commands, driving
//! the `berth_client` library.

use std::path::PathBuf;
use std::process::ExitCode;

use berth_client::import::{ImportOptions, import_archive};
use berth_client::mount::{mount_image, unmount_image};
use berth_client::oci::Platform;
use berth_client::reference::normalize;
use berth_client::rootfs::import_rootfs_tar;
use berth_ipc::metadata::{ByName, GetImage};
use clap::Subcommand;

use super::Ctx;
use super::namespaces::wire;

/// Distribution subcommands of `berth images`.
#[derive(Debug, Subcommand)]
pub enum DistributionCmd {
    /// Import an OCI layout tar or docker-archive, or (with --rootfs) a rootfs tarball
    Import {
        /// The archive (with --rootfs: the rootfs tarball)
        file: PathBuf,
        /// With --rootfs: the image name
        name: Option<String>,
        /// FILE is a plain rootfs tarball; make a single-layer image NAME from it
        #[arg(long)]
        rootfs: bool,
        /// Name the imported image this instead of the name the archive gives
        #[arg(long = "name", conflicts_with = "rootfs")]
        rename: Option<String>,
        /// Platform to unpack (os/arch[/variant]); the host's by default
        #[arg(long)]
        platform: Option<String>,
        /// Store only, do not unpack
        #[arg(long)]
        no_unpack: bool,
        /// Snapshotter to unpack with
        #[arg(long, default_value = "overlayfs")]
        snapshotter: String,
    },
    /// Mount an image's root filesystem read-only on DIR
    Mount {
        /// The image
        name: String,
        /// The mount point (an existing directory)
        dir: PathBuf,
        /// Snapshotter the image is unpacked with
        #[arg(long, default_value = "overlayfs")]
        snapshotter: String,
    },
    /// Unmount what `images mount` mounted on DIR
    #[command(alias = "umount")]
    Unmount {
        /// The mount point
        dir: PathBuf,
        /// Snapshotter the image is unpacked with
        #[arg(long, default_value = "overlayfs")]
        snapshotter: String,
    },
}

/// Runs a distribution command.
pub async fn run(ctx: &Ctx, cmd: DistributionCmd) -> anyhow::Result<ExitCode> {
    match cmd {
        DistributionCmd::Import { file, name, rootfs, rename, platform, no_unpack, snapshotter } => {
            let imported = if rootfs {
                let Some(name) = name else {
                    anyhow::bail!("--rootfs needs an image NAME after the tarball")
                };
                vec![import_rootfs_tar(&ctx.services, &ctx.namespace, &name, &file).await.map_err(wire)?]
            } else {
                if name.is_some() {
                    anyhow::bail!(
                        "a NAME argument goes with --rootfs; use --name to rename an archive's image"
                    );
                }
                let platform = platform.as_deref().map(Platform::parse).transpose().map_err(wire)?;
                let opts =
                    ImportOptions { name: rename, platform, no_unpack, snapshotter: Some(snapshotter) };
                import_archive(&ctx.services, &ctx.namespace, &file, &opts).await.map_err(wire)?
            };
            for i in imported {
                println!("{} {}", i.name, i.target.digest);
            }
        }
        DistributionCmd::Mount { name, dir, snapshotter } => {
            let name = normalize_or_keep(ctx, &name).await;
            mount_image(&ctx.services, &ctx.namespace, &name, &dir, &snapshotter).await.map_err(wire)?;
            println!("{}", dir.display());
        }
        DistributionCmd::Unmount { dir, snapshotter } => {
            unmount_image(&ctx.services, &ctx.namespace, &dir, &snapshotter).await.map_err(wire)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `name` as given if an image has it, else its normalized form (`busybox` →
/// `docker.io/library/busybox:latest`).
pub async fn normalize_or_keep(ctx: &Ctx, name: &str) -> String {
    let get = GetImage(ByName { namespace: ctx.namespace.clone(), name: name.to_string() });
    if ctx.services.metadata.call(get).await.is_ok() {
        return name.to_string();
    }
    normalize(name).unwrap_or_else(|_| name.to_string())
}
