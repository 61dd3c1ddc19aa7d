//! `UpdateResources`: a container's cgroup limits changed after it was made. The new limits
//! go into the container's spec first (so a task created later gets them), then into its
//! task's config and, through the OCI runtime's `update`, into the task's cgroup.

use berth_ipc::metadata::{ByName, GetContainer, UpdateContainer};
use berth_ipc::runtime::{TaskRef, UpdateResources};
use berth_ipc::{Code, Error, Result};
use oci_spec::runtime::{LinuxResources, Spec};

use crate::Runtime;
use crate::oci_runtime::{runtime_command, runtime_root};
use crate::spec::host::Host;
use crate::spec::resources;
use crate::tasks::check;
use berth_service_kit::blocking_value;

impl Runtime {
    /// `UpdateResources`.
    pub async fn update_resources(&self, req: UpdateResources) -> Result<()> {
        let task = TaskRef::init(&req.namespace, &req.id);
        check(&task)?;
        let (ns, id) = (req.namespace.as_str(), req.id.as_str());
        let mut container = self
            .metadata
            .call(GetContainer(ByName { namespace: ns.into(), name: id.into() }))
            .await
            .map_err(|e| {
                if e.is(Code::NotFound) { Error::not_found(format!("container {id}: not found")) } else { e }
            })?;
        let host = Host::current();
        let (spec, limits) = updated(&container.spec, &req, &host)?;
        container.spec = spec;
        self.metadata
            .call(UpdateContainer { namespace: ns.into(), container, paths: vec!["spec".into()] })
            .await?;

        let bundle = self.bundle(ns, id);
        let Some(record) = bundle.read_record() else { return Ok(()) };
        let config = bundle.config();
        let root = runtime_root(&self.state, &record.runtime, ns);
        let (id, runtime) = (id.to_string(), record.runtime.clone());
        blocking_value("runtime worker", move || {
            // The task's own config, which exec and metrics read, says what its cgroup holds.
            if let Ok(raw) = std::fs::read(&config) {
                let mut spec: Spec = serde_json::from_slice(&raw)
                    .map_err(|e| Error::internal(format!("{}: {e}", config.display())))?;
                let mut linux = spec.linux().clone().unwrap_or_default();
                linux.set_resources(Some(limits.clone()));
                spec.set_linux(Some(linux));
                let json = serde_json::to_vec(&spec).map_err(|e| Error::internal(format!("spec: {e}")))?;
                crate::bundle::write_durably(&config, &json)
                    .map_err(|e| Error::io_at("write", &config, e))?;
            }
            run_update(&runtime, &root, &id, &limits)
        })
        .await?
    }
}

/// The spec JSON `raw` with `req`'s limits, and the limits as the runtime's `update` takes
/// them.
fn updated(raw: &[u8], req: &UpdateResources, host: &Host) -> Result<(Vec<u8>, LinuxResources)> {
    let id = &req.id;
    let mut spec: Spec =
        serde_json::from_slice(raw).map_err(|e| Error::internal(format!("container {id}: spec: {e}")))?;
    let mut linux = spec.linux().clone().unwrap_or_default();
    let mut limits = linux.resources().clone().unwrap_or_default();
    resources::update(&mut limits, &req.resources, host).map_err(|e| e.context(format!("container {id}")))?;
    linux.set_resources(Some(limits.clone()));
    spec.set_linux(Some(linux));
    let json =
        serde_json::to_vec(&spec).map_err(|e| Error::internal(format!("container {id}: spec: {e}")))?;
    Ok((json, limits))
}

/// `<runtime> update --resources FILE ID`: the task's cgroup gets `limits`. A task whose
/// process has exited has nothing to update.
fn run_update(runtime: &str, root: &std::path::Path, id: &str, limits: &LinuxResources) -> Result<()> {
    let json = serde_json::to_vec(limits).map_err(|e| Error::internal(format!("resources: {e}")))?;
    let file = root.join(format!(".update-{id}.json"));
    std::fs::write(&file, json).map_err(|e| Error::io_at("write", &file, e))?;
    let out = runtime_command(runtime, root).arg("update").arg("--resources").arg(&file).arg(id).output();
    let _ = std::fs::remove_file(&file);
    let out = out.map_err(|e| Error::internal(format!("{runtime} update {id}: {e}")))?;
    if out.status.success() {
        return Ok(());
    }
    let err = crate::shim::runtime_error(runtime, "update", &out.stderr);
    if err.is(Code::NotFound) || err.is(Code::FailedPrecondition) {
        // Stopped (or gone) between the record and the call: its spec holds the limits.
        return Ok(());
    }
    Err(err.context(format!("container {id}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_ipc::runtime::ResourceUpdate;

    fn host() -> Host {
        Host {
            last_cap: 40,
            bounding: u64::MAX,
            oom_score_adj: 0,
            cgroup_v2: true,
            dev: "/dev".into(),
            mountinfo: "/proc/self/mountinfo".into(),
        }
    }

    fn request(resources: ResourceUpdate) -> UpdateResources {
        UpdateResources { namespace: "k8s.io".into(), id: "c1".into(), resources }
    }

    fn spec_with(limits: LinuxResources) -> Vec<u8> {
        let mut spec = Spec::default();
        let mut linux = spec.linux().clone().unwrap_or_default();
        linux.set_resources(Some(limits));
        spec.set_linux(Some(linux));
        serde_json::to_vec(&spec).expect("test value")
    }

    #[test]
    fn set_fields_replace_and_unset_ones_stay() {
        let mut start = LinuxResources::default();
        let before = ResourceUpdate { memory: Some(64 << 20), cpu_shares: Some(512), ..Default::default() };
        resources::update(&mut start, &before, &host()).expect("test value");
        let raw = spec_with(start);
        let req = request(ResourceUpdate {
            memory: Some(128 << 20),
            cpu_quota: Some(20_000),
            ..Default::default()
        });
        let (json, limits) = updated(&raw, &req, &host()).expect("test value");
        assert_eq!(limits.memory().as_ref().and_then(|m| m.limit()), Some(128 << 20));
        let cpu = limits.cpu().clone().expect("test value");
        assert_eq!((cpu.shares(), cpu.quota()), (Some(512), Some(20_000)), "shares kept, quota set");
        let back: Spec = serde_json::from_slice(&json).expect("test value");
        assert_eq!(
            back.linux().as_ref().expect("test value").resources().as_ref(),
            Some(&limits),
            "the spec holds them"
        );
    }

    #[test]
    fn unified_files_merge_over_the_specs() {
        let mut start = LinuxResources::default();
        let first = ResourceUpdate {
            unified: [("memory.high".to_string(), "100M".to_string())].into(),
            ..Default::default()
        };
        resources::update(&mut start, &first, &host()).expect("test value");
        let req = request(ResourceUpdate {
            unified: [("pids.max".to_string(), "10".to_string())].into(),
            ..Default::default()
        });
        let (_, limits) = updated(&spec_with(start), &req, &host()).expect("test value");
        let unified = limits.unified().clone().expect("test value");
        assert_eq!(unified.get("memory.high").map(String::as_str), Some("100M"));
        assert_eq!(unified.get("pids.max").map(String::as_str), Some("10"));
    }

    #[test]
    fn a_bad_limit_is_refused_naming_the_container() {
        let raw = spec_with(LinuxResources::default());
        let err =
            updated(&raw, &request(ResourceUpdate { cpu_period: Some(5), ..Default::default() }), &host())
                .expect_err("refused");
        assert!(err.is(Code::InvalidArgument), "{err}");
        assert!(err.message.contains("c1") && err.message.contains("cpu period"), "{err}");
        let v1 = Host { cgroup_v2: false, ..host() };
        let unified =
            ResourceUpdate { unified: [("memory.high".into(), "1M".into())].into(), ..Default::default() };
        assert!(updated(&raw, &request(unified), &v1).is_err(), "v2 files on a v1 host");
    }
}
