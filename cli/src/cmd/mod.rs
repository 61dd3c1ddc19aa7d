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
pub mod network;
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

    /// `CreateContainer` of `request` (its image as the user typed it, normalized here). An
    /// image stored but not unpacked on the runtime's snapshotter is unpacked, as ctr does,
    /// and the create tried once more: only after the create found a snapshot missing, so
    /// the common path costs no reads beyond the runtime's own.
    pub async fn create_container(
        &self,
        mut request: berth_ipc::runtime::CreateContainer,
    ) -> anyhow::Result<berth_ipc::metadata::Container> {
        request.image = self.image_name(&request.image).await;
        let runtime = &self.services.runtime;
        match runtime.call(request.clone()).await {
            Err(e) if e.is(berth_ipc::Code::NotFound) => {
                let unpacked = berth_client::unpack::unpack(
                    &self.services,
                    &self.namespace,
                    &request.image,
                    "overlayfs",
                )
                .await
                .map_err(namespaces::wire)?;
                if unpacked.extracted == 0 {
                    return Err(namespaces::wire(e));
                }
                runtime.call(request).await.map_err(namespaces::wire)
            }
            r => r.map_err(namespaces::wire),
        }
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
