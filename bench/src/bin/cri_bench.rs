//! CRI lifecycle latencies and memory per pod, the same calls against each CRI endpoint
//! named, in one run (berth-cri and containerd's CRI side by side; `bench/cri.sh` starts both).
//!
//!   cri_bench --image IMG --runs N --pods K LABEL=SOCKET[=PATTERN,PATTERN…] …
//!
//! Per endpoint, N rounds of one pod with one container (`sleep`), each step timed:
//! RunPodSandbox, CreateContainer, StartContainer, StopContainer (timeout 0), RemoveContainer,
//! StopPodSandbox, RemovePodSandbox, and "pod + container from nothing" (the first three
//! together). The endpoints alternate round by round, so load on the machine hits both alike.
//! Then K pods are started at once and the proportional set size (PSS, `smaps_rollup`) of
//! every process whose command line contains one of PATTERN is read before and after:
//! the growth divided by K is the memory each running pod costs (shims, holders, pause
//! processes, service growth; the workload's own `sleep` is not counted).
//!
//! Every pod must have an address (PodSandboxStatus `network.ip`, asked outside the timing):
//! the bench compares runtimes that both ran their CNI network's plugins.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use berth_bench::stats::Percentiles;
use hyper_util::rt::TokioIo;
use k8s_cri::v1 as cri;
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use tonic::transport::{Channel, Endpoint, Uri};

struct Target {
    label: String,
    socket: PathBuf,
    patterns: Vec<String>,
    rt: Option<RuntimeServiceClient<Channel>>,
}

const STEPS: [&str; 8] = [
    "RunPodSandbox",
    "CreateContainer",
    "StartContainer",
    "StopContainer",
    "RemoveContainer",
    "StopPodSandbox",
    "RemovePodSandbox",
    "pod+container from nothing",
];

fn pod_config(name: &str) -> cri::PodSandboxConfig {
    cri::PodSandboxConfig {
        metadata: Some(cri::PodSandboxMetadata {
            name: name.into(),
            uid: format!("uid-{name}"),
            namespace: "bench".into(),
            attempt: 0,
        }),
        hostname: "bench".into(),
        // What the kubelet sends for a pod without shareProcessNamespace: a pid namespace
        // per container (so berth needs no holder process; containerd still has its pause).
        linux: Some(cri::LinuxPodSandboxConfig {
            security_context: Some(cri::LinuxSandboxSecurityContext {
                namespace_options: Some(cri::NamespaceOption {
                    pid: cri::NamespaceMode::Container as i32,
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn container_config(image: &str) -> cri::ContainerConfig {
    cri::ContainerConfig {
        metadata: Some(cri::ContainerMetadata { name: "c".into(), attempt: 0 }),
        image: Some(cri::ImageSpec { image: image.into(), ..Default::default() }),
        command: vec!["sleep".into(), "1000".into()],
        linux: Some(cri::LinuxContainerConfig::default()),
        ..Default::default()
    }
}

async fn connect(socket: &std::path::Path) -> anyhow::Result<Channel> {
    let path = socket.to_path_buf();
    Ok(Endpoint::try_from("http://[::]:50051")?
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let path = path.clone();
            async move { Ok::<_, std::io::Error>(TokioIo::new(tokio::net::UnixStream::connect(path).await?)) }
        }))
        .await?)
}

/// One round: every step's time.
async fn round(
    rt: &mut RuntimeServiceClient<Channel>,
    image: &str,
    name: &str,
) -> anyhow::Result<[Duration; 8]> {
    let mut t = [Duration::ZERO; 8];
    let config = pod_config(name);
    let start = Instant::now();
    let pod = rt
        .run_pod_sandbox(cri::RunPodSandboxRequest {
            config: Some(config.clone()),
            runtime_handler: String::new(),
        })
        .await?
        .into_inner()
        .pod_sandbox_id;
    t[0] = start.elapsed();
    // Outside the timing, the pod's address: both runtimes must have run the CNI plugins.
    let asked = Instant::now();
    pod_ip(rt, &pod).await?;
    let asked = asked.elapsed();
    let s = Instant::now();
    let req = cri::CreateContainerRequest {
        pod_sandbox_id: pod.clone(),
        config: Some(container_config(image)),
        sandbox_config: Some(config),
    };
    let c = rt.create_container(req).await?.into_inner().container_id;
    t[1] = s.elapsed();
    let s = Instant::now();
    rt.start_container(cri::StartContainerRequest { container_id: c.clone() }).await?;
    t[2] = s.elapsed();
    t[7] = start.elapsed() - asked;
    let s = Instant::now();
    rt.stop_container(cri::StopContainerRequest { container_id: c.clone(), timeout: 0 }).await?;
    t[3] = s.elapsed();
    let s = Instant::now();
    rt.remove_container(cri::RemoveContainerRequest { container_id: c }).await?;
    t[4] = s.elapsed();
    let s = Instant::now();
    rt.stop_pod_sandbox(cri::StopPodSandboxRequest { pod_sandbox_id: pod.clone() }).await?;
    t[5] = s.elapsed();
    let s = Instant::now();
    rt.remove_pod_sandbox(cri::RemovePodSandboxRequest { pod_sandbox_id: pod }).await?;
    t[6] = s.elapsed();
    Ok(t)
}

/// The address of pod `id` (PodSandboxStatus network.ip); an error when it has none.
async fn pod_ip(rt: &mut RuntimeServiceClient<Channel>, id: &str) -> anyhow::Result<String> {
    let req = cri::PodSandboxStatusRequest { pod_sandbox_id: id.into(), verbose: false };
    let status = rt.pod_sandbox_status(req).await?.into_inner().status;
    let ip = status.and_then(|s| s.network).map(|n| n.ip).unwrap_or_default();
    anyhow::ensure!(!ip.is_empty(), "pod {id} has no IP address: its runtime ran no CNI network");
    Ok(ip)
}

/// PSS in bytes of every process whose command line contains one of `patterns`, by the
/// process's program name (the command line's first word, its last path component).
fn pss(patterns: &[String]) -> HashMap<String, (u64, usize)> {
    let mut by_name: HashMap<String, (u64, usize)> = HashMap::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else { continue };
        // Not this bench (its own command line names the patterns).
        if pid == std::process::id() {
            continue;
        }
        let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
        if !patterns.iter().any(|p| cmd.contains(p.as_str())) {
            continue;
        }
        let rollup = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).unwrap_or_default();
        let kb: u64 = rollup
            .lines()
            .find(|l| l.starts_with("Pss:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let name =
            cmd.split(' ').next().unwrap_or_default().rsplit('/').next().unwrap_or_default().to_string();
        let slot = by_name.entry(name).or_default();
        slot.0 += kb * 1024;
        slot.1 += 1;
    }
    by_name
}

fn total(by_name: &HashMap<String, (u64, usize)>) -> u64 {
    by_name.values().map(|(b, _)| b).sum()
}

/// Starts `k` pods with a container each; answers the PSS growth per pod, then removes them.
async fn memory(t: &mut Target, image: &str, k: usize) -> anyhow::Result<u64> {
    let rt = t.rt.as_mut().expect("connected");
    let before = pss(&t.patterns);
    let mut pods = Vec::new();
    for i in 0..k {
        let config = pod_config(&format!("mem-{i}"));
        let pod = rt
            .run_pod_sandbox(cri::RunPodSandboxRequest {
                config: Some(config.clone()),
                runtime_handler: String::new(),
            })
            .await?
            .into_inner()
            .pod_sandbox_id;
        pod_ip(rt, &pod).await?;
        let req = cri::CreateContainerRequest {
            pod_sandbox_id: pod.clone(),
            config: Some(container_config(image)),
            sandbox_config: Some(config),
        };
        let c = rt.create_container(req).await?.into_inner().container_id;
        rt.start_container(cri::StartContainerRequest { container_id: c }).await?;
        pods.push(pod);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = pss(&t.patterns);
    // CRI_BENCH_HOLD_S: the pods stay up that long, for a look at their processes.
    if let Some(s) = std::env::var("CRI_BENCH_HOLD_S").ok().and_then(|v| v.parse().ok()) {
        tokio::time::sleep(Duration::from_secs(s)).await;
    }
    // By program: what each kind of process adds per pod (count before → after).
    let mut names: Vec<&String> = after.keys().chain(before.keys()).collect();
    names.sort();
    names.dedup();
    for name in names {
        let (b, nb) = before.get(name).copied().unwrap_or_default();
        let (a, na) = after.get(name).copied().unwrap_or_default();
        let per = (a as f64 - b as f64) / k.max(1) as f64 / 1024.0;
        println!("  {:<26}{per:>9.1} KiB per pod   ({nb} → {na} processes)", format!("{}:{name}", t.label));
    }
    for pod in pods {
        rt.stop_pod_sandbox(cri::StopPodSandboxRequest { pod_sandbox_id: pod.clone() }).await?;
        rt.remove_pod_sandbox(cri::RemovePodSandboxRequest { pod_sandbox_id: pod }).await?;
    }
    Ok(total(&after).saturating_sub(total(&before)) / k.max(1) as u64)
}

fn ms(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1e3)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let (mut image, mut runs, mut pods) = (String::new(), 10usize, 10usize);
    let mut pull = None;
    let mut targets = Vec::new();
    while let Some(a) = args.next() {
        match a.as_str() {
            "--image" => image = args.next().unwrap_or_default(),
            "--pull" => pull = args.next(),
            "--runs" => runs = args.next().and_then(|v| v.parse().ok()).unwrap_or(runs),
            "--pods" => pods = args.next().and_then(|v| v.parse().ok()).unwrap_or(pods),
            spec => {
                let mut parts = spec.splitn(3, '=');
                let (Some(label), Some(socket)) = (parts.next(), parts.next()) else {
                    anyhow::bail!("target {spec:?}: expected LABEL=SOCKET[=PATTERN,…]");
                };
                let patterns =
                    parts.next().map(|p| p.split(',').map(str::to_string).collect()).unwrap_or_default();
                targets.push(Target { label: label.into(), socket: socket.into(), patterns, rt: None });
            }
        }
    }
    if let Some(img) = pull {
        for t in &targets {
            let mut images =
                k8s_cri::v1::image_service_client::ImageServiceClient::new(connect(&t.socket).await?);
            let spec = Some(cri::ImageSpec { image: img.clone(), ..Default::default() });
            let start = Instant::now();
            images.pull_image(cri::PullImageRequest { image: spec, ..Default::default() }).await?;
            println!("{}: pulled {img} in {} ms", t.label, ms(start.elapsed()));
        }
        return Ok(());
    }
    anyhow::ensure!(
        !image.is_empty() && !targets.is_empty(),
        "usage: cri_bench --image IMG [--runs N] [--pods K] LABEL=SOCKET[=PATTERNS] …"
    );
    for t in &mut targets {
        t.rt = Some(RuntimeServiceClient::new(connect(&t.socket).await?));
        // Warm-up: the image's first unpack is not a lifecycle cost.
        round(t.rt.as_mut().expect("rt"), &image, &format!("warm-{}", t.label)).await?;
    }
    let mut samples: HashMap<String, Vec<Vec<Duration>>> = HashMap::new();
    for r in 0..runs {
        for t in &mut targets {
            let times = round(t.rt.as_mut().expect("rt"), &image, &format!("run-{r}")).await?;
            let per = samples.entry(t.label.clone()).or_insert_with(|| vec![Vec::new(); STEPS.len()]);
            for (i, d) in times.iter().enumerate() {
                per[i].push(*d);
            }
        }
    }
    println!("CRI lifecycle, median of {runs} rounds, ms (p90 in brackets)");
    print!("{:<28}", "step");
    for t in &targets {
        print!("{:>20}", t.label);
    }
    if targets.len() == 2 {
        print!("{:>10}", "ratio");
    }
    println!();
    for (i, step) in STEPS.iter().enumerate() {
        print!("{step:<28}");
        let mut p50s = Vec::new();
        for t in &targets {
            let mut v = samples[&t.label][i].clone();
            let p = Percentiles::of(&mut v).expect("samples");
            print!("{:>20}", format!("{} [{}]", ms(p.p50), ms(p.p90)));
            p50s.push(p.p50);
        }
        if let [a, b] = p50s.as_slice() {
            print!("{:>10.2}", a.as_secs_f64() / b.as_secs_f64().max(1e-9));
        }
        println!();
    }
    println!("\nmemory per running pod (sandbox + one container), {pods} pods at once, PSS");
    let mut mems = Vec::new();
    for t in &mut targets {
        if t.patterns.is_empty() {
            continue;
        }
        let m = memory(t, &image, pods).await?;
        println!("{:<28}{:>12.2} MiB   ({})", t.label, m as f64 / 1048576.0, t.patterns.join(", "));
        mems.push(m);
    }
    if let [a, b] = mems.as_slice() {
        println!("{:<28}{:>12.3}", "ratio", *a as f64 / (*b).max(1) as f64);
    }
    Ok(())
}
