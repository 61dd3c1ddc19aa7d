//! Shared by the runtime system tests: a busybox image built offline and recorded the way
//! an import does (content blobs, unpacked snapshot, image record), skip checks, and
//! cleanup checks (no container processes, no mounts left under the test root).
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Output;
use std::time::Duration;

use berth_client::Services;
use berth_ipc::Digest;
use berth_ipc::content::proxy::ContentClient;
use berth_ipc::content::store::{ContentStore, ContentWriter};
use berth_ipc::metadata::{CreateImage, Descriptor, Image, PutContent, PutSnapshot, SnapshotRecord};
use berth_ipc::snapshot::{Layer, Unpack};
use berth_system_tests::{Berth, block_on};

/// Busybox applets linked in the image.
pub const APPLETS: &[&str] = &[
    "sh", "echo", "sleep", "true", "false", "hostname", "cat", "ls", "pwd", "id", "env", "mount", "ps",
    "touch", "rm", "mkdir", "grep", "head", "dd", "readlink", "test", "kill", "wc", "tr", "tail",
];

/// Whether this machine can run the runtime tests with `runtime`; prints why not.
pub fn can_run(runtime: &str) -> bool {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: needs root");
        return false;
    }
    if !Path::new("/bin/busybox").exists() {
        eprintln!("skipped: /bin/busybox (busybox-static) is missing");
        return false;
    }
    if std::process::Command::new(runtime).arg("--version").output().is_err() {
        eprintln!("skipped: {runtime} is missing");
        return false;
    }
    true
}

/// A berthd with the busybox image `tiny` (`Cmd` `sh`) imported, when every runtime of
/// `runtimes` can run here (`None` otherwise: the test is skipped).
pub fn berth_with_tiny(runtimes: &[&str]) -> Option<Berth> {
    if !runtimes.iter().all(|r| can_run(r)) {
        return None;
    }
    let berth = Berth::start();
    import_busybox(&berth, "tiny", serde_json::json!({"Cmd": ["sh"]}));
    Some(berth)
}

/// A tar of a busybox rootfs, with `/work` a symlink to `/srv/work` and a `web` user.
pub fn busybox_tar() -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let dir = |b: &mut tar::Builder<Vec<u8>>, path: &str| {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Directory);
        h.set_mode(0o755);
        h.set_size(0);
        b.append_data(&mut h, path, std::io::empty()).expect("dir");
    };
    for d in ["bin", "etc", "proc", "sys", "dev", "tmp", "root", "srv", "srv/work"] {
        dir(&mut b, d);
    }
    let file = |b: &mut tar::Builder<Vec<u8>>, path: &str, data: &[u8], mode: u32| {
        let mut h = tar::Header::new_gnu();
        h.set_mode(mode);
        h.set_size(data.len() as u64);
        b.append_data(&mut h, path, data).expect("file");
    };
    file(&mut b, "bin/busybox", &std::fs::read("/bin/busybox").expect("busybox"), 0o755);
    file(&mut b, "etc/passwd", b"root:x:0:0:root:/root:/bin/sh\nweb:x:80:81::/:/bin/sh\n", 0o644);
    file(&mut b, "etc/group", b"root:x:0:\nweb:x:81:\n", 0o644);
    let link = |b: &mut tar::Builder<Vec<u8>>, path: &str, target: &str| {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_size(0);
        h.set_mode(0o777);
        b.append_link(&mut h, path, target).expect("link");
    };
    for a in APPLETS {
        link(&mut b, &format!("bin/{a}"), "busybox");
    }
    link(&mut b, "work", "/srv/work");
    link(&mut b, "leak", "/proc/self/fd/3");
    link(&mut b, "escape", "../../../../etc");
    b.into_inner().expect("tar")
}

async fn put_blob(content: &ContentClient, data: &[u8]) -> Digest {
    let digest = Digest::of(data);
    let mut w = match content
        .writer(&format!("test-{}", digest.hex()), Some(digest), Some(data.len() as u64))
        .await
    {
        // A second import shares the busybox layer.
        Err(e) if e.is(berth_ipc::Code::AlreadyExists) => return digest,
        w => w.expect("writer"),
    };
    let mut off = 0u64;
    for chunk in data.chunks(4 << 20) {
        off = w.write_at(off, chunk.to_vec()).await.expect("write");
    }
    match w.commit(Some(data.len() as u64), Some(digest)).await {
        Ok(_) => {}
        Err(e) if e.is(berth_ipc::Code::AlreadyExists) => {}
        Err(e) => panic!("commit: {e}"),
    }
    digest
}

/// Records a busybox image `name` (as `docker.io/library/<name>:latest`) whose config carries `config` (Entrypoint, Cmd, Env,
/// WorkingDir, User…).
pub fn import_busybox(berth: &Berth, name: &str, config: serde_json::Value) {
    import_busybox_in(berth, "default", name, config);
}

/// [`import_busybox`] into namespace `ns`.
pub fn import_busybox_in(berth: &Berth, ns: &str, name: &str, config: serde_json::Value) {
    let services = berth.clients(Duration::from_secs(20));
    block_on(import(&services, ns, name, config));
}

async fn import(s: &Services, ns: &str, name: &str, config: serde_json::Value) {
    let content = ContentClient::new(s.content.clone());
    let layer = busybox_tar();
    let layer_mt = "application/vnd.oci.image.layer.v1.tar";
    let layer_d = put_blob(&content, &layer).await;
    let cfg = serde_json::json!({
        "architecture": "amd64", "os": "linux", "config": config,
        "rootfs": {"type": "layers", "diff_ids": [layer_d.to_string()]},
    });
    let cfg = serde_json::to_vec(&cfg).expect("config");
    let cfg_d = put_blob(&content, &cfg).await;
    let manifest = serde_json::json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cfg_d.to_string(), "size": cfg.len()},
        "layers": [{"mediaType": layer_mt, "digest": layer_d.to_string(), "size": layer.len()}],
    });
    let manifest = serde_json::to_vec(&manifest).expect("manifest");
    let man_d = put_blob(&content, &manifest).await;
    let unpacked = s
        .snapshot
        .call(Unpack {
            snapshotter: "overlayfs".into(),
            layers: vec![Layer { digest: layer_d, media_type: layer_mt.into(), diff_id: layer_d }],
            labels: BTreeMap::new(),
            namespace: ns.into(),
        })
        .await
        .expect("unpack");
    let chain = unpacked.chain_id.to_string();
    let record = |digest: Digest, size: usize, labels: BTreeMap<String, String>| PutContent {
        namespace: ns.into(),
        digest,
        size: size as u64,
        labels,
        lease: None,
    };
    s.metadata.call(record(layer_d, layer.len(), BTreeMap::new())).await.expect("record layer");
    let cfg_labels = BTreeMap::from([("containerd.io/gc.ref.snapshot.overlayfs".to_string(), chain.clone())]);
    s.metadata.call(record(cfg_d, cfg.len(), cfg_labels)).await.expect("record config");
    let man_labels = BTreeMap::from([
        ("containerd.io/gc.ref.content.config".to_string(), cfg_d.to_string()),
        ("containerd.io/gc.ref.content.l.0".to_string(), layer_d.to_string()),
    ]);
    s.metadata.call(record(man_d, manifest.len(), man_labels)).await.expect("record manifest");
    let snap = SnapshotRecord {
        snapshotter: "overlayfs".into(),
        key: chain,
        parent: None,
        labels: BTreeMap::new(),
        created: 0,
        updated: 0,
    };
    s.metadata
        .call(PutSnapshot { namespace: ns.into(), snapshot: snap, lease: None })
        .await
        .expect("record snapshot");
    let image = Image {
        name: format!("docker.io/library/{name}:latest"),
        target: Descriptor {
            media_type: "application/vnd.oci.image.manifest.v1+json".into(),
            digest: man_d,
            size: manifest.len() as u64,
        },
        labels: BTreeMap::new(),
        created: 0,
        updated: 0,
    };
    match s.metadata.call(CreateImage { namespace: ns.into(), image }).await {
        Ok(_) => {}
        Err(e) if e.is(berth_ipc::Code::AlreadyExists) => {}
        Err(e) => panic!("create image: {e}"),
    }
}

/// stdout of a CLI run as text.
pub fn out(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// A failure message with both streams.
pub fn show(o: &Output) -> String {
    format!("status {:?}\nstdout: {}\nstderr: {}", o.status, out(o), String::from_utf8_lossy(&o.stderr))
}

/// Kills every shim and container process of this berth and unmounts what is left under
/// its temp dir ([`Berth::teardown`], which its drop runs as well).
pub fn teardown(berth: &Berth) {
    berth.teardown();
}
