//! A CRI `ContainerConfig` as berth's [`RunOptions`]: command, environment, user, mounts,
//! devices, resources and the Kubernetes security context. What the kubelet asks that berth
//! cannot do is refused here, naming the field, before anything is made.

use std::path::Path;

use berth_ipc::runtime::{
    BindMount, Device, IdMapping, IdMappings, LinuxOptions, NamespaceMode, Propagation, ResourceUpdate,
    RunOptions,
};
use berth_ipc::{Error, Result};
use k8s_cri::v1::security_profile::ProfileType;
use k8s_cri::v1::{ContainerConfig, LinuxContainerSecurityContext, MountPropagation, SecurityProfile};

/// The run options of `config` in pod `sandbox`.
pub fn run_options(config: &ContainerConfig, sandbox: &str) -> Result<RunOptions> {
    let name = config.metadata.as_ref().map(|m| m.name.as_str()).unwrap_or_default();
    let what = format!("container {name:?}");
    let linux = config.linux.clone().unwrap_or_default();
    let sc = linux.security_context.clone().unwrap_or_default();
    let resources = linux.resources.clone().unwrap_or_default();

    let mut env = Vec::with_capacity(config.envs.len());
    for kv in &config.envs {
        if kv.key.is_empty() || kv.key.contains('=') {
            return Err(Error::invalid(format!(
                "{what}: environment variable name {:?} is not valid",
                kv.key
            )));
        }
        env.push(format!("{}={}", kv.key, kv.value));
    }
    if !config.working_dir.is_empty() && !config.working_dir.starts_with('/') {
        return Err(Error::invalid(format!("{what}: working dir {:?} must be absolute", config.working_dir)));
    }
    let mut mounts = Vec::with_capacity(config.mounts.len());
    for m in &config.mounts {
        mounts.push(mount(m).map_err(|e| e.context(&what))?);
    }
    let memory = u64::try_from(resources.memory_limit_in_bytes).ok().filter(|m| *m > 0);
    let privileged = sc.privileged;
    let seccomp = if privileged {
        Some("unconfined".to_string())
    } else {
        seccomp(&sc).map_err(|e| e.context(&what))?
    };
    let options = RunOptions {
        entrypoint: (!config.command.is_empty()).then(|| config.command.clone()),
        args: (!config.args.is_empty()).then(|| config.args.clone()),
        env,
        cwd: (!config.working_dir.is_empty()).then(|| config.working_dir.clone()),
        user: user(&sc).map_err(|e| e.context(&what))?,
        hostname: None,
        memory,
        cpus_milli: None,
        pids_limit: None,
        read_only: sc.readonly_rootfs,
        net_host: false,
        mounts,
        terminal: config.tty,
        stdin: config.stdin,
        seccomp,
        no_new_privileges: sc.no_new_privs,
        sandbox: Some(sandbox.to_string()),
        own_sandbox: None,
        linux: linux_options(config, &sc, &resources).map_err(|e| e.context(&what))?,
        // Set from the pod's log directory by the container create.
        log_path: None,
    };
    Ok(options)
}

/// `user` of the run options: `uid[:gid]` or `name[:gid]`; a group without a user is
/// refused, as the kubelet's own validation does.
fn user(sc: &LinuxContainerSecurityContext) -> Result<Option<String>> {
    let group = sc.run_as_group.as_ref().map(|g| g.value);
    if let Some(g) = group
        && u32::try_from(g).is_err()
    {
        return Err(Error::invalid(format!("run as group {g}: not a valid gid")));
    }
    let base = if !sc.run_as_username.is_empty() {
        Some(sc.run_as_username.clone())
    } else if let Some(u) = &sc.run_as_user {
        let uid = u32::try_from(u.value)
            .map_err(|_| Error::invalid(format!("run as user {}: not a valid uid", u.value)))?;
        Some(uid.to_string())
    } else {
        None
    };
    match (base, group) {
        (None, Some(_)) => Err(Error::invalid(
            "user group is specified without user (run_as_group needs run_as_user or run_as_username)",
        )),
        (Some(u), Some(g)) => Ok(Some(format!("{u}:{g}"))),
        (u, None) => Ok(u),
    }
}

/// The seccomp choice: Kubernetes' default with no profile named is unconfined;
/// `RuntimeDefault` is berth's default profile; `Localhost` reads the profile's file. The
/// deprecated `seccomp_profile_path` is still what older kubelets send.
#[allow(deprecated)]
fn seccomp(sc: &LinuxContainerSecurityContext) -> Result<Option<String>> {
    let profile = match (&sc.seccomp, sc.seccomp_profile_path.as_str()) {
        (Some(p), _) => p.clone(),
        (None, "" | "unconfined") => return Ok(Some("unconfined".into())),
        (None, "runtime/default" | "docker/default") => return Ok(None),
        (None, path) => match path.strip_prefix("localhost/") {
            Some(p) => {
                SecurityProfile { profile_type: ProfileType::Localhost as i32, localhost_ref: p.to_string() }
            }
            None => return Err(Error::invalid(format!("seccomp profile {path:?}: unknown"))),
        },
    };
    match ProfileType::try_from(profile.profile_type) {
        Ok(ProfileType::RuntimeDefault) => Ok(None),
        Ok(ProfileType::Unconfined) => Ok(Some("unconfined".into())),
        Ok(ProfileType::Localhost) => {
            let path = Path::new(&profile.localhost_ref);
            if !path.is_absolute() {
                return Err(Error::invalid(format!(
                    "seccomp profile {:?}: must be an absolute path",
                    profile.localhost_ref
                )));
            }
            let text = std::fs::read_to_string(path).map_err(|e| {
                Error::invalid(format!("seccomp profile {}: cannot be read: {e}", path.display()))
            })?;
            Ok(Some(text))
        }
        Err(_) => Err(Error::invalid(format!("seccomp profile type {}: unknown", profile.profile_type))),
    }
}

/// A CRI mount as a bind mount. The host path's symlinks are resolved (a hostPath volume may
/// be a link); a missing host path is made as a directory, as containerd does.
fn mount(m: &k8s_cri::v1::Mount) -> Result<BindMount> {
    if m.image.as_ref().is_some_and(|i| !i.image.is_empty()) {
        return Err(Error::new(
            berth_ipc::Code::Unimplemented,
            format!("mount {:?}: image volumes are not supported", m.container_path),
        ));
    }
    if !m.container_path.starts_with('/') {
        return Err(Error::invalid(format!("mount {:?}: container path must be absolute", m.container_path)));
    }
    if Path::new(&m.container_path).components().any(|c| matches!(c, std::path::Component::ParentDir)) {
        return Err(Error::invalid(format!(
            "mount {:?}: container path must not contain ..",
            m.container_path
        )));
    }
    if !m.host_path.starts_with('/') {
        return Err(Error::invalid(format!(
            "mount {:?}: host path {:?} must be absolute",
            m.container_path, m.host_path
        )));
    }
    if !m.uid_mappings.is_empty() || !m.gid_mappings.is_empty() {
        return Err(Error::new(
            berth_ipc::Code::Unimplemented,
            format!("mount {:?}: id-mapped mounts are not supported", m.container_path),
        ));
    }
    if m.recursive_read_only && !m.readonly {
        return Err(Error::invalid(format!(
            "mount {:?}: recursive read-only needs read-only",
            m.container_path
        )));
    }
    let host = Path::new(&m.host_path);
    if std::fs::symlink_metadata(host).is_err() {
        std::fs::create_dir_all(host).map_err(|e| Error::io_at("mount host path", host, e))?;
    }
    let source = std::fs::canonicalize(host).map_err(|e| Error::io_at("mount host path", host, e))?;
    let propagation = match MountPropagation::try_from(m.propagation) {
        Ok(MountPropagation::PropagationPrivate) => Propagation::Private,
        Ok(MountPropagation::PropagationHostToContainer) => Propagation::HostToContainer,
        Ok(MountPropagation::PropagationBidirectional) => Propagation::Bidirectional,
        Err(_) => {
            return Err(Error::invalid(format!(
                "mount {:?}: propagation {} unknown",
                m.container_path, m.propagation
            )));
        }
    };
    Ok(BindMount {
        source: source.display().to_string(),
        destination: m.container_path.clone(),
        read_only: m.readonly,
        propagation,
        recursive_read_only: m.recursive_read_only,
    })
}

fn namespace_mode(mode: i32, target: &str) -> Result<NamespaceMode> {
    match k8s_cri::v1::NamespaceMode::try_from(mode) {
        Ok(k8s_cri::v1::NamespaceMode::Pod) => Ok(NamespaceMode::Pod),
        Ok(k8s_cri::v1::NamespaceMode::Container) => Ok(NamespaceMode::Container),
        Ok(k8s_cri::v1::NamespaceMode::Node) => Ok(NamespaceMode::Node),
        Ok(k8s_cri::v1::NamespaceMode::Target) if !target.is_empty() => {
            Ok(NamespaceMode::Target(target.to_string()))
        }
        Ok(k8s_cri::v1::NamespaceMode::Target) => {
            Err(Error::invalid("namespace mode TARGET needs a target id"))
        }
        Err(_) => Err(Error::invalid(format!("namespace mode {mode}: unknown"))),
    }
}

/// The limits an `UpdateContainerResources` sets: zero (or empty) fields are not set, as
/// in a create. Hugepage limits and a swap limit apart from memory are refused.
pub fn resource_update(r: &k8s_cri::v1::LinuxContainerResources) -> Result<ResourceUpdate> {
    if r.hugepage_limits.iter().any(|h| h.limit > 0) {
        return Err(Error::new(berth_ipc::Code::Unimplemented, "hugepage limits are not supported"));
    }
    let positive = |v: i64| u64::try_from(v).ok().filter(|v| *v > 0);
    let non_empty = |s: &str| (!s.is_empty()).then(|| s.to_string());
    Ok(ResourceUpdate {
        memory: positive(r.memory_limit_in_bytes),
        cpus_milli: None,
        pids_limit: None,
        cpu_shares: positive(r.cpu_shares),
        cpu_period: positive(r.cpu_period),
        cpu_quota: (r.cpu_quota > 0).then_some(r.cpu_quota),
        cpuset_cpus: non_empty(&r.cpuset_cpus),
        cpuset_mems: non_empty(&r.cpuset_mems),
        unified: r.unified.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
    })
}

fn linux_options(
    config: &ContainerConfig,
    sc: &LinuxContainerSecurityContext,
    r: &k8s_cri::v1::LinuxContainerResources,
) -> Result<LinuxOptions> {
    let ns = sc.namespace_options.clone().unwrap_or_default();
    let user_ns = user_namespace(ns.userns_options.as_ref())?;
    let caps = sc.capabilities.clone().unwrap_or_default();
    let mut groups = Vec::with_capacity(sc.supplemental_groups.len());
    for g in &sc.supplemental_groups {
        groups.push(
            u32::try_from(*g)
                .map_err(|_| Error::invalid(format!("supplemental group {g}: not a valid gid")))?,
        );
    }
    let mut devices = Vec::with_capacity(config.devices.len());
    for d in &config.devices {
        if !d.host_path.starts_with('/') || !d.container_path.starts_with('/') {
            return Err(Error::invalid(format!("device {:?}: paths must be absolute", d.host_path)));
        }
        if !d.permissions.chars().all(|c| "rwm".contains(c)) {
            return Err(Error::invalid(format!(
                "device {}: permissions {:?} are not a subset of rwm",
                d.host_path, d.permissions
            )));
        }
        devices.push(Device {
            host_path: d.host_path.clone(),
            container_path: d.container_path.clone(),
            permissions: if d.permissions.is_empty() { "rwm".into() } else { d.permissions.clone() },
        });
    }
    let limits = resource_update(r)?;
    Ok(LinuxOptions {
        privileged: sc.privileged,
        cap_add: caps.add_capabilities,
        cap_drop: caps.drop_capabilities,
        supplemental_groups: groups,
        strict_groups: sc.supplemental_groups_policy == k8s_cri::v1::SupplementalGroupsPolicy::Strict as i32,
        masked_paths: (!sc.masked_paths.is_empty()).then(|| sc.masked_paths.clone()),
        readonly_paths: (!sc.readonly_paths.is_empty()).then(|| sc.readonly_paths.clone()),
        pid: namespace_mode(ns.pid, &ns.target_id)?,
        ipc: namespace_mode(ns.ipc, "")?,
        network: namespace_mode(ns.network, "")?,
        devices,
        oom_score_adj: (r.oom_score_adj != 0)
            .then(|| i32::try_from(r.oom_score_adj.clamp(-1000, 1000)).unwrap_or(0)),
        cpu_shares: limits.cpu_shares,
        cpu_period: limits.cpu_period,
        cpu_quota: limits.cpu_quota,
        cpuset_cpus: limits.cpuset_cpus,
        cpuset_mems: limits.cpuset_mems,
        unified: limits.unified,
        annotations: config.annotations.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        user_ns,
    })
}

/// The user namespace a pod or container asks for: `None` for the host's (no options, or
/// mode NODE), the kubelet's mappings for POD (which must have some, and pass the kernel's
/// checks). CONTAINER and TARGET are not modes the kubelet uses for user namespaces.
pub fn user_namespace(u: Option<&k8s_cri::v1::UserNamespace>) -> Result<Option<IdMappings>> {
    let Some(u) = u else { return Ok(None) };
    match k8s_cri::v1::NamespaceMode::try_from(u.mode) {
        Ok(k8s_cri::v1::NamespaceMode::Node) => Ok(None),
        Ok(k8s_cri::v1::NamespaceMode::Pod) => {
            if u.uids.is_empty() || u.gids.is_empty() {
                return Err(Error::invalid(
                    "user namespace mode POD needs uid and gid mappings (the kubelet's)",
                ));
            }
            let map = |ms: &[k8s_cri::v1::IdMapping]| {
                ms.iter()
                    .map(|m| IdMapping { container_id: m.container_id, host_id: m.host_id, length: m.length })
                    .collect()
            };
            let maps = IdMappings { uids: map(&u.uids), gids: map(&u.gids) };
            maps.validate("user namespace")?;
            Ok(Some(maps))
        }
        Ok(mode) => Err(Error::invalid(format!(
            "user namespace mode {} is not supported (POD or NODE)",
            mode.as_str_name()
        ))),
        Err(_) => Err(Error::invalid(format!("user namespace mode {}: unknown", u.mode))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_cri::v1::{Int64Value, LinuxContainerConfig};

    fn with_sc(sc: LinuxContainerSecurityContext) -> ContainerConfig {
        ContainerConfig {
            linux: Some(LinuxContainerConfig { security_context: Some(sc), resources: None }),
            ..ContainerConfig::default()
        }
    }

    #[test]
    fn users_and_groups() {
        let sc = LinuxContainerSecurityContext {
            run_as_user: Some(Int64Value { value: 1000 }),
            run_as_group: Some(Int64Value { value: 2000 }),
            ..Default::default()
        };
        assert_eq!(run_options(&with_sc(sc), "p").expect("ok").user.as_deref(), Some("1000:2000"));
        let sc = LinuxContainerSecurityContext { run_as_username: "nobody".into(), ..Default::default() };
        assert_eq!(run_options(&with_sc(sc), "p").expect("ok").user.as_deref(), Some("nobody"));
        let sc = LinuxContainerSecurityContext {
            run_as_group: Some(Int64Value { value: 1 }),
            ..Default::default()
        };
        let e = run_options(&with_sc(sc), "p").expect_err("group without user");
        assert!(e.message.contains("without user"), "{e}");
    }

    #[test]
    fn seccomp_defaults_to_unconfined_as_kubernetes() {
        let opts = run_options(&with_sc(LinuxContainerSecurityContext::default()), "p").expect("ok");
        assert_eq!(opts.seccomp.as_deref(), Some("unconfined"));
        let sc = LinuxContainerSecurityContext {
            seccomp: Some(SecurityProfile {
                profile_type: ProfileType::RuntimeDefault as i32,
                localhost_ref: String::new(),
            }),
            ..Default::default()
        };
        assert_eq!(run_options(&with_sc(sc), "p").expect("ok").seccomp, None);
    }

    #[test]
    fn mounts_are_checked() {
        let bad = k8s_cri::v1::Mount {
            container_path: "rel".into(),
            host_path: "/tmp".into(),
            ..Default::default()
        };
        let config = ContainerConfig { mounts: vec![bad], ..ContainerConfig::default() };
        assert!(run_options(&config, "p").expect_err("relative").message.contains("must be absolute"));
        let up = k8s_cri::v1::Mount {
            container_path: "/a/../../etc".into(),
            host_path: "/tmp".into(),
            ..Default::default()
        };
        let config = ContainerConfig { mounts: vec![up], ..ContainerConfig::default() };
        assert!(run_options(&config, "p").is_err());
    }

    #[test]
    fn user_namespace_modes() {
        use k8s_cri::v1::{IdMapping as CriMap, NamespaceMode as Mode, UserNamespace};
        let map = |host_id, length| vec![CriMap { host_id, container_id: 0, length }];
        let u = |mode: Mode, uids, gids| UserNamespace { mode: mode as i32, uids, gids };
        assert_eq!(user_namespace(None).expect("none"), None);
        assert_eq!(user_namespace(Some(&u(Mode::Node, vec![], vec![]))).expect("node"), None);
        let pod = user_namespace(Some(&u(Mode::Pod, map(100_000, 65536), map(100_000, 65536)))).expect("pod");
        assert_eq!(pod.and_then(|m| m.host_uid(1)), Some(100_001));
        let refused = [
            (u(Mode::Pod, vec![], map(1, 1)), "user namespace mode POD needs uid and gid mappings"),
            (u(Mode::Pod, map(1, 1), map(1, 0)), "user namespace: gid mapping 0:1:0 has length 0"),
            (u(Mode::Container, vec![], vec![]), "user namespace mode CONTAINER is not supported"),
            (UserNamespace { mode: 9, uids: vec![], gids: vec![] }, "user namespace mode 9: unknown"),
        ];
        for (opts, want) in refused {
            let e = user_namespace(Some(&opts)).expect_err(want);
            assert!(e.message.contains(want), "{e}");
            assert_eq!(e.code, berth_ipc::Code::InvalidArgument);
        }
    }
}
