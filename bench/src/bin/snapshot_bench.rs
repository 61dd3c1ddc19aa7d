//! Layer unpack, berth beside the tools that set the floor and beside containerd.
//!
//! 1. Builds one gzip layer per directory given (default `usr/bin usr/include usr/sbin`,
//!    taken from this host with `tar | gzip -6`), all in a work dir on disk.
//! 2. Single layer (the largest): `gzip -dc | tar -x` and `tar -xzf` (the floor on this
//!    machine), then berth's apply (the snapshot store in-process, into an overlayfs
//!    upper dir). Median of `--runs` runs, each into a fresh directory.
//! 3. All layers as one image: berth's batch unpack (overlayfs, layers extracted side by
//!    side, chain committed in order), then containerd 1.x in a private temp root
//!    (`ctr images import --no-unpack` untimed, then `ctr images mount`, which unpacks,
//!    timed; overlayfs snapshotter).
//!
//! Run as root: `cargo run --release -p berth-bench --bin snapshot_bench -- [--runs N]
//! [--dirs "usr/bin usr/include"] [--no-containerd]`.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use berth_ipc::digest::Digest;
use berth_ipc::snapshot::{Kind, Layer, MEDIA_TYPE_LAYER_GZIP, Unpack};
use berth_snapshot::store::{Local, Snapshotter};
use berth_snapshot::{Backend, BackendKind, DirBlobs};
use sha2::Digest as _;

struct Built {
    path: PathBuf,
    digest: Digest,
    size: u64,
    diff_id: Digest,
    raw: u64,
}

fn sh(cmd: &str) -> anyhow::Result<()> {
    let st = Command::new("sh").arg("-c").arg(cmd).status().context("sh")?;
    if !st.success() {
        bail!("{cmd}: {st}");
    }
    Ok(())
}

fn hash_file(p: &Path, gunzip: bool) -> anyhow::Result<(Digest, u64)> {
    let f = std::fs::File::open(p)?;
    let mut r: Box<dyn Read> = if gunzip {
        Box::new(flate2::read::MultiGzDecoder::new(std::io::BufReader::new(f)))
    } else {
        Box::new(f)
    };
    let mut h = sha2::Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut n = 0u64;
    loop {
        let k = r.read(&mut buf)?;
        if k == 0 {
            break;
        }
        h.update(&buf[..k]);
        n += k as u64;
    }
    Ok((Digest::from_sha256(h.finalize().into()), n))
}

fn build_layer(work: &Path, i: usize, dir: &str) -> anyhow::Result<Built> {
    let path = work.join(format!("layer{i}.tar.gz"));
    sh(&format!("tar -C / -cf - {dir} | gzip -6 > {}", path.display()))?;
    let (digest, size) = hash_file(&path, false)?;
    let (diff_id, raw) = hash_file(&path, true)?;
    Ok(Built { path, digest, size, diff_id, raw })
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn fresh(p: &Path) -> anyhow::Result<()> {
    if p.exists() {
        std::fs::remove_dir_all(p)?;
    }
    std::fs::create_dir_all(p)?;
    sh("sync")
}

fn timed(f: impl FnOnce() -> anyhow::Result<()>) -> anyhow::Result<Duration> {
    let t = Instant::now();
    f()?;
    Ok(t.elapsed())
}

fn report(what: &str, d: Duration, bytes: u64, floor: Duration) {
    let mbs = bytes as f64 / d.as_secs_f64() / 1e6;
    println!(
        "{what:<44} {:>8.2} s {:>8.1} MB/s {:>6.2}x floor",
        d.as_secs_f64(),
        mbs,
        d.as_secs_f64() / floor.as_secs_f64()
    );
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let opt = |name: &str| args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned();
    let runs: usize = opt("--runs").map(|s| s.parse()).transpose()?.unwrap_or(3);
    let dirs = opt("--dirs").unwrap_or_else(|| "usr/bin usr/include usr/sbin".into());
    let with_containerd = !args.iter().any(|a| a == "--no-containerd");
    let work = tempfile::Builder::new().prefix("berth-snapbench-").tempdir_in("/var/tmp")?;
    let w = work.path();

    let layers: Vec<Built> = dirs
        .split_whitespace()
        .enumerate()
        .map(|(i, d)| build_layer(w, i, d))
        .collect::<anyhow::Result<_>>()?;
    let big = layers.iter().max_by_key(|l| l.raw).context("no layers")?;
    println!(
        "layers: {}",
        layers
            .iter()
            .map(|l| format!("{} MB ({} MB gz)", l.raw / 1_000_000, l.size / 1_000_000))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!(
        "single layer: {} MB uncompressed, {} MB gzip, {runs} runs, median",
        big.raw / 1_000_000,
        big.size / 1_000_000
    );

    let out = w.join("out");
    let mut floor = Vec::new();
    let mut tarxz = Vec::new();
    let mut berth = Vec::new();
    for _ in 0..runs {
        fresh(&out)?;
        floor.push(timed(|| sh(&format!("gzip -dc {} | tar -x -C {}", big.path.display(), out.display())))?);
        fresh(&out)?;
        tarxz.push(timed(|| sh(&format!("tar -xzf {} -C {}", big.path.display(), out.display())))?);
        fresh(&out)?;
        let root = w.join("berth-single");
        if root.exists() {
            std::fs::remove_dir_all(&root)?;
        }
        let b = Backend::open(&root, BackendKind::Overlay, u64::MAX)?;
        b.create("k", None, BTreeMap::new(), Kind::Active)?;
        sh("sync")?;
        let file = std::fs::File::open(&big.path)?;
        let mut applied = None;
        berth.push(timed(|| {
            applied = Some(b.apply("k", file)?);
            Ok(())
        })?);
        if applied.map(|a| a.diff_id) != Some(big.diff_id) {
            bail!("berth apply: wrong diff_id");
        }
    }
    let floor = median(floor);
    report("gzip -dc | tar -x  (floor)", floor, big.raw, floor);
    report("tar -xzf", median(tarxz), big.raw, floor);
    report("berth apply (overlayfs upper)", median(berth), big.raw, floor);

    let total: u64 = layers.iter().map(|l| l.raw).sum();
    println!("\nimage: {} layers, {} MB uncompressed", layers.len(), total / 1_000_000);
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    for parallel in [0usize, 1] {
        let mut times = Vec::new();
        for run in 0..runs {
            let root = w.join(format!("berth-image-{parallel}-{run}"));
            let blobs = Arc::new(DirBlobs::new(w.join("blobs")));
            for l in &layers {
                let p = blobs.path(&l.digest);
                std::fs::create_dir_all(p.parent().context("blob dir")?)?;
                if !p.exists() {
                    std::fs::hard_link(&l.path, &p)?;
                }
            }
            let mut config = berth_service_kit::Config { root: root.clone(), ..Default::default() };
            config.snapshot.parallel_unpack = parallel;
            let env = berth_service_kit::ServiceEnv::new("snapshot", config);
            let s = Local(berth_snapshot::build(&env, blobs)?);
            let req = Unpack {
                snapshotter: "overlayfs".into(),
                namespace: "default".into(),
                layers: layers
                    .iter()
                    .map(|l| Layer {
                        digest: l.digest,
                        media_type: MEDIA_TYPE_LAYER_GZIP.into(),
                        diff_id: l.diff_id,
                    })
                    .collect(),
                labels: BTreeMap::new(),
            };
            sh("sync")?;
            times.push(timed(|| rt.block_on(s.call(req)).map(drop).map_err(anyhow::Error::from))?);
            std::fs::remove_dir_all(&root)?;
        }
        let label = if parallel == 0 {
            "berth unpack (parallel, one per CPU)"
        } else {
            "berth unpack (one layer at a time)"
        };
        report(label, median(times), total, floor);
    }
    if with_containerd {
        match containerd_unpack(w, &layers, runs) {
            Ok(d) => report("containerd 1.6 unpack (ctr images mount)", d, total, floor),
            Err(e) => println!("containerd: skipped: {e:#}"),
        }
    }
    Ok(())
}

fn write_json(dir: &Path, v: &serde_json::Value) -> anyhow::Result<(Digest, u64)> {
    let bytes = serde_json::to_vec(v)?;
    let d = Digest::of(&bytes);
    std::fs::write(dir.join(d.hex()), &bytes)?;
    Ok((d, bytes.len() as u64))
}

/// An OCI archive of `layers`, for `ctr images import`.
fn oci_archive(w: &Path, layers: &[Built]) -> anyhow::Result<PathBuf> {
    let dir = w.join("oci");
    let blobs = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs)?;
    for l in layers {
        let p = blobs.join(l.digest.hex());
        if !p.exists() {
            std::fs::hard_link(&l.path, p)?;
        }
    }
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        a => a,
    };
    let config = serde_json::json!({
        "architecture": arch, "os": "linux", "config": {},
        "rootfs": {"type": "layers", "diff_ids": layers.iter().map(|l| l.diff_id.to_string()).collect::<Vec<_>>()},
    });
    let (cd, cs) = write_json(&blobs, &config)?;
    let manifest = serde_json::json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd.to_string(), "size": cs},
        "layers": layers.iter().map(|l| serde_json::json!({"mediaType": MEDIA_TYPE_LAYER_GZIP, "digest": l.digest.to_string(), "size": l.size})).collect::<Vec<_>>(),
    });
    let (md, ms) = write_json(&blobs, &manifest)?;
    let index = serde_json::json!({"schemaVersion": 2, "manifests": [{
        "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": md.to_string(), "size": ms,
        "annotations": {"io.containerd.image.name": "docker.io/library/bench:latest", "org.opencontainers.image.ref.name": "latest"},
        "platform": {"architecture": arch, "os": "linux"},
    }]});
    std::fs::write(dir.join("index.json"), serde_json::to_vec(&index)?)?;
    std::fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#)?;
    let tar = w.join("image.tar");
    sh(&format!("tar -C {} -chf {} .", dir.display(), tar.display()))?;
    Ok(tar)
}

struct Daemon(std::process::Child, PathBuf);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = sh(&format!("umount {}/mnt 2>/dev/null", self.1.display()));
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.0.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let _ = self.0.wait();
        let _ = sh(&format!(
            "grep -o '{}[^ ]*' /proc/mounts | sort -r | xargs -r umount 2>/dev/null",
            self.1.display()
        ));
    }
}

/// containerd's unpack of the same image, median of `runs`, each in a fresh root.
fn containerd_unpack(w: &Path, layers: &[Built], runs: usize) -> anyhow::Result<Duration> {
    which("containerd")?;
    which("ctr")?;
    let tar = oci_archive(w, layers)?;
    let mut times = Vec::new();
    for run in 0..runs {
        let base = w.join(format!("ctd{run}"));
        std::fs::create_dir_all(base.join("mnt"))?;
        let sock = base.join("c.sock");
        let cfg = base.join("config.toml");
        std::fs::write(
            &cfg,
            format!(
                "version = 2\nroot = \"{0}/root\"\nstate = \"{0}/state\"\ndisabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n[grpc]\n  address = \"{1}\"\n",
                base.display(),
                sock.display()
            ),
        )?;
        let child = Command::new("containerd")
            .arg("--config")
            .arg(&cfg)
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(base.join("containerd.log"))?)
            .spawn()?;
        let _d = Daemon(child, base.clone());
        let ctr = |a: &str| format!("ctr --address {} -n bench {a}", sock.display());
        let t0 = Instant::now();
        while !sock.exists() || sh(&format!("{} >/dev/null 2>&1", ctr("version"))).is_err() {
            if t0.elapsed() > Duration::from_secs(20) {
                bail!("containerd did not come up (see {}/containerd.log)", base.display());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        sh(&format!("{} >/dev/null", ctr(&format!("images import --no-unpack {}", tar.display()))))?;
        sh("sync")?;
        let mount = ctr(&format!(
            "images mount --snapshotter overlayfs docker.io/library/bench:latest {}/mnt",
            base.display()
        ));
        times.push(timed(|| sh(&format!("{mount} >/dev/null")))?);
    }
    Ok(median(times))
}

fn which(tool: &str) -> anyhow::Result<()> {
    sh(&format!("command -v {tool} >/dev/null")).with_context(|| format!("{tool} not installed"))
}
