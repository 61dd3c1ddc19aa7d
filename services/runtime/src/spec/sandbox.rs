//! A container joining its pod sandbox: the sandbox's namespace files in place of new
//! namespaces, its `/etc/hosts`, `/etc/resolv.conf`, `/etc/hostname` and `/dev/shm` bound in
//! (unless the container mounts its own there), and no hostname of its own (the pod's UTS
//! namespace has it).

use std::path::{Path, PathBuf};

use berth_ipc::runtime::{IdMapping, NamespaceMode, PidMode, RunOptions, SandboxInfo};
use berth_ipc::{Error, Result};
use oci_spec::runtime::{
    LinuxIdMapping, LinuxIdMappingBuilder, LinuxNamespace, LinuxNamespaceType, Mount, Spec,
};

/// Where one namespace of a container comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A new one (the default spec's entry).
    New,
    /// The host's (no entry).
    Host,
    /// Joined by path.
    Path(PathBuf),
}

/// Sets namespace `typ` of `spec` to come from `source`.
pub fn set_namespace(spec: &mut Spec, typ: LinuxNamespaceType, source: Source) {
    let Some(linux) = spec.linux_mut() else { return };
    let mut namespaces: Vec<LinuxNamespace> =
        linux.namespaces().clone().unwrap_or_default().into_iter().filter(|n| n.typ() != typ).collect();
    match source {
        Source::Host => {}
        Source::New => {
            let mut ns = LinuxNamespace::default();
            ns.set_typ(typ);
            namespaces.push(ns);
        }
        Source::Path(path) => {
            let mut ns = LinuxNamespace::default();
            ns.set_typ(typ);
            ns.set_path(Some(path));
            namespaces.push(ns);
        }
    }
    linux.set_namespaces(Some(namespaces));
}

/// The source of one of a container's namespaces outside a sandbox (`Pod` is its own).
pub fn standalone(mode: &NamespaceMode, target: Option<&Path>) -> Source {
    match mode {
        NamespaceMode::Node => Source::Host,
        NamespaceMode::Target(_) => target.map_or(Source::New, |p| Source::Path(p.to_path_buf())),
        NamespaceMode::Pod | NamespaceMode::Container => Source::New,
    }
}

/// Joins `spec` to sandbox `sb`; `target_pid_ns` is the pid namespace file of the container
/// a `Target` pid mode names.
pub fn join(
    spec: &mut Spec,
    sb: &SandboxInfo,
    opts: &RunOptions,
    target_pid_ns: Option<&Path>,
) -> Result<()> {
    let dir = Path::new(&sb.dir);
    let ns = |kind: &str| dir.join("ns").join(kind);
    let linux = &opts.linux;
    if linux.user_ns.is_some() || sb.spec.user_ns.is_some() {
        join_userns(spec, sb, opts, &ns("user"))?;
    }
    let network = if sb.spec.net_host || linux.network == NamespaceMode::Node {
        Source::Host
    } else {
        Source::Path(ns("net"))
    };
    let ipc = if sb.spec.ipc_host || linux.ipc == NamespaceMode::Node {
        Source::Host
    } else {
        Source::Path(ns("ipc"))
    };
    let uts = if sb.spec.net_host { Source::Host } else { Source::Path(ns("uts")) };
    let pid = match (&linux.pid, sb.spec.pid) {
        (NamespaceMode::Node, _) | (NamespaceMode::Pod, PidMode::Node) => Source::Host,
        (NamespaceMode::Pod, PidMode::Pod) => Source::Path(ns("pid")),
        (NamespaceMode::Target(_), _) => standalone(&linux.pid, target_pid_ns),
        _ => Source::New,
    };
    let shm_host = matches!(ipc, Source::Host);
    set_namespace(spec, LinuxNamespaceType::Network, network);
    set_namespace(spec, LinuxNamespaceType::Ipc, ipc);
    set_namespace(spec, LinuxNamespaceType::Uts, uts);
    set_namespace(spec, LinuxNamespaceType::Pid, pid);
    spec.set_hostname(None);

    let taken: Vec<String> =
        opts.mounts.iter().map(|m| m.destination.trim_end_matches('/').to_string()).collect();
    let mut mounts: Vec<Mount> = spec.mounts().clone().unwrap_or_default();
    let shm_source = if shm_host { PathBuf::from("/dev/shm") } else { dir.join("shm") };
    let ro = opts.read_only;
    let files = [
        ("/etc/hosts", dir.join("hosts"), ro),
        ("/etc/resolv.conf", dir.join("resolv.conf"), ro),
        ("/etc/hostname", dir.join("hostname"), ro),
        ("/dev/shm", shm_source, false),
    ];
    for (dest, source, read_only) in files {
        if taken.iter().any(|t| t == dest) {
            continue;
        }
        mounts.retain(|m| m.destination() != Path::new(dest));
        let mut options = vec!["rbind".to_string(), "rprivate".to_string()];
        if dest == "/dev/shm" {
            options.extend(["nosuid", "nodev", "noexec"].map(String::from));
        }
        options.push(if read_only { "ro" } else { "rw" }.to_string());
        let mut m = Mount::default();
        m.set_destination(PathBuf::from(dest));
        m.set_typ(Some("bind".into()));
        m.set_source(Some(source));
        m.set_options(Some(options));
        mounts.push(m);
    }
    spec.set_mounts(Some(mounts));
    Ok(())
}

/// Puts `spec` in the sandbox's user namespace: the container's maps must be the pod's, and
/// every namespace it joins must be one the pod's user namespace owns.
fn join_userns(spec: &mut Spec, sb: &SandboxInfo, opts: &RunOptions, path: &Path) -> Result<()> {
    let linux = &opts.linux;
    let Some(maps) = &sb.spec.user_ns else {
        return Err(Error::invalid(format!(
            "sandbox {} has no user namespace of its own, so a container cannot ask for one",
            sb.id
        )));
    };
    match &linux.user_ns {
        None => {
            return Err(Error::invalid(format!(
                "sandbox {} has its own user namespace; its containers must run in it (same mappings)",
                sb.id
            )));
        }
        Some(own) if own != maps => {
            return Err(Error::invalid(format!(
                "user namespace mappings differ from sandbox {}'s; a container runs in its pod's",
                sb.id
            )));
        }
        Some(_) => {}
    }
    let host = [("network", &linux.network), ("IPC", &linux.ipc), ("pid", &linux.pid)];
    if let Some((kind, _)) = host.iter().find(|(_, m)| **m == NamespaceMode::Node) {
        return Err(Error::invalid(format!(
            "a container in its pod's user namespace cannot use the host's {kind} namespace"
        )));
    }
    if linux.privileged {
        return Err(Error::invalid("a privileged container cannot run in a user namespace".to_string()));
    }
    set_namespace(spec, LinuxNamespaceType::User, Source::Path(path.to_path_buf()));
    // Its own cgroup namespace (owned by the user namespace) so that cgroup2 can be mounted.
    set_namespace(spec, LinuxNamespaceType::Cgroup, Source::New);
    // runc 1.1 wants the maps even when it joins by path (it chowns its fifo and devices to
    // the mapped root); they are the namespace's own, so nothing disagrees.
    if let Some(l) = spec.linux_mut() {
        l.set_uid_mappings(Some(oci_maps(&maps.uids)?));
        l.set_gid_mappings(Some(oci_maps(&maps.gids)?));
    }
    Ok(())
}

fn oci_maps(map: &[IdMapping]) -> Result<Vec<LinuxIdMapping>> {
    map.iter()
        .map(|m| {
            LinuxIdMappingBuilder::default()
                .container_id(m.container_id)
                .host_id(m.host_id)
                .size(m.length)
                .build()
                .map_err(|e| Error::internal_cause("id mapping", e))
        })
        .collect()
}
