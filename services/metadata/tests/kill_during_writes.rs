//! SIGKILL the real `berth-metadata` process during a burst of writes: after a restart
//! every acknowledged write is there, and no transaction is half-applied.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use berth_ipc::digest::Digest;
use berth_ipc::metadata::*;
use berth_ipc::{Client, ClientOptions};

struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn(root: &Path, state: &Path, config: &Path) -> Proc {
    let child = Command::new(env!("CARGO_BIN_EXE_berth-metadata"))
        .arg("--root")
        .arg(root)
        .arg("--state")
        .arg(state)
        .arg("--config")
        .arg(config)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn berth-metadata");
    Proc(child)
}

fn client(state: &Path, deadline: Duration) -> Client<Metadata> {
    Client::in_state_dir(state, ClientOptions { deadline, client_name: "kill-test".into() })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_write_survives_sigkill() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (root, state) = (dir.path().join("root"), dir.path().join("state"));
    let config = dir.path().join("berth.toml");
    std::fs::write(&config, "[metadata]\ngc_mutations = 0\ngc_interval_s = 0\n").expect("config");
    let proc = spawn(&root, &state, &config);
    let c = client(&state, Duration::from_secs(10));
    c.health().await.expect("service up");
    c.call(CreateLease { namespace: "ns".into(), id: "pull".into(), labels: Labels::new(), ttl_ms: None })
        .await
        .expect("lease");

    // Writers: images (acked names kept) and content records put under the lease (one
    // transaction writes the record, the lease resource and the known marker).
    let acked_images = Arc::new(Mutex::new(Vec::<String>::new()));
    let attempted_blobs = Arc::new(Mutex::new(Vec::<(Digest, bool)>::new()));
    let mut tasks = Vec::new();
    for t in 0..6u32 {
        let c = client(&state, Duration::from_millis(500));
        let acked_images = acked_images.clone();
        let attempted_blobs = attempted_blobs.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..100_000u32 {
                let name = format!("img-{t}-{i}");
                let img = Image {
                    name: name.clone(),
                    target: Descriptor {
                        media_type: "m".into(),
                        digest: Digest::of(name.as_bytes()),
                        size: 1,
                    },
                    labels: [("n".to_string(), i.to_string())].into(),
                    created: 0,
                    updated: 0,
                };
                if c.call(CreateImage { namespace: "ns".into(), image: img }).await.is_err() {
                    return;
                }
                acked_images.lock().expect("lock").push(name.clone());
                let d = Digest::of(format!("blob {name}").as_bytes());
                let put = PutContent {
                    namespace: "ns".into(),
                    digest: d,
                    size: 1,
                    labels: Labels::new(),
                    lease: Some("pull".into()),
                };
                let ok = c.call(put).await.is_ok();
                attempted_blobs.lock().expect("lock").push((d, ok));
                if !ok {
                    return;
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(700)).await;
    let pid = nix::unistd::Pid::from_raw(i32::try_from(proc.0.id()).expect("pid"));
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL).expect("kill");
    let killed_at = Instant::now();
    for t in tasks {
        t.await.expect("writer");
    }
    drop(proc);
    let acked = acked_images.lock().expect("lock").clone();
    assert!(acked.len() > 20, "the burst wrote something before the kill ({})", acked.len());
    assert!(killed_at.elapsed() < Duration::from_secs(5));

    let _proc = spawn(&root, &state, &config);
    let c = client(&state, Duration::from_secs(10));
    let mut stream =
        c.stream(ListImages(ListIn { namespace: "ns".into(), filters: vec![] })).await.expect("list");
    let mut present = std::collections::HashMap::new();
    while let Some(page) = stream.next().await {
        for img in page.expect("page") {
            present.insert(img.name.clone(), img);
        }
    }
    for name in &acked {
        let img = present.get(name).unwrap_or_else(|| panic!("acknowledged image {name} lost"));
        let n = name.rsplit('-').next().expect("index");
        assert_eq!(img.labels.get("n").map(String::as_str), Some(n), "{name} intact");
    }
    let leased: std::collections::HashSet<LeaseResource> = c
        .call(ListLeaseResources(ByName { namespace: "ns".into(), name: "pull".into() }))
        .await
        .expect("lease resources")
        .into_iter()
        .collect();
    let attempted = attempted_blobs.lock().expect("lock").clone();
    for (d, acked) in &attempted {
        let record = c.call(GetContent { namespace: "ns".into(), digest: *d }).await.is_ok();
        let in_lease = leased.contains(&LeaseResource::Content(*d));
        assert_eq!(record, in_lease, "blob {d}: record and lease entry written together");
        if *acked {
            assert!(record, "acknowledged record {d} lost");
        }
    }
    eprintln!(
        "{} images and {} records acknowledged before SIGKILL; all present",
        acked.len(),
        attempted.len()
    );
}
