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

/// One image of a hand-made OCI layout: its layer directories and config tweaks.
pub struct LayoutImage<'a> {
    /// The name it is annotated with.
    pub name: &'a str,
    /// Layer directories, base first; odd-numbered ones are gzipped.
    pub layers: &'a [PathBuf],
    /// Replace the config's diff_ids with these (a lying config).
    pub fake_diff_ids: Option<Vec<String>>,
    /// Wrap the manifest in an index listing it for this platform `n` times.
    pub index: Option<(&'a str, usize)>,
}

fn put_blob(layout: &Path, data: &[u8]) -> (String, u64) {
    let d = berth_ipc::Digest::of(data);
    let dir = layout.join("blobs/sha256");
    std::fs::create_dir_all(&dir).expect("mkdir blobs");
    std::fs::write(dir.join(d.hex()), data).expect("write blob");
    (d.to_string(), data.len() as u64)
}

/// Writes an OCI layout tar at `out` holding `images`, built with `tar` and `gzip -n`.
pub fn layout_tar(work: &Path, images: &[LayoutImage<'_>], out: &Path) {
    let layout = work.join(format!("layout-{}", free_port()));
    std::fs::create_dir_all(&layout).expect("mkdir layout");
    std::fs::write(layout.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).expect("oci-layout");
    let host = berth_client::oci::Platform::host();
    let mut entries = Vec::new();
    for img in images {
        let mut layers = Vec::new();
        let mut diff_ids = Vec::new();
        for (i, dir) in img.layers.iter().enumerate() {
            let t = work.join(format!("layer-{}.tar", free_port()));
            sh(Command::new("tar").arg("-C").arg(dir).args(["--numeric-owner", "-cf"]).arg(&t).arg("."));
            let raw = std::fs::read(&t).expect("read layer");
            diff_ids.push(berth_ipc::Digest::of(&raw).to_string());
            let (bytes, mt) = if i % 2 == 1 {
                let gz = sh_bytes(Command::new("gzip").args(["-n", "-c"]).arg(&t));
                (gz, "application/vnd.oci.image.layer.v1.tar+gzip")
            } else {
                (raw, "application/vnd.oci.image.layer.v1.tar")
            };
            let (d, size) = put_blob(&layout, &bytes);
            layers.push(serde_json::json!({"mediaType": mt, "digest": d, "size": size}));
        }
        let config = serde_json::json!({
            "architecture": host.architecture, "os": host.os,
            "rootfs": {"type": "layers", "diff_ids": img.fake_diff_ids.clone().unwrap_or(diff_ids)},
        });
        let (cd, cs) = put_blob(&layout, config.to_string().as_bytes());
        let manifest = serde_json::json!({
            "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": cs},
            "layers": layers,
        });
        let (md, ms) = put_blob(&layout, manifest.to_string().as_bytes());
        let mut entry = serde_json::json!({"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": md, "size": ms});
        if let Some((platform, n)) = img.index {
            let (os, arch) = platform.split_once('/').expect("os/arch");
            let child = serde_json::json!({"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": md, "size": ms, "platform": {"os": os, "architecture": arch}});
            let index = serde_json::json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": vec![child; n]});
            let (id, is) = put_blob(&layout, index.to_string().as_bytes());
            entry = serde_json::json!({"mediaType": "application/vnd.oci.image.index.v1+json", "digest": id, "size": is});
        }
        entry["annotations"] = serde_json::json!({"io.containerd.image.name": img.name});
        entries.push(entry);
    }
    let index = serde_json::json!({"schemaVersion": 2, "manifests": entries});
    std::fs::write(layout.join("index.json"), index.to_string()).expect("index.json");
    tar_dir(&layout, out, false);
}

/// Runs a command, panicking unless it succeeds; returns stdout bytes.
pub fn sh_bytes(cmd: &mut Command) -> Vec<u8> {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(out.status.success(), "{cmd:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    out.stdout
}

/// Runs `berth ARGS…`, panicking with its output and berthd's log unless it succeeds.
pub fn berth_ok(berth: &crate::Berth, args: &[&str]) -> String {
    let out = berth.cli(args);
    assert!(
        out.status.success(),
        "berth {args:?}: {}{}\nlog:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        berth.log()
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs `berth ARGS…` expecting failure; returns stderr.
pub fn berth_err(berth: &crate::Berth, args: &[&str]) -> String {
    let out = berth.cli(args);
    assert!(!out.status.success(), "berth {args:?} should fail: {}", String::from_utf8_lossy(&out.stdout));
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The digest image `name` of namespace `ns` points at, if it exists.
pub fn image_digest(berth: &crate::Berth, ns: &str, name: &str) -> Option<String> {
    let out = berth_ok(berth, &["-n", ns, "--format", "json", "images", "ls"]);
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    v.as_array()?.iter().find(|i| i["name"] == name).and_then(|i| i["digest"].as_str()).map(str::to_string)
}

impl Registry {
    /// Overwrites the largest stored blob with as many garbage bytes.
    pub fn corrupt_largest_blob(&self) {
        let mut best: Option<(u64, PathBuf)> = None;
        let mut stack = vec![self._dir.path().join("data")];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
                let p = e.path();
                let Ok(m) = e.metadata() else { continue };
                if m.is_dir() {
                    stack.push(p);
                } else if p.file_name().is_some_and(|n| n == "data")
                    && best.as_ref().is_none_or(|b| m.len() > b.0)
                {
                    best = Some((m.len(), p));
                }
            }
        }
        let (len, path) = best.expect("a blob in the registry");
        std::fs::write(path, vec![0x5a; len as usize]).expect("corrupt blob");
    }
}
