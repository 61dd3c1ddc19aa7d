//! `berth run [--rm] [-d] [-t] [options] IMAGE ID [CMD…]`: create a container and its task,
//! start it, and in the foreground stream its output and exit with its exit code (`-t`: an
//! interactive terminal, see [`super::tty`]). The options ([`RunFlags`]) are shared with
//! `berth containers create`.

use std::collections::BTreeMap;
use std::io::Write;
use std::process::ExitCode;

use berth_ipc::runtime::Runtime;
use berth_ipc::runtime::{
    Attach, BindMount, CreateContainer, CreateTask, DeleteTask, Device, DnsConfig, KillTask, LinuxOptions,
    OutputStream, PortMapping, Propagation, RemoveContainer, RunOptions, RunTask, SandboxSpec, TaskRef,
    WaitTask,
};
use berth_ipc::{Client, Stream};
use clap::Args;

use super::Ctx;
use super::namespaces::wire;

/// Options of a new container.
#[derive(Debug, Clone, Args)]
pub struct RunFlags {
    /// OCI runtime: runc or crun
    #[arg(long, default_value = "runc")]
    pub runtime: String,
    /// Environment variable KEY=VALUE (repeatable)
    #[arg(short, long = "env")]
    pub env: Vec<String>,
    /// Working directory inside the container
    #[arg(long)]
    pub cwd: Option<String>,
    /// User: uid, uid:gid, name or name:group (looked up in the image)
    #[arg(short, long)]
    pub user: Option<String>,
    /// Hostname (default: the container id)
    #[arg(long)]
    pub hostname: Option<String>,
    /// Memory limit in bytes (suffixes k, m, g)
    #[arg(long, value_parser = parse_size)]
    pub memory: Option<u64>,
    /// CPU limit, e.g. 0.5
    #[arg(long)]
    pub cpus: Option<f64>,
    /// Maximum number of processes
    #[arg(long)]
    pub pids_limit: Option<u64>,
    /// Read-only root filesystem
    #[arg(long)]
    pub read_only: bool,
    /// Use the host's network namespace (as --network host)
    #[arg(long)]
    pub net_host: bool,
    /// Network: none (loopback only; the default), host, bridge (the default CNI network) or
    /// the name of a CNI network (`berth network ls`)
    #[arg(long = "network", alias = "net", value_name = "NETWORK")]
    pub network: Option<String>,
    /// Publish a port: [IP:]HOST:CONTAINER[/tcp|udp] (repeatable; without --network, on bridge)
    #[arg(short = 'p', long = "publish", value_name = "PORT")]
    pub publish: Vec<String>,
    /// DNS server for the container's resolv.conf (repeatable)
    #[arg(long = "dns", value_name = "IP")]
    pub dns: Vec<String>,
    /// DNS search domain (repeatable)
    #[arg(long = "dns-search", value_name = "DOMAIN")]
    pub dns_search: Vec<String>,
    /// DNS resolver option, e.g. ndots:2 (repeatable)
    #[arg(long = "dns-option", alias = "dns-opt", value_name = "OPTION")]
    pub dns_option: Vec<String>,
    /// An /etc/hosts entry NAME:IP (repeatable)
    #[arg(long = "add-host", value_name = "NAME:IP")]
    pub add_host: Vec<String>,
    /// Bind mount: type=bind,src=HOST,dst=CONTAINER[,ro] (repeatable)
    #[arg(long)]
    pub mount: Vec<String>,
    /// Label KEY=VALUE (repeatable)
    #[arg(long)]
    pub label: Vec<String>,
    /// Replace the image's entrypoint
    #[arg(long)]
    pub entrypoint: Option<String>,
    /// Security option (repeatable): seccomp=unconfined, seccomp=PATH (a Docker or OCI JSON
    /// profile), no-new-privileges, systempaths=unconfined (no masked or read-only /proc
    /// paths)
    #[arg(long = "security-opt")]
    pub security_opt: Vec<String>,
    /// Every capability, every host device, writable /sys, no masked paths, no seccomp
    #[arg(long)]
    pub privileged: bool,
    /// Add a capability (NET_ADMIN, CAP_NET_ADMIN or ALL; repeatable, comma-separated)
    #[arg(long = "cap-add", value_delimiter = ',')]
    pub cap_add: Vec<String>,
    /// Drop a capability (ALL drops every one before --cap-add applies; repeatable)
    #[arg(long = "cap-drop", value_delimiter = ',')]
    pub cap_drop: Vec<String>,
    /// An extra group id for the process (repeatable)
    #[arg(long = "group-add")]
    pub group_add: Vec<u32>,
    /// A host device: HOST[:CONTAINER[:PERMISSIONS]] (permissions a subset of rwm; repeatable)
    #[arg(long)]
    pub device: Vec<String>,
    /// Write the init's output to this host file (CRI log format, not rotated by berth;
    /// created with its dirs if missing)
    #[arg(long, value_name = "FILE")]
    pub log_path: Option<String>,
    /// The image
    pub image: String,
    /// The container id
    pub id: String,
    /// Command and arguments (replace the image's cmd)
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub cmd: Vec<String>,
}

fn parse_size(s: &str) -> Result<u64, String> {
    let lower = s.to_ascii_lowercase();
    let (num, mult) = match lower.trim_end_matches('b').chars().last() {
        Some('k') => (&lower[..lower.trim_end_matches('b').len() - 1], 1u64 << 10),
        Some('m') => (&lower[..lower.trim_end_matches('b').len() - 1], 1 << 20),
        Some('g') => (&lower[..lower.trim_end_matches('b').len() - 1], 1 << 30),
        _ => (lower.as_str(), 1),
    };
    let n: u64 = num.parse().map_err(|_| format!("{s:?}: not a size"))?;
    n.checked_mul(mult).ok_or_else(|| format!("{s:?}: too large"))
}

/// `HOST[:CONTAINER[:PERMISSIONS]]`, as Docker's `--device`.
fn parse_device(s: &str) -> anyhow::Result<Device> {
    let mut parts = s.split(':');
    let host_path = parts.next().unwrap_or_default().to_string();
    anyhow::ensure!(!host_path.is_empty(), "--device {s:?}: the host path is required");
    let container_path = parts.next().filter(|p| !p.is_empty()).unwrap_or(&host_path).to_string();
    let permissions = parts.next().unwrap_or("rwm").to_string();
    anyhow::ensure!(parts.next().is_none(), "--device {s:?}: expected HOST[:CONTAINER[:PERMISSIONS]]");
    Ok(Device { host_path, container_path, permissions })
}

fn parse_mount(s: &str) -> anyhow::Result<BindMount> {
    let mut m = BindMount::default();
    for part in s.split(',') {
        match part.split_once('=') {
            Some(("type", "bind")) => {}
            Some(("type", other)) => anyhow::bail!("mount {s:?}: type {other} is not supported (bind)"),
            Some(("src" | "source", v)) => m.source = v.to_string(),
            Some(("dst" | "destination" | "target", v)) => m.destination = v.to_string(),
            None if part == "ro" || part == "readonly" => m.read_only = true,
            None if part == "rro" => {
                m.read_only = true;
                m.recursive_read_only = true;
            }
            Some(("bind-propagation", v)) => {
                m.propagation = match v {
                    "rprivate" | "private" => Propagation::Private,
                    "rslave" | "slave" => Propagation::HostToContainer,
                    "rshared" | "shared" => Propagation::Bidirectional,
                    _ => anyhow::bail!(
                        "mount {s:?}: bind-propagation {v:?}: expected rprivate, rslave or rshared"
                    ),
                }
            }
            _ => anyhow::bail!("mount {s:?}: unknown option {part:?}"),
        }
    }
    anyhow::ensure!(
        !m.source.is_empty() && !m.destination.is_empty(),
        "mount {s:?}: src and dst are required"
    );
    Ok(m)
}

/// `[IP:]HOST:CONTAINER[/PROTOCOL]` (an IPv6 host address in brackets), as Docker's `-p`.
pub fn parse_port(s: &str) -> anyhow::Result<PortMapping> {
    let bad = || anyhow::anyhow!("--publish {s:?}: expected [IP:]HOST:CONTAINER[/tcp|udp]");
    let (spec, protocol) = match s.rsplit_once('/') {
        Some((spec, proto)) => (spec, proto.to_ascii_lowercase()),
        None => (s, "tcp".to_string()),
    };
    anyhow::ensure!(
        matches!(protocol.as_str(), "tcp" | "udp" | "sctp"),
        "--publish {s:?}: protocol {protocol:?} is not tcp, udp or sctp"
    );
    let (host_ip, ports) = match spec.strip_prefix('[') {
        Some(rest) => {
            let (ip, ports) = rest.split_once("]:").ok_or_else(bad)?;
            (ip.to_string(), ports)
        }
        None => match spec.matches(':').count() {
            1 => (String::new(), spec),
            2 => {
                let (ip, ports) = spec.split_once(':').ok_or_else(bad)?;
                (ip.to_string(), ports)
            }
            _ => return Err(bad()),
        },
    };
    if !host_ip.is_empty() {
        host_ip
            .parse::<std::net::IpAddr>()
            .map_err(|_| anyhow::anyhow!("--publish {s:?}: {host_ip:?} is not an IP address"))?;
    }
    let (host, container) = ports.split_once(':').ok_or_else(bad)?;
    let port = |p: &str| {
        p.parse::<u16>()
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| anyhow::anyhow!("--publish {s:?}: port {p:?} is not 1 to 65535"))
    };
    Ok(PortMapping { host_ip, host_port: port(host)?, container_port: port(container)?, protocol })
}

/// A port mapping as `-p` takes it: `127.0.0.1:8080->80/tcp`.
pub fn show_port(p: &PortMapping) -> String {
    let ip = if p.host_ip.contains(':') { format!("[{}]", p.host_ip) } else { p.host_ip.clone() };
    let ip = if ip.is_empty() { String::new() } else { format!("{ip}:") };
    format!("{ip}{}->{}/{}", p.host_port, p.container_port, p.protocol)
}

/// `NAME:IP` as Docker's `--add-host` (the IP may be IPv6; the name has no colon).
fn parse_add_host(s: &str) -> anyhow::Result<(String, Vec<String>)> {
    let (name, ip) =
        s.split_once(':').ok_or_else(|| anyhow::anyhow!("--add-host {s:?}: expected NAME:IP"))?;
    let ip = ip.trim_start_matches('[').trim_end_matches(']');
    anyhow::ensure!(
        !name.is_empty() && !name.contains(char::is_whitespace),
        "--add-host {s:?}: {name:?} is not a host name"
    );
    ip.parse::<std::net::IpAddr>()
        .map_err(|_| anyhow::anyhow!("--add-host {s:?}: {ip:?} is not an IP address"))?;
    Ok((ip.to_string(), vec![name.to_string()]))
}

/// The host's name servers a container can reach (loopback ones cannot be from its own
/// network namespace), for a resolv.conf given search domains or options but no server.
fn host_nameservers() -> Vec<String> {
    let text = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("nameserver"))
        .map(|s| s.trim().to_string())
        .filter(|s| s.parse::<std::net::IpAddr>().is_ok_and(|ip| !ip.is_loopback()))
        .collect()
}

impl RunFlags {
    /// The container's own sandbox these flags ask for (`None`: none, as before
    /// `--network`), and whether it shares the host's network namespace without one.
    fn own_sandbox(&self) -> anyhow::Result<(Option<SandboxSpec>, bool)> {
        let network = match (self.network.as_deref(), self.net_host) {
            (Some(n), true) if n != "host" => {
                anyhow::bail!("--net-host and --network {n} exclude each other")
            }
            (_, true) => "host",
            (Some(n), false) => n,
            // Publishing needs a network: the default one.
            (None, false) if !self.publish.is_empty() => "bridge",
            (None, false) => "none",
        };
        let ports = self.publish.iter().map(|p| parse_port(p)).collect::<anyhow::Result<Vec<_>>>()?;
        anyhow::ensure!(
            ports.is_empty() || !matches!(network, "none" | "host"),
            "--publish: the {network} network has no ports to publish (use --network bridge or a network's name)"
        );
        for ip in &self.dns {
            ip.parse::<std::net::IpAddr>().map_err(|_| anyhow::anyhow!("--dns {ip:?}: not an IP address"))?;
        }
        let dns =
            (!self.dns.is_empty() || !self.dns_search.is_empty() || !self.dns_option.is_empty()).then(|| {
                DnsConfig {
                    servers: if self.dns.is_empty() { host_nameservers() } else { self.dns.clone() },
                    searches: self.dns_search.clone(),
                    options: self.dns_option.clone(),
                }
            });
        let hosts = self.add_host.iter().map(|h| parse_add_host(h)).collect::<anyhow::Result<Vec<_>>>()?;
        let files = dns.is_some() || !hosts.is_empty();
        let spec =
            SandboxSpec { hostname: self.hostname.clone(), dns, hosts, ports, ..SandboxSpec::default() };
        Ok(match network {
            "none" if !files => (None, false),
            "host" if !files => (None, true),
            "none" => (Some(spec), false),
            "host" => (Some(SandboxSpec { net_host: true, hostname: None, ..spec }), false),
            name => (Some(SandboxSpec { network: Some(name.to_string()), ..spec }), false),
        })
    }

    /// The `CreateContainer` request these flags describe.
    pub fn request(&self, namespace: &str) -> anyhow::Result<CreateContainer> {
        let mut labels = BTreeMap::new();
        for l in &self.label {
            let (k, v) = l.split_once('=').unwrap_or((l, ""));
            labels.insert(k.to_string(), v.to_string());
        }
        let cpus_milli = match self.cpus {
            Some(c) if !(c > 0.0 && c < 1e6) => anyhow::bail!("--cpus {c}: must be a positive number"),
            Some(c) => Some((c * 1000.0).round() as u64),
            None => None,
        };
        let (own_sandbox, net_host) = self.own_sandbox()?;
        let options = RunOptions {
            own_sandbox,
            args: (!self.cmd.is_empty()).then(|| self.cmd.clone()),
            entrypoint: self.entrypoint.clone().map(|e| vec![e]),
            env: self.env.clone(),
            cwd: self.cwd.clone(),
            user: self.user.clone(),
            hostname: self.hostname.clone(),
            memory: self.memory,
            cpus_milli,
            pids_limit: self.pids_limit,
            read_only: self.read_only,
            net_host,
            mounts: self.mount.iter().map(|m| parse_mount(m)).collect::<anyhow::Result<_>>()?,
            terminal: false,
            stdin: false,
            seccomp: None,
            no_new_privileges: false,
            linux: LinuxOptions {
                privileged: self.privileged,
                cap_add: self.cap_add.clone(),
                cap_drop: self.cap_drop.clone(),
                supplemental_groups: self.group_add.clone(),
                devices: self.device.iter().map(|d| parse_device(d)).collect::<anyhow::Result<_>>()?,
                ..LinuxOptions::default()
            },
            log_path: self.log_path.clone(),
            ..RunOptions::default()
        };
        let mut options = options;
        for opt in &self.security_opt {
            match opt.split_once(['=', ':']) {
                Some(("seccomp", "unconfined")) => options.seccomp = Some("unconfined".into()),
                Some(("seccomp", path)) => {
                    let text = std::fs::read_to_string(path)
                        .map_err(|e| anyhow::anyhow!("--security-opt seccomp={path}: {e}"))?;
                    options.seccomp = Some(text);
                }
                None if opt == "no-new-privileges" => options.no_new_privileges = true,
                Some(("no-new-privileges", "true")) => options.no_new_privileges = true,
                Some(("no-new-privileges", "false")) => {}
                Some(("systempaths", "unconfined")) => {
                    options.linux.masked_paths = Some(Vec::new());
                    options.linux.readonly_paths = Some(Vec::new());
                }
                _ => anyhow::bail!(
                    "--security-opt {opt:?}: unknown (seccomp=unconfined, seccomp=PATH, no-new-privileges, systempaths=unconfined)"
                ),
            }
        }
        Ok(CreateContainer {
            namespace: namespace.to_string(),
            id: self.id.clone(),
            // As typed: `Ctx::create_container` normalizes it.
            image: self.image.clone(),
            runtime: self.runtime.clone(),
            options,
            labels,
            extensions: Default::default(),
        })
    }
}

/// `berth run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Delete the task, the container and its snapshot when it exits (with -d: done by the
    /// runtime service, which the container's label berth.io/rm-on-exit asks to)
    #[arg(long)]
    pub rm: bool,
    /// Return once started, printing the id
    #[arg(short, long)]
    pub detach: bool,
    /// Give the container an interactive terminal (stdin, window size, raw local terminal)
    #[arg(short = 't', long = "tty")]
    pub tty: bool,
    /// Keep the container's stdin open and feed it this command's stdin (closed at its end)
    #[arg(short = 'i', long = "interactive", conflicts_with = "detach")]
    pub interactive: bool,
    /// The container
    #[command(flatten)]
    pub flags: RunFlags,
}

/// Copies an attach stream to stdout/stderr until it ends.
pub async fn pump(mut stream: Stream<Attach>) -> anyhow::Result<()> {
    let (mut out, mut err) = (std::io::stdout(), std::io::stderr());
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(wire)?;
        match chunk.stream {
            OutputStream::Stdout => {
                out.write_all(&chunk.data)?;
                out.flush()?;
            }
            OutputStream::Stderr => err.write_all(&chunk.data)?,
        }
    }
    Ok(())
}

/// Like [`pump`] for `task`'s whole output, riding through runtime service restarts: a
/// stream ended by `Unavailable` is opened again (attach replays from the oldest kept
/// output) and the bytes of each stream already shown are skipped. (Output rotated away
/// meanwhile — more than the log cap during the restart — would shift that count.)
pub async fn pump_task(rt: &Client<Runtime>, task: &TaskRef) -> anyhow::Result<()> {
    let (mut out, mut err) = (std::io::stdout(), std::io::stderr());
    // Bytes shown so far: stdout, stderr.
    let mut shown = [0usize; 2];
    let mut failures = 0;
    loop {
        let mut stream = rt.stream(Attach(task.clone())).await.map_err(wire)?;
        let mut skip = shown;
        loop {
            let chunk = match stream.next().await {
                None => return Ok(()),
                Some(Err(e)) if e.is(berth_ipc::Code::Unavailable) && failures < 20 => break,
                Some(Err(e)) => return Err(wire(e)),
                Some(Ok(chunk)) => chunk,
            };
            let i = usize::from(chunk.stream == OutputStream::Stderr);
            let cut = skip[i].min(chunk.data.len());
            skip[i] -= cut;
            let data = &chunk.data[cut..];
            if data.is_empty() {
                continue;
            }
            failures = 0;
            shown[i] += data.len();
            if i == 0 {
                out.write_all(data)?;
                out.flush()?;
            } else {
                err.write_all(data)?;
            }
        }
        failures += 1;
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// An exit status as a process exit code.
pub fn code(status: u32) -> ExitCode {
    ExitCode::from(u8::try_from(status).unwrap_or(255))
}

/// Runs `berth run`.
pub async fn run(ctx: &Ctx, args: RunArgs) -> anyhow::Result<ExitCode> {
    let rt = &ctx.services.runtime;
    let ns = ctx.namespace.clone();
    let id = args.flags.id.clone();
    let mut request = args.flags.request(&ns)?;
    request.options.terminal = args.tty;
    request.options.stdin = args.interactive;
    if args.rm && args.detach {
        // No client stays to remove it: the runtime service does, at the task's exit.
        request.labels.insert(berth_ipc::runtime::LABEL_RM_ON_EXIT.into(), "true".into());
    }
    ctx.create_container(request).await?;
    let task = TaskRef::init(&ns, &id);
    let mut guard = None;
    let result = async {
        if args.tty && !args.detach {
            // Started only once the window size is set and the local terminal is raw.
            rt.call(CreateTask(task.clone())).await.map_err(wire)?;
            return super::tty::session(rt, &task, true).await.map(|s| Some(Status::Exited(s)));
        }
        // Signals are caught before the task exists, so that none is lost (nor kills this
        // client) during start-up; they are sent on once it runs.
        let signals = if args.detach { None } else { Some(super::sigproxy::Signals::catch()?) };
        // Created and started by one runtime call; its output so far is in the task's log,
        // which attach streams from the start.
        rt.call(RunTask(task.clone())).await.map_err(wire)?;
        if args.detach {
            println!("{id}");
            return Ok(None);
        }
        if args.rm {
            guard = Some(super::sigproxy::guard(rt.clone(), task.clone()));
        }
        let forward = signals.map(|s| s.forward(rt.clone(), task.clone()));
        let input = args.interactive.then(|| tokio::spawn(super::tty::feed_stdin(rt.clone(), task.clone())));
        // The output ends once the process has exited and all it wrote is shown; signals
        // are forwarded meanwhile.
        let pumped = pump_task(rt, &task).await;
        if let Some(input) = input {
            input.abort();
        }
        if let Some(forward) = forward {
            forward.abort();
        }
        pumped?;
        // With --rm its delete answers the exit status, so there is nothing to wait for.
        if args.rm {
            return Ok(Some(Status::OnDelete));
        }
        let exit = rt.call(WaitTask(task.clone())).await.map_err(wire)?;
        Ok::<_, anyhow::Error>(Some(Status::Exited(exit.status)))
    }
    .await;
    let mut deleted = None;
    if args.rm && !args.detach {
        if result.is_err() {
            let _ = rt.call(KillTask { task: task.clone(), signal: 9, all: true }).await;
            let _ = rt.call(WaitTask(task.clone())).await;
        }
        if let Some(guard) = guard {
            super::sigproxy::release(guard).await;
        }
        deleted = Some(rt.call(DeleteTask(task.clone())).await.map_err(wire));
        rt.call(RemoveContainer { namespace: ns, id, force: true }).await.map_err(wire)?;
    }
    match result? {
        Some(Status::Exited(status)) => Ok(code(status)),
        Some(Status::OnDelete) => match deleted {
            Some(exit) => Ok(code(exit?.status)),
            None => Ok(ExitCode::SUCCESS),
        },
        None => Ok(ExitCode::SUCCESS),
    }
}

/// Where `berth run` gets the exit status from.
enum Status {
    /// Waited for.
    Exited(u32),
    /// From the task's delete (`--rm`).
    OnDelete,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_mounts() {
        assert_eq!(parse_size("64m"), Ok(64 << 20));
        assert_eq!(parse_size("1g"), Ok(1 << 30));
        assert_eq!(parse_size("100"), Ok(100));
        assert!(parse_size("x").is_err());
        let m = parse_mount("type=bind,src=/a,dst=/b,ro").expect("mount");
        assert_eq!(
            m,
            BindMount {
                source: "/a".into(),
                destination: "/b".into(),
                read_only: true,
                ..BindMount::default()
            }
        );
        assert!(parse_mount("type=tmpfs,dst=/x").is_err());
        assert!(parse_mount("src=/a").is_err());
        let m = parse_mount("type=bind,src=/a,dst=/b,rro").expect("rro");
        assert!(m.read_only && m.recursive_read_only);
        let m = parse_mount("type=bind,src=/a,dst=/b,bind-propagation=rslave").expect("rslave");
        assert_eq!(m.propagation, Propagation::HostToContainer);
        let m = parse_mount("type=bind,src=/a,dst=/b,bind-propagation=shared").expect("shared");
        assert_eq!(m.propagation, Propagation::Bidirectional);
        let e = parse_mount("type=bind,src=/a,dst=/b,bind-propagation=up").expect_err("bad");
        assert!(e.to_string().contains("rprivate, rslave or rshared"), "{e}");
    }

    #[test]
    fn ports_hosts_and_networks() {
        let p = parse_port("127.0.0.1:8080:80").expect("port");
        assert_eq!(
            (p.host_ip.as_str(), p.host_port, p.container_port, p.protocol.as_str()),
            ("127.0.0.1", 8080, 80, "tcp")
        );
        let p = parse_port("53:5353/UDP").expect("udp");
        assert_eq!(
            (p.host_ip.as_str(), p.host_port, p.container_port, p.protocol.as_str()),
            ("", 53, 5353, "udp")
        );
        let p = parse_port("[::1]:8080:80").expect("v6");
        assert_eq!(p.host_ip, "::1");
        assert_eq!(show_port(&p), "[::1]:8080->80/tcp");
        for bad in ["80", "0:80", "70000:80", "a:b", "1.2.3:80:80", "8080:80/icmp", "::1:8080:80"] {
            assert!(parse_port(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_add_host("db:10.0.0.9").expect("host"), ("10.0.0.9".into(), vec!["db".into()]));
        assert_eq!(parse_add_host("v6:fd00::9").expect("v6").0, "fd00::9");
        assert!(
            parse_add_host("db").is_err()
                && parse_add_host("db:nope").is_err()
                && parse_add_host(":1.2.3.4").is_err()
        );

        let plain = flags(&[]).request("default").expect("plain");
        assert!(plain.options.own_sandbox.is_none() && !plain.options.net_host, "no network by default");
        let host = flags(&["--net-host"]).request("default").expect("host");
        assert!(host.options.own_sandbox.is_none() && host.options.net_host);
        let host = flags(&["--network", "host"]).request("default").expect("host");
        assert!(host.options.net_host);
        let published = flags(&["-p", "8080:80"]).request("default").expect("publish");
        let sb = published.options.own_sandbox.expect("a sandbox");
        assert_eq!(sb.network.as_deref(), Some("bridge"), "publishing implies bridge");
        assert_eq!(sb.ports.len(), 1);
        let named =
            flags(&["--network", "mynet", "--dns-search", "x.test", "--hostname", "h"]).request("default");
        let sb = named.expect("named").options.own_sandbox.expect("sandbox");
        assert_eq!((sb.network.as_deref(), sb.hostname.as_deref()), (Some("mynet"), Some("h")));
        assert_eq!(sb.dns.expect("dns").searches, vec!["x.test"]);
        let files =
            flags(&["--network", "none", "--add-host", "a:1.2.3.4"]).request("default").expect("none");
        let sb = files.options.own_sandbox.expect("a sandbox for the files");
        assert!(sb.network.is_none() && !sb.net_host && sb.hosts.len() == 1);
        assert!(flags(&["--net-host", "--network", "mynet"]).request("default").is_err());
        assert!(flags(&["--network", "none", "-p", "80:80"]).request("default").is_err());
        assert!(flags(&["--dns", "nope"]).request("default").is_err());
    }

    fn flags(args: &[&str]) -> RunFlags {
        use clap::Parser;
        #[derive(Parser)]
        struct Cmd {
            #[command(flatten)]
            flags: RunFlags,
        }
        let mut argv = vec!["run"];
        argv.extend_from_slice(args);
        argv.extend(["img", "id"]);
        Cmd::try_parse_from(argv).expect("parse").flags
    }

    #[test]
    fn security_context_flags() {
        let req = flags(&[
            "--privileged",
            "--cap-drop",
            "ALL",
            "--cap-add",
            "net_bind_service,CAP_CHOWN",
            "--cap-add",
            "kill",
            "--group-add",
            "500",
            "--group-add",
            "7",
            "--device",
            "/dev/null:/dev/n:rw",
            "--device",
            "/dev/zero",
            "--security-opt",
            "systempaths=unconfined",
        ])
        .request("default")
        .expect("request");
        let l = &req.options.linux;
        assert!(l.privileged);
        assert_eq!(l.cap_drop, vec!["ALL"]);
        assert_eq!(l.cap_add, vec!["net_bind_service", "CAP_CHOWN", "kill"]);
        assert_eq!(l.supplemental_groups, vec![500, 7]);
        assert_eq!(
            l.devices,
            vec![
                Device {
                    host_path: "/dev/null".into(),
                    container_path: "/dev/n".into(),
                    permissions: "rw".into()
                },
                Device {
                    host_path: "/dev/zero".into(),
                    container_path: "/dev/zero".into(),
                    permissions: "rwm".into()
                },
            ]
        );
        assert_eq!((l.masked_paths.as_deref(), l.readonly_paths.as_deref()), (Some(&[][..]), Some(&[][..])));
        let plain = flags(&[]).request("default").expect("request");
        assert_eq!(plain.options.linux, LinuxOptions::default());
        assert!(parse_device(":/x").is_err() && parse_device("/a:/b:rw:x").is_err());
        use clap::Parser;
        #[derive(Parser)]
        struct Cmd {
            #[command(flatten)]
            _flags: RunFlags,
        }
        assert!(Cmd::try_parse_from(["run", "--group-add", "wheel", "img", "id"]).is_err());
    }
}
