//! The OCI runtime spec of a container, generated from its image's config and the user's
//! [`RunOptions`], with defaults like runc's (`/proc`, `/dev`, `/sys` mounts, pid/ipc/uts/
//! mount/net namespaces, a small capability set, masked and read-only paths) and a cgroup
//! per namespace and container.
//!
//! Image paths (working dir, `/etc/passwd`) are resolved inside the mounted rootfs
//! ([`path`]); users are parsed strictly ([`user`]).
//!
//! [`LinuxOptions`](berth_ipc::runtime::LinuxOptions) (a Kubernetes security context) are
//! applied as containerd's CRI does: capabilities dropped then added ([`caps`]); a
//! privileged container gets every capability (the kernel knows and the runtime holds), every host device, writable `/sys` and
//! cgroupfs, no masked or read-only paths and no seccomp filter (unless it names a profile);
//! devices ([`devices`]); limits and the OOM score ([`resources`]); bind mount propagation
//! and `rro` ([`mounts`]); annotations. What of the host this depends on is read into a
//! [`host::Host`].

pub mod caps;
pub mod devices;
pub mod host;
pub mod mounts;
pub mod path;
pub mod resources;
pub mod sandbox;
pub mod seccomp;
pub mod user;

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use berth_ipc::runtime::{ExecSpec, RunOptions};
use berth_ipc::{Error, Result};
use oci_spec::runtime::{Capability, LinuxCapabilities, LinuxNamespaceType, Process, Spec};
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
    generate_on(&host::Host::current(), image, opts, id, placement, rootfs)
}

/// [`generate`] for a container on `host`.
pub fn generate_on(
    host: &host::Host,
    image: &ImageConfig,
    opts: &RunOptions,
    id: &str,
    placement: &Placement,
    rootfs: &Path,
) -> Result<Spec> {
    let in_container = |e: Error| e.context(format!("container {id}"));
    let l = &opts.linux;
    let cgroup = placement.cgroup.as_str();
    let exec = image.config.clone().unwrap_or_default();
    let args = command(&exec, opts, id)?;
    let caps = if l.privileged {
        caps::all(host.last_cap, host.bounding)
    } else {
        caps::apply(&l.cap_add, &l.cap_drop, host.last_cap, host.bounding).map_err(in_container)?
    };
    let mut process = process(exec, args, opts, rootfs, caps.clone())?;
    process.set_oom_score_adj(resources::oom_score_adj(l.oom_score_adj, host)?);
    let seccomp_profile = match &opts.seccomp {
        // A privileged container runs unconfined unless it names a profile.
        None if l.privileged => None,
        None => Some(seccomp::default_profile(&caps)?),
        Some(text) => seccomp::user_profile(text).map_err(in_container)?,
    };

    let mut spec = Spec::default();
    spec.set_process(Some(process));
    let mut root = oci_spec::runtime::Root::default();
    root.set_path(PathBuf::from("rootfs"));
    root.set_readonly(Some(opts.read_only));
    spec.set_root(Some(root));
    spec.set_hostname(Some(opts.hostname.clone().unwrap_or_else(|| id.to_string())));

    let mut mounts = spec.mounts().clone().unwrap_or_default();
    if l.privileged {
        writable_sys(&mut mounts);
    }
    let (binds, rootfs_propagation) = mounts::binds(&opts.mounts, || host.read_mountinfo())?;
    mounts.extend(binds);
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
    linux.set_rootfs_propagation(rootfs_propagation.map(String::from));
    if l.privileged {
        linux.set_masked_paths(None);
        linux.set_readonly_paths(None);
    } else {
        if let Some(paths) = &l.masked_paths {
            linux.set_masked_paths(Some(proc_paths("masked path", paths)?));
        }
        if let Some(paths) = &l.readonly_paths {
            linux.set_readonly_paths(Some(proc_paths("read-only path", paths)?));
        }
    }
    let devs = devices::devices(&l.devices, l.privileged, &host.dev)?;
    linux.set_devices((!devs.nodes.is_empty()).then_some(devs.nodes));
    let mut resources = linux.resources().clone().unwrap_or_default();
    resources.set_devices(Some(devs.rules));
    resources::limit(&mut resources, opts, host)?;
    linux.set_resources(Some(resources));
    linux.set_seccomp(seccomp_profile);
    spec.set_linux(Some(linux));
    let target = placement.target_pid_ns.as_deref();
    match &placement.sandbox {
        Some(sb) => sandbox::join(&mut spec, sb, opts, target).map_err(in_container)?,
        None if l.user_ns.is_some() => {
            return Err(in_container(Error::invalid(
                "a user namespace of its own is only made for a pod sandbox; run the container in one",
            )));
        }
        None => {
            use sandbox::{set_namespace, standalone};
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
    spec.set_annotations(annotations(opts)?);
    Ok(spec)
}

/// The spec's annotations: `opts.linux`' and berth's own (a key under `berth.io/` is
/// berth's, refused from a client).
fn annotations(opts: &RunOptions) -> Result<Option<std::collections::HashMap<String, String>>> {
    let mut out = std::collections::HashMap::new();
    for (key, value) in &opts.linux.annotations {
        if key.is_empty() || key.contains('\0') || value.contains('\0') {
            return Err(Error::invalid(format!("annotation {key:?}: empty key or a NUL byte")));
        }
        if key.starts_with("berth.io/") {
            return Err(Error::invalid(format!("annotation {key}: berth.io/ keys are reserved for berth")));
        }
        out.insert(key.clone(), value.clone());
    }
    if opts.stdin {
        out.insert(STDIN_ANNOTATION.to_string(), "open".to_string());
    }
    Ok((!out.is_empty()).then_some(out))
}

/// Masked or read-only paths, each absolute and without `..` or NUL.
fn proc_paths(what: &str, paths: &[String]) -> Result<Vec<String>> {
    for p in paths {
        let path = Path::new(p);
        if !path.is_absolute()
            || p.contains('\0')
            || path.components().any(|c| c == std::path::Component::ParentDir)
        {
            return Err(Error::invalid(format!("{what} {p:?}: must be absolute, without ..")));
        }
    }
    Ok(paths.to_vec())
}

/// `/sys` and the cgroupfs mounted read-write (a privileged container's).
fn writable_sys(mounts: &mut [oci_spec::runtime::Mount]) {
    for m in mounts.iter_mut() {
        if matches!(m.typ().as_deref(), Some("sysfs" | "cgroup" | "cgroup2")) {
            let options = m.options().clone().unwrap_or_default();
            let options = options.into_iter().map(|o| if o == "ro" { "rw".to_string() } else { o }).collect();
            m.set_options(Some(options));
        }
    }
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
    let l = &opts.linux;
    // Strict: the primary group and the asked ones, not the image's /etc/group memberships.
    let mut gids = if l.strict_groups { Vec::new() } else { user.additional_gids };
    for gid in &l.supplemental_groups {
        if *gid == u32::MAX {
            return Err(Error::invalid("supplemental group 4294967295: out of range (0 to 4294967294)"));
        }
        if !gids.contains(gid) {
            gids.push(*gid);
        }
    }
    if !gids.is_empty() {
        oci_user.set_additional_gids(Some(gids));
    }
    process.set_user(oci_user);
    // As Docker: a process that is not root never gains privileges (setuid, file caps); a
    // privileged one only when asked. In a pod sandbox, as Kubernetes: exactly as asked
    // (`allowPrivilegeEscalation` is the kubelet's to decide).
    let nnp = opts.no_new_privileges
        || (user.uid != 0 && !l.privileged && (opts.sandbox.is_none() || opts.own_sandbox.is_some()));
    process.set_no_new_privileges(Some(nnp));
    let mut capabilities = LinuxCapabilities::default();
    capabilities.set_bounding(Some(caps.clone()));
    capabilities.set_effective(Some(caps.clone()));
    capabilities.set_permitted(Some(caps));
    capabilities.set_inheritable(None);
    capabilities.set_ambient(None);
    process.set_capabilities(Some(capabilities));
    Ok(process)
}

/// The spec annotation telling the shim to give the init process a stdin pipe
/// ([`RunOptions::stdin`](berth_ipc::runtime::RunOptions)).
pub const STDIN_ANNOTATION: &str = "berth.io/stdin";

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
