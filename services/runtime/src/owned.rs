//! A container's own sandbox (`RunOptions::own_sandbox`: `berth run --network`, `-p`,
//! `--dns`, `--add-host`): a sandbox made for one container, so a standalone container gets
//! what a pod gets (a network namespace attached to a CNI network, port mappings, its own
//! `resolv.conf`, `hosts` and `hostname`) from the same code.
//!
//! The sandbox has the container's id and the label [`LABEL_SANDBOX_OWNER`]` = <id>`. It is
//! made before the container (a failed container create removes it again) and removed when
//! the container is, whoever removes it (`berth rm`, `run --rm`, rm-on-exit, a vanished
//! `Guard` client): after its task is deleted and before its record, so a failed detach keeps
//! the container for another try. One whose container no longer exists (a crash between the
//! two) is removed at the service's start.

use std::collections::BTreeMap;

use berth_ipc::metadata::{ByName, GetContainer, GetSandbox as MdGet, ListIn, ListNamespaces};
use berth_ipc::names::{validate_identifier, validate_namespace};
use berth_ipc::runtime::{CreateContainer, CreateSandbox, DnsConfig, LABEL_SANDBOX_OWNER};
use berth_ipc::{Code, Error, Result};

use crate::Runtime;

/// The host's DNS settings as a container in a network namespace of its own can use them:
/// `/etc/resolv.conf`'s, or systemd-resolved's upstream file when the host's names only a
/// loopback stub (127.0.0.53), with loopback servers left out (unreachable from there). No
/// public resolver is put in their place: berth sends no query anywhere it was not told to.
fn host_dns() -> DnsConfig {
    let parse = |path: &str| {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let mut dns = DnsConfig::default();
        let mut loopback = false;
        for line in text.lines() {
            let mut words = line.split_whitespace();
            match words.next() {
                Some("nameserver") => match words.next().map(|w| (w, w.parse::<std::net::IpAddr>())) {
                    Some((_, Ok(ip))) if ip.is_loopback() => loopback = true,
                    Some((w, Ok(_))) => dns.servers.push(w.to_string()),
                    _ => {}
                },
                Some("search" | "domain") => dns.searches = words.map(str::to_string).collect(),
                Some("options") => dns.options.extend(words.map(str::to_string)),
                _ => {}
            }
        }
        (dns, loopback)
    };
    let (dns, loopback) = parse("/etc/resolv.conf");
    if dns.servers.is_empty() && loopback {
        let (upstream, _) = parse("/run/systemd/resolve/resolv.conf");
        if !upstream.servers.is_empty() {
            return DnsConfig { servers: upstream.servers, ..dns };
        }
    }
    dns
}

impl Runtime {
    /// `CreateContainer` with `own_sandbox`: the sandbox, then the container in it.
    pub(crate) async fn create_owning(
        &self,
        mut req: CreateContainer,
    ) -> Result<berth_ipc::metadata::Container> {
        validate_namespace(&req.namespace)?;
        validate_identifier("container id", &req.id)?;
        let (ns, id) = (req.namespace.clone(), req.id.clone());
        if req.options.sandbox.is_some() {
            return Err(Error::invalid(format!(
                "container {id}: own_sandbox and sandbox exclude each other"
            )));
        }
        let mut spec = req.options.own_sandbox.clone().unwrap_or_default();
        // `bridge` is the default network, whatever its name (as Docker's and nerdctl's).
        if spec.network.as_deref() == Some("bridge") {
            spec.network = Some(self.network.default_network.clone());
        }
        spec.cni_id = Some(crate::network::fresh_cni_id(&ns, &id));
        if spec.dns.is_none() && !spec.net_host {
            spec.dns = Some(host_dns());
        }
        // One create of an owning container of this id at a time (the container's own claim
        // is taken by the container create, later).
        let _claim = self.claims.take("owned sandbox", &ns, &id)?;
        match self.metadata.call(GetContainer(ByName { namespace: ns.clone(), name: id.clone() })).await {
            Ok(_) => return Err(Error::already_exists(format!("container {id}: already exists"))),
            Err(e) if e.is(Code::NotFound) => {}
            Err(e) => return Err(e),
        }
        // No container of the id: an owned sandbox of the id is what a crash left.
        self.remove_owned_sandbox(&ns, &id).await?;
        let create = CreateSandbox {
            namespace: ns.clone(),
            id: id.clone(),
            runtime: req.runtime.clone(),
            spec,
            labels: BTreeMap::from([(LABEL_SANDBOX_OWNER.to_string(), id.clone())]),
            extensions: BTreeMap::new(),
        };
        self.make_sandbox(create).await.map_err(|e| {
            if e.is(Code::AlreadyExists) {
                Error::already_exists(format!("container {id}: a sandbox {id} exists and is not its own"))
            } else {
                e.context(format!("container {id}"))
            }
        })?;
        berth_ipc::failpoint!("runtime.owned.after_sandbox");
        req.options.sandbox = Some(id.clone());
        match self.create_plain(req).await {
            Ok(c) => Ok(c),
            Err(e) => {
                if let Err(e2) = self.remove_owned_sandbox(&ns, &id).await {
                    tracing::warn!(namespace = %ns, id, error = %e2, "own sandbox not removed; removed at the next start");
                }
                Err(e)
            }
        }
    }

    /// Removes the sandbox container `id` owns, if it has one.
    pub(crate) async fn remove_owned_sandbox(&self, ns: &str, id: &str) -> Result<()> {
        let record = match self.metadata.call(MdGet(ByName { namespace: ns.into(), name: id.into() })).await {
            Ok(r) => r,
            Err(e) if e.is(Code::NotFound) => return Ok(()),
            Err(e) => return Err(e),
        };
        if record.labels.get(LABEL_SANDBOX_OWNER).map(String::as_str) != Some(id) {
            return Ok(());
        }
        self.drop_sandbox(ns, &record).await.map_err(|e| e.context(format!("container {id}: its sandbox")))
    }

    /// At start: owned sandboxes whose container is gone are removed.
    pub async fn reconcile_owned_sandboxes(&self) {
        let Ok(namespaces) = self.metadata.call(ListNamespaces).await else { return };
        for ns in namespaces {
            let filter = format!("labels.\"{LABEL_SANDBOX_OWNER}\"");
            let list = berth_ipc::metadata::ListSandboxes(ListIn {
                namespace: ns.name.clone(),
                filters: vec![filter],
            });
            let Ok(mut pages) = self.metadata.stream(list).await else { continue };
            let mut records = Vec::new();
            while let Some(Ok(page)) = pages.next().await {
                records.extend(page);
            }
            for record in records {
                let Some(owner) = record.labels.get(LABEL_SANDBOX_OWNER).cloned() else { continue };
                let by = ByName { namespace: ns.name.clone(), name: owner.clone() };
                if let Err(e) = self.metadata.call(GetContainer(by)).await
                    && e.is(Code::NotFound)
                {
                    tracing::warn!(namespace = %ns.name, id = %record.id, "removing a sandbox whose container is gone");
                    if let Err(e) = self.drop_sandbox(&ns.name, &record).await {
                        tracing::warn!(namespace = %ns.name, id = %record.id, error = %e, "not removed");
                    }
                }
            }
        }
    }
}
