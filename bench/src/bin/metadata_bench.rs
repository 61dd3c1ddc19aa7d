//! Metadata benchmark: image create/get/list through the socket with 16 concurrent
//! clients over 10,000 images, and a full GC pass over 10,000 images / 50,000 blob records.
//!
//! The socket figures run the real `berth-metadata` binary (found next to this executable)
//! in a temp root, so they include the socket hops and the fsync of every write
//! transaction. The GC pass runs the collector in-process over a store filled directly,
//! with an in-memory backend holding one object per blob record.
//!
//! ```text
//! cargo build --release -p berth-metadata -p berth-bench
//! BENCH_TMP=/var/tmp target/release/metadata_bench [--images 10000] [--clients 16] [--seconds 5]
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use berth_bench::stats::{Percentiles, us};
use berth_ipc::digest::Digest;
use berth_ipc::metadata::*;
use berth_ipc::sync::lock;
use berth_ipc::{Client, ClientOptions};
use berth_metadata::gc::backend::BoxFuture;
use berth_metadata::gc::{Backend, BackendObject, ObjectId};
use berth_metadata::store::keys::{self, Kind};
use berth_metadata::{Collector, Store};

fn arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn bench_tmp() -> PathBuf {
    std::env::var_os("BENCH_TMP").map_or_else(std::env::temp_dir, PathBuf::from)
}

struct Service {
    child: Child,
    _dir: tempfile::TempDir,
    state: PathBuf,
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn start_service() -> anyhow::Result<Service> {
    let exe = std::env::current_exe()?;
    let bin = exe.parent().context("exe dir")?.join("berth-metadata");
    anyhow::ensure!(bin.exists(), "{} missing: cargo build --release -p berth-metadata", bin.display());
    let dir = tempfile::Builder::new().prefix("berth-metadata-bench-").tempdir_in(bench_tmp())?;
    let (root, state) = (dir.path().join("root"), dir.path().join("state"));
    let config = dir.path().join("berth.toml");
    std::fs::write(&config, "[metadata]\ngc_mutations = 0\ngc_interval_s = 0\n")?;
    let child = Command::new(&bin)
        .args(["--root".as_ref(), root.as_os_str(), "--state".as_ref(), state.as_os_str()])
        .args(["--config".as_ref(), config.as_os_str()])
        .env("RUST_LOG", "warn")
        .stderr(Stdio::inherit())
        .spawn()?;
    let svc = Service { child, _dir: dir, state };
    client(&svc.state).health().await?;
    Ok(svc)
}

fn client(state: &Path) -> Client<Metadata> {
    Client::in_state_dir(
        state,
        ClientOptions { deadline: Duration::from_secs(10), client_name: "bench".into() },
    )
}

fn image(i: u64) -> Image {
    let name = format!("registry.example/bench/app-{i}:v1");
    Image {
        target: Descriptor {
            media_type: "application/vnd.oci.image.manifest.v1+json".into(),
            digest: Digest::of(name.as_bytes()),
            size: 1234,
        },
        name,
        labels: [("io.berth/bench".to_string(), (i % 10).to_string())].into(),
        created: 0,
        updated: 0,
    }
}

/// Runs `op(i)` for i in 0..total split over `clients` connections; ops/s and latencies.
async fn run_ops<F, Fut>(state: &Path, total: u64, clients: u64, op: F) -> anyhow::Result<(f64, Percentiles)>
where
    F: Fn(Client<Metadata>, u64) -> Fut + Send + Sync + Clone + 'static,
    Fut: std::future::Future<Output = anyhow::Result<()>> + Send,
{
    let samples = Arc::new(Mutex::new(Vec::with_capacity(usize::try_from(total)?)));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..clients {
        let (cl, op, samples) = (client(state), op.clone(), samples.clone());
        tasks.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            let mut i = c;
            while i < total {
                let t = Instant::now();
                op(cl.clone(), i).await?;
                mine.push(t.elapsed());
                i += clients;
            }
            lock(&samples).extend(mine);
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    let rate = total as f64 / started.elapsed().as_secs_f64();
    let mut s = lock(&samples).clone();
    Ok((rate, Percentiles::of(&mut s).context("no samples")?))
}

fn line(what: &str, rate: f64, p: &Percentiles) {
    println!("  {what:<34} {rate:>9.0} ops/s   p50 {:>8} µs   p99 {:>8} µs", us(p.p50), us(p.p99));
}

async fn socket_bench(images: u64, clients: u64, seconds: u64) -> anyhow::Result<()> {
    let svc = start_service().await?;
    println!("socket: {images} images, {clients} concurrent clients (each its own connection)");
    let (rate, p) = run_ops(&svc.state, images, clients, |c, i| async move {
        c.call(CreateImage { namespace: "bench".into(), image: image(i) }).await?;
        Ok(())
    })
    .await?;
    line("image create (fsync per write)", rate, &p);
    let gets = (images * 4).max(seconds * 10_000);
    let (rate, p) = run_ops(&svc.state, gets, clients, move |c, i| async move {
        let n = (i * 7919) % images;
        c.call(GetImage(ByName { namespace: "bench".into(), name: image(n).name })).await?;
        Ok(())
    })
    .await?;
    line("image get", rate, &p);
    let list = |filters: Vec<String>, expect: usize| {
        move |c: Client<Metadata>, _| {
            let filters = filters.clone();
            async move {
                let mut s = c.stream(ListImages(ListIn { namespace: "bench".into(), filters })).await?;
                let mut n = 0;
                while let Some(page) = s.next().await {
                    n += page?.len();
                }
                anyhow::ensure!(n == expect, "listed {n}, expected {expect}");
                Ok(())
            }
        }
    };
    let all = usize::try_from(images)?;
    let (rate, p) = run_ops(&svc.state, clients * 4, clients, list(vec![], all)).await?;
    line(&format!("image list (all {images})"), rate, &p);
    let (rate, p) = run_ops(
        &svc.state,
        clients * 4,
        clients,
        list(vec!["labels.\"io.berth/bench\"==3".into()], all / 10),
    )
    .await?;
    line("image list (label filter, 10%)", rate, &p);
    Ok(())
}

/// Every blob object, none deleted unless asked.
struct Memory(Mutex<BTreeMap<ObjectId, u64>>);

impl Backend for Memory {
    fn name(&self) -> &str {
        "memory"
    }
    fn holds(&self, id: &ObjectId) -> bool {
        matches!(id, ObjectId::Content(_))
    }
    fn list(&self) -> BoxFuture<'_, berth_ipc::Result<Vec<BackendObject>>> {
        let objs =
            lock(&self.0).iter().map(|(id, c)| BackendObject { id: id.clone(), created_ns: *c }).collect();
        Box::pin(async move { Ok(objs) })
    }
    fn delete<'a>(&'a self, id: &'a ObjectId) -> BoxFuture<'a, berth_ipc::Result<()>> {
        lock(&self.0).remove(id);
        Box::pin(async { Ok(()) })
    }
}

async fn gc_bench(images: u64, blobs_per_image: u64) -> anyhow::Result<()> {
    let dir = tempfile::Builder::new().prefix("berth-metadata-gc-bench-").tempdir_in(bench_tmp())?;
    let store = Arc::new(Store::open(dir.path()).map_err(|e| anyhow::anyhow!("{e}"))?);
    let backend = Arc::new(Memory(Mutex::new(BTreeMap::new())));
    let fill = Instant::now();
    for chunk in (0..images).collect::<Vec<_>>().chunks(500) {
        store
            .write(|tx| {
                berth_metadata::store::namespaces::ensure(tx, "bench")?;
                for &i in chunk {
                    let img = image(i);
                    let mut refs = Labels::new();
                    for b in 1..blobs_per_image {
                        let d = Digest::of(format!("blob {i} {b}").as_bytes());
                        refs.insert(format!("containerd.io/gc.ref.content.l.{b}"), d.to_string());
                        put_blob(tx, &d, Labels::new())?;
                    }
                    put_blob(tx, &img.target.digest, refs)?;
                    tx.put(&keys::object("bench", Kind::Image, &img.name), &img)?;
                }
                Ok(())
            })
            .map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    let blobs = {
        let mut objects = lock(&backend.0);
        for rec in store.list_content("bench", &Default::default()).map_err(|e| anyhow::anyhow!("{e}"))? {
            objects.insert(ObjectId::Content(rec.digest), 0);
        }
        objects.len()
    };
    println!(
        "gc: {images} images, {blobs} blob records and backend objects (filled in {:.1} s)",
        fill.elapsed().as_secs_f64()
    );
    let gc =
        Collector::new(store.clone(), vec![backend.clone() as Arc<dyn Backend>], Duration::from_secs(3600));
    let r = gc.collect().await.map_err(|e| anyhow::anyhow!("{e}"))?;
    println!(
        "  full pass, nothing to free          mark+sweep {:>7.1} ms   total {:>7.1} ms",
        r.mark_sweep_us as f64 / 1e3,
        r.total_us as f64 / 1e3
    );
    let gone = images / 10;
    for i in 0..gone {
        store.delete_image("bench", &image(i).name).map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    let r = gc.collect().await.map_err(|e| anyhow::anyhow!("{e}"))?;
    println!(
        "  full pass after removing {gone} images  mark+sweep {:>7.1} ms   total {:>7.1} ms   ({} records, {} blobs freed)",
        r.mark_sweep_us as f64 / 1e3,
        r.total_us as f64 / 1e3,
        r.content_records,
        r.blobs_deleted
    );
    Ok(())
}

fn put_blob(tx: &mut berth_metadata::store::Tx<'_>, d: &Digest, labels: Labels) -> berth_ipc::Result<()> {
    let rec = ContentRecord { digest: *d, size: 1000, labels, created: tx.now(), updated: tx.now() };
    tx.put(&keys::content("bench", d), &rec)?;
    tx.put(&keys::known_content(d), &())
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> anyhow::Result<()> {
    let images = arg("--images", 10_000);
    let clients = arg("--clients", 16);
    let seconds = arg("--seconds", 5);
    socket_bench(images, clients, seconds).await?;
    gc_bench(images, 5).await
}
