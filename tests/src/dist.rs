//! Helpers for the distribution tests: a busybox rootfs, tarballs and OCI layouts made with
//! the host's tools, and a `docker-registry` on a free 127.0.0.1 port.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Whether `tool` is on `PATH`.
pub fn have(tool: &str) -> bool {
    Command::new("sh").arg("-c").arg(format!("command -v {tool}")).output().is_ok_and(|o| o.status.success())
}

/// Runs a command, panicking with its output unless it succeeds; returns stdout.
pub fn sh(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Makes `dir` a tiny root filesystem: `/bin/busybox` (static) with a few applet links, and
/// `/etc/berth-test` holding `marker`.
pub fn busybox_rootfs(dir: &Path, marker: &str) {
    std::fs::create_dir_all(dir.join("bin")).expect("mkdir bin");
    std::fs::create_dir_all(dir.join("etc")).expect("mkdir etc");
    std::fs::copy("/bin/busybox", dir.join("bin/busybox")).expect("copy busybox");
    for applet in ["sh", "ls", "cat", "echo", "true"] {
        let link = dir.join("bin").join(applet);
        if !link.exists() {
            std::os::unix::fs::symlink("busybox", link).expect("symlink");
        }
    }
    std::fs::write(dir.join("etc/berth-test"), marker).expect("write marker");
}

/// Tars `dir`'s contents into `out` (`z` for gzip).
pub fn tar_dir(dir: &Path, out: &Path, gzip: bool) {
    let flags = if gzip { "-czf" } else { "-cf" };
    sh(Command::new("tar").arg("-C").arg(dir).arg("--numeric-owner").arg(flags).arg(out).arg("."));
}

/// Builds an OCI layout at `layout` with image `tag` whose one layer is `rootfs`, with umoci.
pub fn umoci_image(rootfs: &Path, layout: &Path, tag: &str, scratch: &Path) {
    let image = format!("{}:{tag}", layout.display());
    if !layout.join("index.json").exists() {
        sh(Command::new("umoci").arg("init").arg("--layout").arg(layout));
    }
    sh(Command::new("umoci").args(["new", "--image", &image]));
    let bundle = scratch.join(format!("bundle-{tag}"));
    sh(Command::new("umoci").args(["unpack", "--rootless", "--image", &image]).arg(&bundle));
    sh(Command::new("cp").arg("-a").arg(format!("{}/.", rootfs.display())).arg(bundle.join("rootfs")));
    sh(Command::new("umoci").args(["repack", "--image", &image]).arg(&bundle));
    let _ = std::fs::remove_dir_all(&bundle);
}

/// A `docker-registry` serving on 127.0.0.1, storage in a temp dir; killed on drop.
pub struct Registry {
    child: Child,
    /// `127.0.0.1:PORT`.
    pub addr: String,
    _dir: tempfile::TempDir,
}

impl Registry {
    /// Starts a registry; `htpasswd` (a file path) turns on Basic auth.
    pub fn start(htpasswd: Option<&Path>) -> Registry {
        let dir = tempfile::Builder::new().prefix("berth-registry-").tempdir().expect("tempdir");
        let port = free_port();
        let addr = format!("127.0.0.1:{port}");
        let auth = htpasswd.map_or(String::new(), |p| {
            format!("auth:\n  htpasswd:\n    realm: berth-test\n    path: {}\n", p.display())
        });
        let config = format!(
            "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {addr}\n{auth}",
            dir.path().join("data").display()
        );
        let cfg = dir.path().join("config.yml");
        std::fs::write(&cfg, config).expect("registry config");
        let log = std::fs::File::create(dir.path().join("registry.log")).expect("log");
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&cfg)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("spawn docker-registry");
        let deadline = Instant::now() + Duration::from_secs(15);
        while std::net::TcpStream::connect(&addr).is_err() {
            assert!(Instant::now() < deadline, "registry did not listen on {addr}");
            std::thread::sleep(Duration::from_millis(50));
        }
        Registry { child, addr, _dir: dir }
    }

    /// The registry's log.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self._dir.path().join("registry.log")).unwrap_or_default()
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A TCP port nobody listens on right now.
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

/// A path under `dir`.
pub fn p(dir: &Path, name: &str) -> PathBuf {
    dir.join(name)
}
