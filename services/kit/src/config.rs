//! The TOML configuration shared by the launcher, every service and the CLI.
//!
//! Every key is optional; [`DEFAULT_TOML`] lists them all with their defaults and is what
//! `berthd config default` prints. Unknown keys are refused so that a typo is an error, not a
//! silently ignored setting.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The whole configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Persistent data: content, metadata, snapshots, events.
    pub root: PathBuf,
    /// Runtime state: sockets, task bundles.
    pub state: PathBuf,
    /// Group whose members may use the sockets besides root; ignored if it does not exist.
    pub group: String,
    /// Socket and protocol limits.
    pub ipc: IpcConfig,
    /// How the launcher supervises services.
    pub supervisor: SupervisorConfig,
    /// Per-service overrides, by service name.
    pub services: BTreeMap<String, ServiceOverride>,
    /// The events service.
    pub events: EventsConfig,
    /// The snapshot service.
    pub snapshot: SnapshotConfig,
    /// The metadata service.
    pub metadata: MetadataConfig,
    /// Logging of the launcher and every service.
    pub log: LogConfig,
    /// The launcher's Prometheus endpoint.
    pub metrics: MetricsConfig,
    /// The runtime service.
    pub runtime: RuntimeConfig,
    /// Registry hosts: mirrors, as containerd's `hosts.toml`.
    pub registry: RegistryConfig,
    /// CNI networks for pods and containers.
    pub network: NetworkConfig,
    /// The CRI service.
    pub cri: CriConfig,
}

/// The CRI service's settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CriConfig {
    /// The streaming server's address (Exec, Attach and PortForward URLs point there).
    pub stream_address: String,
    /// Its TCP port; 0 picks a free one at each start.
    pub stream_port: u16,
    /// How long a streaming URL stays valid once handed out, ms (each works once).
    pub stream_token_ttl_ms: u64,
    /// How long the server waits for a client to open every stream a session needs, ms.
    pub stream_creation_timeout_ms: u64,
}

impl Default for CriConfig {
    fn default() -> Self {
        CriConfig {
            stream_address: "127.0.0.1".into(),
            stream_port: 0,
            stream_token_ttl_ms: 60_000,
            stream_creation_timeout_ms: 30_000,
        }
    }
}

/// Where CNI networks and plugins are, and berth's default network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NetworkConfig {
    /// The CNI conf dir (`*.conflist`, `*.conf`).
    pub conf_dir: PathBuf,
    /// Where CNI plugin binaries are looked for, in order.
    pub plugin_dirs: Vec<PathBuf>,
    /// The network pods attach to: its name in the conf dir.
    pub default_network: String,
    /// Write a conflist for `default_network` (a bridge with host-local addresses from
    /// `default_subnet`, NAT, port mappings) when the conf dir has none by that name.
    pub write_default: bool,
    /// The default network's bridge device.
    pub default_bridge: String,
    /// The default network's subnet.
    pub default_subnet: String,
    /// How long one plugin run may take, ms.
    pub plugin_timeout_ms: u64,
}

impl NetworkConfig {
    /// The CNI driver of these settings, its records under `<root>/cni`.
    pub fn driver(&self, root: &Path) -> berth_cni::Cni {
        berth_cni::Cni::new(&self.conf_dir, &self.plugin_dirs, &root.join("cni"), self.plugin_timeout_ms)
    }

    /// The default network's list as berth writes it, its addresses kept in `cni`'s data dir.
    pub fn default_list(&self, cni: &berth_cni::Cni) -> serde_json::Value {
        berth_cni::conf::default_list(
            &self.default_network,
            &self.default_bridge,
            &self.default_subnet,
            &cni.data_dir(),
        )
    }
}

impl Default for NetworkConfig {
    fn default() -> Self {
        NetworkConfig {
            conf_dir: PathBuf::from("/etc/cni/net.d"),
            plugin_dirs: vec![PathBuf::from("/usr/lib/cni"), PathBuf::from("/opt/cni/bin")],
            default_network: "berth".into(),
            write_default: true,
            default_bridge: "berth0".into(),
            default_subnet: "10.88.0.0/16".into(),
            plugin_timeout_ms: 30_000,
        }
    }
}

/// How registries are reached, by the registry host an image name carries.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RegistryConfig {
    /// Registry host (`registry.k8s.io`, `docker.io`, `host:port`) to the endpoint that
    /// serves it instead, `http://HOST[:PORT]` or `https://HOST[:PORT]`: an offline node's
    /// local registry standing in for `registry.k8s.io`. The image keeps its name.
    pub mirrors: BTreeMap<String, String>,
}

impl RegistryConfig {
    /// The endpoint serving registry `host` instead, as (plain HTTP, host\[:port\]).
    pub fn mirror(&self, host: &str) -> Result<Option<(bool, String)>, String> {
        let Some(endpoint) = self.mirrors.get(host) else { return Ok(None) };
        let (plain, rest) = if let Some(r) = endpoint.strip_prefix("http://") {
            (true, r)
        } else if let Some(r) = endpoint.strip_prefix("https://") {
            (false, r)
        } else {
            return Err(format!(
                "registry mirror {endpoint:?} for {host}: must begin with http:// or https://"
            ));
        };
        let rest = rest.trim_end_matches('/');
        if rest.is_empty() || rest.contains('/') {
            return Err(format!(
                "registry mirror {endpoint:?} for {host}: must be a scheme and a host[:port]"
            ));
        }
        Ok(Some((plain, rest.to_string())))
    }
}

/// The runtime service's settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RuntimeConfig {
    /// The cgroup containers are placed under (`<parent>/<namespace>/<id>`); empty: `/berth`
    /// for the state dir `/run/berth`, `/berth-<hash of the state dir>` for any other, so
    /// that two berth instances on one host never share a container's cgroup.
    pub cgroup_parent: String,
    /// A container's output log file (`<root>/logs/<ns>/<id>/init.log`) is rotated before a
    /// write would make it larger than this.
    pub log_max_bytes: u64,
    /// Log files kept per process, the one being written included (at least 1).
    pub log_max_files: u32,
}

/// The smallest `[runtime] log_max_bytes`: one record (a read of at most 8 KiB, plus its
/// CRI prefix) must fit in a file.
pub const MIN_LOG_MAX_BYTES: u64 = 64 << 10;

impl Default for RuntimeConfig {
    fn default() -> Self {
        RuntimeConfig { cgroup_parent: String::new(), log_max_bytes: 10 << 20, log_max_files: 5 }
    }
}

impl RuntimeConfig {
    /// Errors: a log size below [`MIN_LOG_MAX_BYTES`] or no log file kept.
    pub fn check_logs(&self) -> Result<(), String> {
        if self.log_max_bytes < MIN_LOG_MAX_BYTES {
            return Err(format!(
                "[runtime] log_max_bytes {}: below the minimum of {MIN_LOG_MAX_BYTES}",
                self.log_max_bytes
            ));
        }
        if self.log_max_files == 0 || self.log_max_files > 1000 {
            return Err(format!("[runtime] log_max_files {}: must be 1 to 1000", self.log_max_files));
        }
        Ok(())
    }

    /// The cgroup parent for a berth whose state dir is `state`. Errors: a parent that is not
    /// a plain path (`..`, `.`, empty parts, NUL, over 200 bytes).
    pub fn cgroup_parent(&self, state: &Path) -> Result<String, String> {
        let text = self.cgroup_parent.trim_matches('/');
        if !self.cgroup_parent.is_empty() {
            let bad = text.is_empty()
                || text.len() > 200
                || text.split('/').any(|p| p.is_empty() || p == "." || p == ".." || p.contains('\0'));
            if bad {
                return Err(format!(
                    "[runtime] cgroup_parent {:?}: not a plain cgroup path",
                    self.cgroup_parent
                ));
            }
            return Ok(format!("/{text}"));
        }
        if state == Path::new("/run/berth") {
            return Ok("/berth".into());
        }
        // FNV-1a: stable across builds and releases, unlike std's hasher.
        let hash = state
            .as_os_str()
            .as_encoded_bytes()
            .iter()
            .fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3));
        Ok(format!("/berth-{:08x}", hash as u32))
    }
}

/// Logging settings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// `plain` or `json`; `--log-format` and `BERTH_LOG_FORMAT` override it.
    pub format: crate::logging::LogFormat,
}

/// The launcher's Prometheus endpoint.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsConfig {
    /// `IP:PORT` to serve `GET /metrics` on; empty: no endpoint.
    pub address: String,
}

impl MetricsConfig {
    /// The endpoint's address, `None` when off. Errors: the text is not `IP:PORT`.
    pub fn socket_addr(&self) -> Result<Option<std::net::SocketAddr>, String> {
        let text = self.address.trim();
        if text.is_empty() {
            return Ok(None);
        }
        text.parse().map(Some).map_err(|_| {
            format!("[metrics] address {text:?}: not an IP:PORT address (e.g. \"127.0.0.1:9464\")")
        })
    }
}

/// The metadata service's settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetadataConfig {
    /// A GC pass runs after this many write transactions (0: only on demand and on the
    /// interval).
    pub gc_mutations: u64,
    /// A GC pass runs at least this often, seconds (0: never on a timer).
    pub gc_interval_s: u64,
    /// Backend objects that never had a record are spared while younger than this, ms.
    pub gc_grace_ms: u64,
    /// Passes started by `gc_mutations` may hold writes at most this share of the time, in
    /// percent: after a pass of d ms the next one waits until d is that share of the time
    /// since it began (containerd's `pause_threshold`). 0: no limit.
    pub gc_pause_percent: u64,
}

impl Default for MetadataConfig {
    fn default() -> Self {
        MetadataConfig { gc_mutations: 100, gc_interval_s: 300, gc_grace_ms: 3_600_000, gc_pause_percent: 2 }
    }
}

/// The snapshot service's settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SnapshotConfig {
    /// The snapshotter used when a request names none: `overlayfs` or `native`.
    pub default_snapshotter: String,
    /// Largest uncompressed layer that apply accepts, bytes (a decompression bomb stops here).
    pub max_layer_bytes: u64,
    /// Largest extension header (PAX records, GNU long name or long link) a layer may
    /// carry, bytes; checked before the header is read into memory.
    pub max_header_bytes: u64,
    /// Most entries one layer may hold.
    pub max_layer_entries: u64,
    /// Most bytes the extractor remembers for one layer (paths it wrote, directories whose
    /// times it sets last).
    pub max_layer_memory_bytes: u64,
    /// Layers extracted at once by a batch unpack; 0 means one per CPU.
    pub parallel_unpack: usize,
}

impl Default for SnapshotConfig {
    fn default() -> Self {
        SnapshotConfig {
            default_snapshotter: "overlayfs".into(),
            max_layer_bytes: 64 << 30,
            max_header_bytes: 1 << 20,
            max_layer_entries: 4_000_000,
            max_layer_memory_bytes: 256 << 20,
            parallel_unpack: 0,
        }
    }
}

/// The events service's settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EventsConfig {
    /// Events kept in the log; older ones are removed first.
    pub max_events: u64,
    /// Age after which events are removed, seconds.
    pub max_age_s: u64,
    /// Events buffered for one subscriber before it is told it lagged and closed.
    pub subscriber_buffer: usize,
    /// Idempotency keys remembered (the last this many events), so a retried publish is
    /// stored once.
    pub dedup_window: usize,
}

impl Default for EventsConfig {
    fn default() -> Self {
        EventsConfig {
            max_events: 1_000_000,
            max_age_s: 7 * 24 * 3600,
            subscriber_buffer: 8192,
            dedup_window: 100_000,
        }
    }
}

/// Socket and protocol limits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IpcConfig {
    /// Connections one service serves at once.
    pub max_connections: usize,
    /// Requests in flight on one connection.
    pub max_inflight: usize,
    /// Time a new connection has to say hello, ms.
    pub handshake_timeout_ms: u64,
    /// How long clients wait for a restarting service before `Unavailable`, ms.
    pub client_deadline_ms: u64,
    /// Answer bytes queued on one connection before its calls wait and no request is read.
    pub max_queued_bytes: usize,
    /// Time a write to a client may make no progress before the connection is dropped, ms.
    pub write_timeout_ms: u64,
    /// Time a connection with no call in flight may stay silent before it is closed, ms;
    /// 0 keeps it forever. An open stream (an event subscription) is a call in flight.
    pub idle_timeout_ms: u64,
}

/// How the launcher supervises services.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SupervisorConfig {
    /// More failed starts (deaths before becoming ready) than this within
    /// `restart_window_s` marks a service failed.
    pub max_restarts: u32,
    /// The window for `max_restarts`, seconds.
    pub restart_window_s: u64,
    /// The longest back-off between restarts, seconds.
    pub backoff_max_s: u64,
    /// How often a failed service is tried again, seconds.
    pub failed_retry_s: u64,
    /// Time a started service has to become ready, seconds.
    pub ready_timeout_s: u64,
    /// Interval between health pings, ms.
    pub ping_interval_ms: u64,
    /// Time a ping may take, ms.
    pub ping_timeout_ms: u64,
    /// Consecutive failed pings after which a service is killed and restarted.
    pub ping_failures: u32,
    /// Time a service gets to exit after SIGTERM before SIGKILL, seconds.
    pub stop_timeout_s: u64,
}

/// Overrides for one service.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServiceOverride {
    /// The binary to run instead of `berth-<name>` next to `berthd`.
    pub binary: Option<PathBuf>,
    /// Extra arguments.
    pub args: Vec<String>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            root: PathBuf::from("/var/lib/berth"),
            state: PathBuf::from("/run/berth"),
            group: "berth".into(),
            ipc: IpcConfig::default(),
            supervisor: SupervisorConfig::default(),
            services: BTreeMap::new(),
            events: EventsConfig::default(),
            snapshot: SnapshotConfig::default(),
            metadata: MetadataConfig::default(),
            log: LogConfig::default(),
            metrics: MetricsConfig::default(),
            runtime: RuntimeConfig::default(),
            registry: RegistryConfig::default(),
            network: NetworkConfig::default(),
            cri: CriConfig::default(),
        }
    }
}

impl Default for IpcConfig {
    fn default() -> Self {
        IpcConfig {
            max_connections: 4096,
            max_inflight: 1024,
            handshake_timeout_ms: 5000,
            client_deadline_ms: 10_000,
            max_queued_bytes: 64 << 20,
            write_timeout_ms: 30_000,
            idle_timeout_ms: 600_000,
        }
    }
}

impl Default for SupervisorConfig {
    fn default() -> Self {
        SupervisorConfig {
            max_restarts: 5,
            restart_window_s: 10,
            backoff_max_s: 30,
            failed_retry_s: 30,
            ready_timeout_s: 10,
            ping_interval_ms: 1000,
            ping_timeout_ms: 1000,
            ping_failures: 3,
            stop_timeout_s: 10,
        }
    }
}

/// The default configuration as commented TOML (`berthd config default`).
pub const DEFAULT_TOML: &str = include_str!("default.toml");

impl Config {
    /// Reads `path`, or gives the defaults when `path` is `None`.
    pub fn load(path: Option<&Path>) -> anyhow::Result<Config> {
        let Some(path) = path else { return Ok(Config::default()) };
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("read config {}: {e}", path.display()))?;
        Config::parse(&text).map_err(|e| anyhow::anyhow!("config {}: {e}", path.display()))
    }

    /// Parses TOML text.
    pub fn parse(text: &str) -> Result<Config, toml::de::Error> {
        toml::from_str(text)
    }

    /// The gid of the configured group, if it exists on this host.
    pub fn group_id(&self) -> Option<u32> {
        if self.group.is_empty() { None } else { berth_ipc::socket::group_id(&self.group) }
    }

    /// The socket of service `name` in the state dir.
    pub fn socket(&self, name: &str) -> PathBuf {
        self.state.join(format!("{name}.sock"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_toml_is_the_default() {
        let parsed = Config::parse(DEFAULT_TOML).expect("default TOML parses");
        assert_eq!(parsed, Config::default());
    }

    #[test]
    fn unknown_key_is_an_error() {
        let err = Config::parse("[supervisor]\nmax_restart = 3\n").expect_err("typo refused");
        assert!(err.to_string().contains("max_restart"), "{err}");
    }

    #[test]
    fn metrics_address_is_checked() {
        let c = Config::parse("[metrics]\naddress = \"127.0.0.1:9464\"\n").expect("parses");
        assert_eq!(c.metrics.socket_addr(), Ok(Some(([127, 0, 0, 1], 9464).into())));
        assert_eq!(Config::default().metrics.socket_addr(), Ok(None));
        let bad = Config::parse("[metrics]\naddress = \"localhost\"\n").expect("parses");
        let err = bad.metrics.socket_addr().expect_err("no port");
        assert!(err.contains("\"localhost\": not an IP:PORT"), "{err}");
    }

    #[test]
    fn cgroup_parent_is_per_instance_and_checked() {
        let c = RuntimeConfig::default();
        assert_eq!(c.cgroup_parent(Path::new("/run/berth")), Ok("/berth".into()));
        let a = c.cgroup_parent(Path::new("/tmp/a/state")).expect("a");
        let b = c.cgroup_parent(Path::new("/tmp/b/state")).expect("b");
        assert!(a.starts_with("/berth-") && a.len() == "/berth-".len() + 8, "{a}");
        assert_ne!(a, b);
        assert_eq!(c.cgroup_parent(Path::new("/tmp/a/state")), Ok(a));
        let set = |p: &str| {
            RuntimeConfig { cgroup_parent: p.into(), ..Default::default() }.cgroup_parent(Path::new("/x"))
        };
        assert_eq!(set("/system.slice/berth/"), Ok("/system.slice/berth".into()));
        for bad in ["/", "../etc", "a//b", "a/./b", "a\0b"] {
            let err = set(bad).expect_err(bad);
            assert!(err.contains("not a plain cgroup path"), "{err}");
        }
    }

    #[test]
    fn log_format_is_plain_or_json() {
        let c = Config::parse("[log]\nformat = \"json\"\n").expect("parses");
        assert_eq!(c.log.format, crate::logging::LogFormat::Json);
        let err = Config::parse("[log]\nformat = \"xml\"\n").expect_err("refused");
        assert!(err.to_string().contains("xml"), "{err}");
    }

    #[test]
    fn partial_config_keeps_other_defaults() {
        let c = Config::parse("[supervisor]\nmax_restarts = 2\n").expect("parses");
        assert_eq!(c.supervisor.max_restarts, 2);
        assert_eq!(c.supervisor.restart_window_s, 10);
        assert_eq!(c.root, PathBuf::from("/var/lib/berth"));
    }
}
