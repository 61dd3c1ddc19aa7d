//! The life of a service process: flags, logging, configuration, the listening socket
//! (inherited from the launcher or systemd, or bound here), signals, readiness, and
//! removing the socket on a clean exit.

use std::future::Future;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use berth_ipc::{Handler, Protocol, Server, ServerConfig};
use clap::Parser;
use tokio::net::UnixListener;
use tokio_util::sync::CancellationToken;

use crate::args::CommonArgs;
use crate::config::Config;

/// The environment variable naming the listening socket fd the launcher passes.
pub const LISTEN_FD_ENV: &str = "BERTH_LISTEN_FD";

/// What a service's `run` is given besides its socket.
#[derive(Debug, Clone)]
pub struct ServiceEnv {
    /// The service's name (`content`, …).
    pub name: &'static str,
    /// The effective configuration.
    pub config: Config,
}

impl ServiceEnv {
    /// An environment for `name` with `config` (tests use this to run a service in-process).
    pub fn new(name: &'static str, config: Config) -> Self {
        ServiceEnv { name, config }
    }

    /// The service's own directory under the root (`<root>/<name>`), created 0700.
    pub fn data_dir(&self) -> std::io::Result<PathBuf> {
        let dir = self.config.root.join(self.name);
        create_private_dir(&dir)?;
        Ok(dir)
    }

    /// The server limits from the configuration.
    pub fn server_config(&self) -> ServerConfig {
        let ipc = &self.config.ipc;
        ServerConfig {
            version: env!("CARGO_PKG_VERSION").to_string(),
            access: berth_ipc::peer::AccessPolicy { group: self.config.group_id() },
            max_connections: ipc.max_connections.max(1),
            max_inflight: ipc.max_inflight.max(1),
            handshake_timeout: Duration::from_millis(ipc.handshake_timeout_ms.max(1)),
            max_queued_bytes: ipc.max_queued_bytes.max(1),
            write_timeout: Duration::from_millis(ipc.write_timeout_ms.max(1)),
            idle_timeout: (ipc.idle_timeout_ms > 0).then(|| Duration::from_millis(ipc.idle_timeout_ms)),
            ..ServerConfig::default()
        }
    }

    /// Client options from the configuration, for calls this service makes to others.
    pub fn client_options(&self) -> berth_ipc::ClientOptions {
        berth_ipc::ClientOptions {
            deadline: Duration::from_millis(self.config.ipc.client_deadline_ms),
            client_name: format!("berth-{}[{}]", self.name, std::process::id()),
        }
    }
}

/// Creates `dir` (and parents) and sets it to mode 0700.
pub fn create_private_dir(dir: &std::path::Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
}

/// Serves `handler` on `listener` until `shutdown`, signalling readiness first.
pub async fn serve<P: Protocol, H: Handler<P>>(
    env: &ServiceEnv,
    handler: H,
    listener: UnixListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let server = Server::<P, H>::new(handler, env.server_config());
    crate::ready::notify_ready();
    tracing::info!(service = env.name, pid = std::process::id(), "ready");
    server.serve(listener, shutdown).await?;
    tracing::info!(service = env.name, "stopped");
    Ok(())
}

#[derive(Debug, Parser)]
struct ServiceCli {
    #[command(flatten)]
    common: CommonArgs,
}

/// The whole `main` of a service binary: parse flags, set up logging, get the socket, run
/// `run` until SIGTERM/SIGINT, remove the socket if we bound it, exit 0 (1 on error).
pub fn main<F, Fut>(name: &'static str, run: F) -> ExitCode
where
    F: FnOnce(ServiceEnv, UnixListener, CancellationToken) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    let cli = ServiceCli::parse();
    let config = cli.common.load();
    crate::logging::init(cli.common.log_format(config.as_ref().ok()));
    match config.and_then(|config| boot(name, config, run)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(service = name, "{e:#}");
            crate::logging::print_err(&format!("berth-{name}: {e:#}"));
            ExitCode::FAILURE
        }
    }
}

fn boot<F, Fut>(name: &'static str, config: Config, run: F) -> anyhow::Result<()>
where
    F: FnOnce(ServiceEnv, UnixListener, CancellationToken) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    raise_nofile_limit();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name(format!("berth-{name}"))
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let (listener, bound) = match crate::sys::take_listen_fd() {
            Some(l) => {
                l.set_nonblocking(true)?;
                (UnixListener::from_std(l)?, None)
            }
            None => {
                create_state_dir(&config.state)?;
                let path = config.socket(name);
                let l = berth_ipc::socket::bind(&path, config.group_id())
                    .map_err(|e| anyhow::anyhow!("bind {}: {e}", path.display()))?;
                (l, Some(path))
            }
        };
        let _store = lock_store(&config.root, name).await?;
        let shutdown = CancellationToken::new();
        spawn_signal_handler(shutdown.clone())?;
        let env = ServiceEnv::new(name, config);
        let result = run(env, listener, shutdown).await;
        if let Some(path) = bound {
            let _ = std::fs::remove_file(path);
        }
        result
    })
}

/// Takes `<root>/.<name>.lock` (flock, exclusive), waiting while another process holds it:
/// one process per store. When berthd dies its services get SIGTERM and drain, and a new
/// berthd starts new ones at once; without the lock an old snapshot service still finishing
/// an unpack and the new one, which had already read its index, each kept their own view
/// of the same store (found by the fault campaign). The fd is close-on-exec, so no child
/// (a shim) inherits the lock; it goes when the process does.
async fn lock_store(root: &std::path::Path, name: &str) -> anyhow::Result<nix::fcntl::Flock<std::fs::File>> {
    use nix::fcntl::{Flock, FlockArg};
    std::fs::create_dir_all(root)?;
    let path = root.join(format!(".{name}.lock"));
    let mut file = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(&path)?;
    let mut waited = false;
    loop {
        match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(lock) => return Ok(lock),
            Err((f, nix::errno::Errno::EWOULDBLOCK)) => {
                if !waited {
                    tracing::info!(lock = %path.display(), "waiting for the previous {name} process to exit");
                    waited = true;
                }
                file = f;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            Err((_, e)) => return Err(anyhow::anyhow!("lock {}: {e}", path.display())),
        }
    }
}

/// Creates the state dir, or takes an existing one, with mode 0711 (sockets inside carry
/// their own modes). An existing dir left with a looser mode is tightened, and one owned by
/// another user is refused: whoever can write it can replace the sockets.
pub fn create_state_dir(dir: &std::path::Path) -> std::io::Result<()> {
    use std::os::unix::fs::MetadataExt;
    std::fs::create_dir_all(dir)?;
    let owner = std::fs::metadata(dir)?.uid();
    let me = nix::unistd::geteuid().as_raw();
    if owner != me {
        return Err(std::io::Error::new(
            std::io::ErrorKind::PermissionDenied,
            format!("state dir {}: owned by uid {owner}, not by uid {me}", dir.display()),
        ));
    }
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o711))
}

fn spawn_signal_handler(shutdown: CancellationToken) -> std::io::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    tokio::spawn(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        tracing::info!("shutting down");
        shutdown.cancel();
    });
    Ok(())
}

/// Services hold many connections and files: lift the soft fd limit to the hard one.
pub fn raise_nofile_limit() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE)
        && soft < hard
    {
        let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
    }
}
