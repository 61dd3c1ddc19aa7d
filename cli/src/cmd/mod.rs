//! One module per command group.

pub mod commit;
pub mod config;
pub mod containers;
pub mod content;
pub mod distribution;
pub mod events;
pub mod gc;
pub mod image_size;
pub mod images;
pub mod job_output;
pub mod lease_resources;
pub mod leases;
pub mod logs;
pub mod metrics;
pub mod namespaces;
pub mod reach;
pub mod run;
pub mod services;
pub mod sigproxy;
pub mod snapshots;
pub mod task_output;
pub mod tasks;
pub mod tty;
pub mod version;

use std::time::Duration;

use berth_client::Services;
use berth_ipc::ClientOptions;

use crate::Cli;
use crate::output::Format;

/// What every command needs: where the services are, the namespace, the output format.
pub struct Ctx {
    /// The namespace (`-n`).
    pub namespace: String,
    /// `--format`.
    pub format: Format,
    /// Clients of every service.
    pub services: Services,
}

impl Ctx {
    /// The stored name of the image the user typed as `name` (see
    /// [`berth_client::names::image_name`]: the one normalization every command uses).
    pub async fn image_name(&self, name: &str) -> String {
        berth_client::names::image_name(&self.services, &self.namespace, name).await
    }

    /// The stored name of image `name`, unpacked (on the runtime's snapshotter) if it was
    /// not: what `run` and `containers create` start from, as ctr does.
    pub async fn runnable_image(&self, name: &str) -> anyhow::Result<String> {
        let name = self.image_name(name).await;
        berth_client::unpack::unpack(&self.services, &self.namespace, &name, "overlayfs")
            .await
            .map_err(namespaces::wire)?;
        Ok(name)
    }

    /// The context for `cli`'s global flags.
    pub fn new(cli: &Cli) -> Self {
        let options = ClientOptions {
            deadline: Duration::from_secs(cli.timeout),
            client_name: format!("berth[{}]", std::process::id()),
        };
        Ctx {
            namespace: cli.namespace.clone(),
            format: cli.format,
            services: Services::new(&cli.state, options),
        }
    }
}
