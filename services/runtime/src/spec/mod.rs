//! The OCI runtime spec of a container, generated from its image's config and the user's
//! [`RunOptions`], with defaults like runc's (`/proc`, `/dev`, `/sys` mounts, pid/ipc/uts/
//! mount/net namespaces, a small capability set, masked and read-only paths) and a cgroup
//! per namespace and container.
//!
//! Image paths (working dir, `/etc/passwd`) are resolved inside the mounted rootfs
//! ([`path`]); users are parsed strictly ([`user`]).

pub mod path;
pub mod sandbox;
pub mod seccomp;
pub mod user;

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use berth_ipc::runtime::{ExecSpec, RunOptions};
use berth_ipc::{Error, Result};
use oci_spec::runtime::{
    Capability, LinuxCapabilities, LinuxCpu, LinuxMemory, LinuxNamespaceType, LinuxPids, Mount, Process, Spec,
};
use serde::Deserialize;

/// The parts of an OCI image config a container needs (lenient: unknown fields ignored).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ImageConfig {
    /// Execution defaults.
    #[serde(default)]
    pub config: Option<ExecConfig>,
    /// Layers.
    #[serde(default)]
    pub rootfs: Option<RootFs>,
}

/// `config` of an image config.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ExecConfig {
    /// `USER`.
    pub user: Option<String>,
    /// `ENV`.
    pub env: Option<Vec<String>>,
    /// `ENTRYPOINT`.
    pub entrypoint: Option<Vec<String>>,
    /// `CMD`.
    pub cmd: Option<Vec<String>>,
    /// `WORKDIR`.
    pub working_dir: Option<String>,
}

/// `rootfs` of an image config.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct RootFs {
    /// Uncompressed layer digests, base first.
    #[serde(default)]
    pub diff_ids: Vec<String>,
}

/// Docker's default capability set.
const CAPABILITIES: [Capability; 14] = [
    Capability::Chown,
    Capability::DacOverride,
    Capability::Fsetid,
    Capability::Fowner,
    Capability::Mknod,
    Capability::NetRaw,
    Capability::Setgid,
    Capability::Setuid,
    Capability::Setfcap,
    Capability::Setpcap,
    Capability::NetBindService,
    Capability::SysChroot,
    Capability::Kill,
    Capability::AuditWrite,
];

const DEFAULT_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// `env` with `extra` applied in order: a later `K=V` replaces an earlier `K`.
pub fn merge_env(env: &mut Vec<String>, extra: &[String]) -> Result<()> {
    for kv in extra {
        let Some((key, _)) = kv.split_once('=') else {
            return Err(Error::invalid(format!("env {kv:?}: expected KEY=VALUE")));
        };
        if key.is_empty() || kv.contains('\0') {
            return Err(Error::invalid(format!("env {kv:?}: bad variable")));
        }
        let prefix = format!("{key}=");
        match env.iter_mut().find(|e| e.starts_with(&prefix)) {
            Some(slot) => *slot = kv.clone(),
            None => env.push(kv.clone()),
        }
    }
    Ok(())
}

/// Where a container is placed: its cgroup, its sandbox (if any), and the pid namespace
/// file of the container its pid mode targets (if any).
#[derive(Debug, Clone, Default)]
pub struct Placement {
    /// The cgroup path.
    pub cgroup: String,
    /// The sandbox it joins.
    pub sandbox: Option<berth_ipc::runtime::SandboxInfo>,
    /// `/proc/<pid>/ns/pid` of a `Target` pid mode's container.
    pub target_pid_ns: Option<PathBuf>,
}

/// The spec of container `id` from `image` and `opts`, placed as `placement`; `rootfs` is
/// the container's root filesystem, mounted, for lookups.
pub fn generate(
    image: &ImageConfig,
    opts: &RunOptions,
    id: &str,
    placement: &Placement,
    rootfs: &Path,
) -> Result<Spec> {
    let cgroup = placement.cgroup.as_str();
    let exec = image.config.clone().unwrap_or_default();
    let args = command(&exec, opts, id)?;
    let caps: HashSet<Capability> = CAPABILITIES.into_iter().collect();
    let process = process(exec, args, opts, rootfs, caps.clone())?;
    let seccomp_profile = match &opts.seccomp {
        None => Some(seccomp::default_profile(&caps)?),
        Some(text) => seccomp::user_profile(text).map_err(|e| e.context(format!("container {id}")))?,
    };

    let mut spec = Spec::default();
    spec.set_process(Some(process));
    let mut root = oci_spec::runtime::Root::default();
    root.set_path(PathBuf::from("rootfs"));
    root.set_readonly(Some(opts.read_only));
    spec.set_root(Some(root));
    spec.set_hostname(Some(opts.hostname.clone().unwrap_or_else(|| id.to_string())));

    let mut mounts = spec.mounts().clone().unwrap_or_default();
    for bind in &opts.mounts {
        mounts.push(bind_mount(bind)?);
    }
    spec.set_mounts(Some(mounts));

    let mut linux = spec.linux().clone().unwrap_or_default();
    let namespaces = linux
        .namespaces()
        .clone()
        .unwrap_or_default()
        .into_iter()
        .filter(|n| n.typ() != LinuxNamespaceType::Cgroup)
        .filter(|n| !(opts.net_host && n.typ() == LinuxNamespaceType::Network))
        .collect();
    linux.set_namespaces(Some(namespaces));
    linux.set_cgroups_path(Some(PathBuf::from(cgroup)));
    let mut resources = linux.resources().clone().unwrap_or_default();
    limit_resources(&mut resources, opts)?;
    linux.set_resources(Some(resources));
    linux.set_seccomp(seccomp_profile);
    spec.set_linux(Some(linux));
    let target = placement.target_pid_ns.as_deref();
    match &placement.sandbox {
        Some(sb) => sandbox::join(&mut spec, sb, opts, target)?,
        None => {
            use sandbox::{set_namespace, standalone};
            let l = &opts.linux;
            if l.pid != berth_ipc::runtime::NamespaceMode::Pod {
                set_namespace(&mut spec, LinuxNamespaceType::Pid, standalone(&l.pid, target));
            }
            if l.ipc == berth_ipc::runtime::NamespaceMode::Node {
                set_namespace(&mut spec, LinuxNamespaceType::Ipc, sandbox::Source::Host);
            }
            if l.network == berth_ipc::runtime::NamespaceMode::Node {
                set_namespace(&mut spec, LinuxNamespaceType::Network, sandbox::Source::Host);
            }
        }
    }
    if opts.stdin {
        let open = [(STDIN_ANNOTATION.to_string(), "open".to_string())];
        spec.set_annotations(Some(open.into_iter().collect()));
    }
    Ok(spec)
}

/// The init process's argv: `opts`' entrypoint and args over the image's (an entrypoint
/// given without args drops the image's cmd, as Docker does).
fn command(exec: &ExecConfig, opts: &RunOptions, id: &str) -> Result<Vec<String>> {
    let entrypoint = opts.entrypoint.clone().or(exec.entrypoint.clone()).unwrap_or_default();
    let cmd = match (&opts.args, &opts.entrypoint) {
        (Some(args), _) => args.clone(),
        (None, Some(_)) => Vec::new(),
        (None, None) => exec.cmd.clone().unwrap_or_default(),
    };
    let args: Vec<String> = entrypoint.into_iter().chain(cmd).collect();
    if args.is_empty() || args[0].is_empty() {
        return Err(Error::invalid(format!(
            "container {id}: no command (the image has neither entrypoint nor cmd)"
        )));
    }
    if args.iter().any(|a| a.contains('\0')) {
        return Err(Error::invalid(format!("container {id}: argument with a NUL byte")));
    }
    Ok(args)
}

/// The init process: `args`, the environment (default `PATH`, the image's, `opts`'), the
/// working dir and user resolved in `rootfs`, and the capabilities `caps`.
fn process(
    exec: ExecConfig,
    args: Vec<String>,
    opts: &RunOptions,
    rootfs: &Path,
    caps: HashSet<Capability>,
) -> Result<Process> {
    let mut env = vec![DEFAULT_PATH.to_string()];
    merge_env(&mut env, exec.env.as_deref().unwrap_or_default())?;
    merge_env(&mut env, &opts.env)?;
    let cwd = opts.cwd.clone().or(exec.working_dir).filter(|c| !c.is_empty()).unwrap_or_else(|| "/".into());
    let cwd = path::resolve_in_root(rootfs, &cwd).map_err(|e| e.context("working dir"))?;
    let user_spec = opts.user.clone().or(exec.user).filter(|u| !u.is_empty()).unwrap_or_else(|| "0".into());
    let user = user::resolve(&user_spec, rootfs)?;

    let mut process = Process::default();
    process.set_args(Some(args));
    process.set_env(Some(env));
    process.set_cwd(PathBuf::from(cwd));
    process.set_terminal(Some(opts.terminal));
    let mut oci_user = oci_spec::runtime::User::default();
    oci_user.set_uid(user.uid);
    oci_user.set_gid(user.gid);
    if !user.additional_gids.is_empty() {
        oci_user.set_additional_gids(Some(user.additional_gids));
    }
    process.set_user(oci_user);
    // As Docker: a process that is not root never gains privileges (setuid, file caps).
    process.set_no_new_privileges(Some(opts.no_new_privileges || user.uid != 0));
    let mut capabilities = LinuxCapabilities::default();
    capabilities.set_bounding(Some(caps.clone()));
    capabilities.set_effective(Some(caps.clone()));
    capabilities.set_permitted(Some(caps));
    capabilities.set_inheritable(None);
    capabilities.set_ambient(None);
    process.set_capabilities(Some(capabilities));
    Ok(process)
}

/// `opts`' memory, CPU and pids limits, set on `resources`.
fn limit_resources(resources: &mut oci_spec::runtime::LinuxResources, opts: &RunOptions) -> Result<()> {
    if let Some(limit) = opts.memory {
        let limit = i64::try_from(limit).map_err(|_| Error::invalid("memory: limit too large"))?;
        let mut memory = LinuxMemory::default();
        memory.set_limit(Some(limit));
        memory.set_swap(Some(limit));
        resources.set_memory(Some(memory));
    }
    if let Some(milli) = opts.cpus_milli {
        if milli == 0 {
            return Err(Error::invalid("cpus: must be more than 0"));
        }
        let mut cpu = LinuxCpu::default();
        cpu.set_period(Some(100_000));
        cpu.set_quota(Some(i64::try_from(milli.saturating_mul(100)).unwrap_or(i64::MAX)));
        resources.set_cpu(Some(cpu));
    }
    if let Some(limit) = opts.pids_limit {
        let mut pids = LinuxPids::default();
        pids.set_limit(i64::try_from(limit).map_err(|_| Error::invalid("pids limit: too large"))?);
        resources.set_pids(Some(pids));
    }
    Ok(())
}

/// The spec annotation telling the shim to give the init process a stdin pipe
/// ([`RunOptions::stdin`](berth_ipc::runtime::RunOptions)).
pub const STDIN_ANNOTATION: &str = "berth.io/stdin";

fn bind_mount(bind: &berth_ipc::runtime::BindMount) -> Result<Mount> {
    if !bind.source.starts_with('/') || !bind.destination.starts_with('/') {
        return Err(Error::invalid(format!(
            "mount {}:{}: paths must be absolute",
            bind.source, bind.destination
        )));
    }
    if Path::new(&bind.destination).components().any(|c| matches!(c, std::path::Component::ParentDir)) {
        return Err(Error::invalid(format!("mount {}: destination must not contain ..", bind.destination)));
    }
    if !Path::new(&bind.source).exists() {
        return Err(Error::invalid(format!("mount source {}: not found", bind.source)));
    }
    let mut options = vec!["rbind".to_string(), "rprivate".to_string()];
    if bind.read_only {
        options.push("ro".to_string());
    }
    let mut m = Mount::default();
    m.set_destination(PathBuf::from(&bind.destination));
    m.set_typ(Some("bind".into()));
    m.set_source(Some(PathBuf::from(&bind.source)));
    m.set_options(Some(options));
    Ok(m)
}

/// The OCI process of an exec, from the container's spec.
pub fn exec_process(spec: &Spec, exec: &ExecSpec) -> Result<Process> {
    if exec.args.is_empty() || exec.args[0].is_empty() {
        return Err(Error::invalid("exec: no command"));
    }
    let mut process =
        spec.process().clone().ok_or_else(|| Error::invalid("container spec has no process"))?;
    process.set_args(Some(exec.args.clone()));
    let mut env = process.env().clone().unwrap_or_default();
    merge_env(&mut env, &exec.env)?;
    process.set_env(Some(env));
    if let Some(cwd) = &exec.cwd {
        if !cwd.starts_with('/') {
            return Err(Error::invalid(format!("exec cwd {cwd:?}: must be absolute")));
        }
        process.set_cwd(PathBuf::from(cwd));
    }
    process.set_terminal(Some(exec.terminal));
    Ok(process)
}

#[cfg(test)]
mod tests;
