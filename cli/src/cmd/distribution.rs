//! `berth images import|export|pull|push|check|mount|unmount`: distribution commands, driving
//! the `berth_client` library.

use berth_ipc::sync::lock;
use std::path::PathBuf;
use std::process::ExitCode;

use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use berth_client::check::check;
use berth_client::export::export;
use berth_client::import::{ImportOptions, import_archive};
use berth_client::mount::{mount_image, unmount_image};
use berth_client::oci::Platform;
use berth_client::progress::{Progress, Silent, State};
use berth_client::pull::{PullOptions, pull};
use berth_client::push::{PushOptions, push};
use berth_client::registry::{Credentials, RegistryOptions};
use berth_client::rootfs::import_rootfs_tar;
use berth_ipc::Digest;
use berth_ipc::metadata::{ListImages, ListIn};
use clap::Subcommand;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

use super::Ctx;
use super::namespaces::{job_error, wire};

/// Distribution subcommands of `berth images`.
#[derive(Debug, Subcommand)]
pub enum DistributionCmd {
    /// Import an OCI layout (tar or directory) or docker-archive, or (with --rootfs) a rootfs tarball
    Import {
        /// The archive or OCI layout directory (with --rootfs: the rootfs tarball)
        file: PathBuf,
        /// The image name (for an archive: the same as --name)
        name: Option<String>,
        /// FILE is a plain rootfs tarball; make a single-layer image NAME from it
        #[arg(long)]
        rootfs: bool,
        /// Name the imported image this instead of the name the archive gives
        #[arg(long = "name", conflicts_with = "rootfs")]
        rename: Option<String>,
        /// Name an image the archive tags only by a bare tag (`ref.name: v1`, as skopeo and
        /// BuildKit write) BASE:TAG
        #[arg(long = "base-name", value_name = "BASE", conflicts_with = "rootfs")]
        base_name: Option<String>,
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
    /// Pull an image from a registry, and unpack it
    Pull {
        /// The reference (`alpine`, `host:5000/repo:tag`, `repo@sha256:…`)
        reference: String,
        #[command(flatten)]
        registry: RegistryArgs,
        /// Platform to pull (os/arch[/variant]); the host's by default
        #[arg(long)]
        platform: Option<String>,
        /// Fetch every platform of a multi-platform image (the chosen one is unpacked)
        #[arg(long)]
        all_platforms: bool,
        /// Store only, do not unpack
        #[arg(long)]
        no_unpack: bool,
        /// Snapshotter to unpack with
        #[arg(long, default_value = "overlayfs")]
        snapshotter: String,
        /// Layers downloaded at once
        #[arg(long, default_value_t = 4)]
        parallel: usize,
        /// No progress output
        #[arg(short, long)]
        quiet: bool,
    },
    /// Push an image to a registry
    Push {
        /// The image
        name: String,
        /// Where to push it, if not to its own name
        remote: Option<String>,
        #[command(flatten)]
        registry: RegistryArgs,
        /// No progress output
        #[arg(short, long)]
        quiet: bool,
    },
    /// Write images to an OCI layout tar
    Export {
        /// The tar to write
        file: PathBuf,
        /// The images
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Unpack an image's layers into snapshots (for an image pulled or imported with --no-unpack)
    Unpack {
        /// The image
        name: String,
        /// Snapshotter to unpack with
        #[arg(long, default_value = "overlayfs")]
        snapshotter: String,
    },
    /// Tell whether every blob of images is present and their layers unpacked
    Check {
        /// The images (all when none)
        names: Vec<String>,
        /// Snapshotter to look for unpacked layers on
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

/// Registry access flags.
#[derive(Debug, clap::Args)]
pub struct RegistryArgs {
    /// Use plain HTTP (automatic for localhost and 127.0.0.0/8)
    #[arg(long)]
    plain_http: bool,
    /// USER:PASSWORD for the registry
    #[arg(short, long, env = "BERTH_REGISTRY_USER")]
    user: Option<String>,
    /// Seconds the registry may take to start a response or to deliver 16 KiB of a body
    #[arg(long, default_value_t = 30, value_name = "SECS")]
    stall_timeout: u64,
}

impl RegistryArgs {
    fn options(&self) -> anyhow::Result<RegistryOptions> {
        let credentials = match &self.user {
            None => None,
            Some(u) => {
                let Some((username, password)) = u.split_once(':') else {
                    anyhow::bail!("--user takes USER:PASSWORD");
                };
                Some(Credentials { username: username.into(), password: password.into() })
            }
        };
        let stall_timeout = Some(std::time::Duration::from_secs(self.stall_timeout));
        Ok(RegistryOptions { plain_http: self.plain_http, credentials, stall_timeout, endpoint: None })
    }
}

/// Prints one line per blob state change on stderr.
struct Lines {
    seen: Mutex<HashMap<Digest, State>>,
}

impl Progress for Lines {
    fn update(&self, digest: &Digest, state: State, done: u64, total: u64) {
        let mut seen = lock(&self.seen);
        if seen.insert(*digest, state) != Some(state) {
            eprintln!("{}: {} {done}/{total}", digest.short(), state.as_str());
        }
    }
    fn step(&self, message: &str) {
        eprintln!("{message}");
    }
}

/// One indicatif bar per blob (bytes, speed, state), for a terminal.
struct Bars {
    multi: MultiProgress,
    bars: Mutex<HashMap<Digest, ProgressBar>>,
}

impl Progress for Bars {
    fn update(&self, digest: &Digest, state: State, done: u64, total: u64) {
        let mut bars = lock(&self.bars);
        let bar = bars.entry(*digest).or_insert_with(|| {
            let b = self.multi.add(ProgressBar::new(total));
            let style = ProgressStyle::with_template(
                "{prefix} [{bar:30}] {bytes:>10}/{total_bytes:<10} {binary_bytes_per_sec:>12} {msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
            b.set_style(style);
            b.set_prefix(digest.short());
            b
        });
        if total > 0 {
            bar.set_length(total);
            bar.set_position(done);
        }
        bar.set_message(state.as_str());
        if matches!(state, State::Done | State::Unpacked | State::Exists) {
            bar.finish();
        }
    }
    fn step(&self, message: &str) {
        let _ = self.multi.println(message);
    }
}

fn progress(quiet: bool) -> Arc<dyn Progress> {
    if quiet {
        Arc::new(Silent)
    } else if std::io::stderr().is_terminal() {
        Arc::new(Bars { multi: MultiProgress::new(), bars: Mutex::new(HashMap::new()) })
    } else {
        Arc::new(Lines { seen: Mutex::new(HashMap::new()) })
    }
}

/// Runs a distribution command.
pub async fn run(ctx: &Ctx, cmd: DistributionCmd) -> anyhow::Result<ExitCode> {
    match cmd {
        DistributionCmd::Import {
            file,
            name,
            rootfs,
            rename,
            base_name,
            platform,
            no_unpack,
            snapshotter,
        } => {
            let imported = if rootfs {
                let Some(name) = name else {
                    anyhow::bail!("--rootfs needs an image NAME after the tarball")
                };
                vec![
                    import_rootfs_tar(&ctx.services, &ctx.namespace, &name, &file)
                        .await
                        .map_err(job_error(format!("import {}", file.display())))?,
                ]
            } else {
                // `import FILE NAME` is `import FILE --name NAME` for an archive.
                if name.is_some() && rename.is_some() {
                    anyhow::bail!("give the image's name once: either NAME or --name");
                }
                let rename = rename.or(name);
                let platform = platform.as_deref().map(Platform::parse).transpose().map_err(wire)?;
                let opts = ImportOptions {
                    name: rename,
                    base_name,
                    platform,
                    no_unpack,
                    snapshotter: Some(snapshotter),
                };
                import_archive(&ctx.services, &ctx.namespace, &file, &opts)
                    .await
                    .map_err(job_error(format!("import {}", file.display())))?
            };
            super::job_output::made(ctx, &imported)?;
        }
        DistributionCmd::Pull {
            reference,
            registry,
            platform,
            all_platforms,
            no_unpack,
            snapshotter,
            parallel,
            quiet,
        } => {
            let started = Instant::now();
            let platform = platform.as_deref().map(Platform::parse).transpose().map_err(wire)?;
            let opts = PullOptions {
                registry: registry.options()?,
                platform,
                no_unpack,
                all_platforms,
                snapshotter: Some(snapshotter),
                parallel,
                progress: progress(quiet),
            };
            let i = pull(&ctx.services, &ctx.namespace, &reference, &opts)
                .await
                .map_err(job_error(format!("pull {reference}")))?;
            if !quiet {
                eprintln!("pulled in {:.2} s", started.elapsed().as_secs_f64());
            }
            super::job_output::made(ctx, &[i])?;
        }
        DistributionCmd::Push { name, remote, registry, quiet } => {
            let name = ctx.image_name(&name).await;
            let opts = PushOptions { registry: registry.options()?, progress: progress(quiet) };
            let d = push(&ctx.services, &ctx.namespace, &name, remote.as_deref(), &opts)
                .await
                .map_err(job_error(format!("push {name}")))?;
            println!("{} {}", remote.unwrap_or(name), d.digest);
        }
        DistributionCmd::Export { file, names } => {
            let mut full = Vec::new();
            for n in names {
                full.push(ctx.image_name(&n).await);
            }
            export(&ctx.services, &ctx.namespace, &full, &file)
                .await
                .map_err(job_error(format!("export {}", file.display())))?;
        }
        DistributionCmd::Check { names, snapshotter } => {
            let names = if names.is_empty() {
                let mut s = ctx
                    .services
                    .metadata
                    .stream(ListImages(ListIn { namespace: ctx.namespace.clone(), filters: vec![] }))
                    .await
                    .map_err(wire)?;
                let mut all = Vec::new();
                while let Some(page) = s.next().await {
                    all.extend(page.map_err(wire)?.into_iter().map(|i| i.name));
                }
                all
            } else {
                let mut full = Vec::new();
                for n in names {
                    full.push(ctx.image_name(&n).await);
                }
                full
            };
            let mut rows = Vec::new();
            for n in names {
                let r = check(&ctx.services, &ctx.namespace, &n, &snapshotter).await.map_err(wire)?;
                rows.push(super::job_output::CheckRow::new(&n, &r));
            }
            super::job_output::checked(ctx, &rows)?;
            if !rows.iter().all(|r| r.complete) {
                return Ok(ExitCode::FAILURE);
            }
        }
        DistributionCmd::Unpack { name, snapshotter } => {
            let name = ctx.image_name(&name).await;
            let u = berth_client::unpack::unpack(&ctx.services, &ctx.namespace, &name, &snapshotter)
                .await
                .map_err(job_error(format!("unpack {name}")))?;
            println!("{name}\t{} of {} layers unpacked now", u.extracted, u.layers);
        }
        DistributionCmd::Mount { name, dir, snapshotter } => {
            let name = ctx.image_name(&name).await;
            mount_image(&ctx.services, &ctx.namespace, &name, &dir, &snapshotter).await.map_err(wire)?;
            println!("{}", dir.display());
        }
        DistributionCmd::Unmount { dir, snapshotter } => {
            unmount_image(&ctx.services, &ctx.namespace, &dir, &snapshotter).await.map_err(wire)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
