//! CRI pods on a real CNI network: Debian's bridge, host-local, portmap, firewall and tuning
//! plugins, run by berth's CNI driver for RunPodSandbox and StopPodSandbox. The pod gets an
//! address the host reaches; a host port on 127.0.0.1 forwards to it; stopping the pod gives
//! its address back; power cuts during attach and detach leave, after the next start, exactly
//! one address per ready pod and no veth of a pod that is gone.
//!
//! Traffic goes only to the test's own bridge subnet and 127.0.0.1. Each test makes its own
//! bridge and subnet and removes them after, and puts `ip_forward` and every iptables table
//! back as they were.

mod power_cut_support;
mod runtime_support;

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use berth_system_tests::Berth;
use berth_system_tests::cri::{CriClient, block_on};
use k8s_cri::v1 as cri;

/// Tests here change host-wide state (iptables, ip_forward): one at a time.
static HOST: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// What a test changes on the host, put back on drop: its bridge removed, `ip_forward`
/// restored, every iptables rule and chain it added (to the filter and nat tables) deleted
/// (and nothing else: another program's rules added meanwhile stay), its CNI conf dir removed.
struct HostNet {
    bridge: String,
    forward: String,
    tables: Vec<(&'static str, String)>,
    conf: tempfile::TempDir,
}

const TABLES: [&str; 2] = ["filter", "nat"];

fn iptables_save(table: &str) -> String {
    let out = Command::new("iptables-save").args(["-t", table]).output().expect("iptables-save");
    assert!(out.status.success(), "iptables-save -t {table}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `iptables-restore --noflush` inputs deleting from `table` what `after` has and `before`
/// had not: its rules (`-A` lines as `-D`, last first), then its chains — two transactions,
/// as nf_tables refuses to delete a chain in the batch that deletes the rule jumping to it.
fn undo(table: &str, before: &str, after: &str) -> [String; 2] {
    let chain = |l: &str| l.strip_prefix(':').and_then(|c| c.split_whitespace().next()).map(str::to_string);
    let old_rules: BTreeSet<&str> = before.lines().filter(|l| l.starts_with("-A ")).collect();
    let old_chains: BTreeSet<String> = before.lines().filter_map(chain).collect();
    let (mut rules, mut chains) = (format!("*{table}\n"), format!("*{table}\n"));
    for rule in after.lines().rev().filter(|l| l.starts_with("-A ") && !old_rules.contains(l)) {
        rules.push_str(&format!("-D {}\n", &rule[3..]));
    }
    for c in after.lines().filter_map(chain).filter(|c| !old_chains.contains(c)) {
        chains.push_str(&format!("-F {c}\n-X {c}\n"));
    }
    [rules + "COMMIT\n", chains + "COMMIT\n"]
}

impl HostNet {
    fn new(bridge: &str) -> HostNet {
        let forward = std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").expect("ip_forward");
        let conf = tempfile::Builder::new().prefix("berth-cni-").tempdir().expect("tmp");
        let tables = TABLES.iter().map(|t| (*t, iptables_save(t))).collect();
        HostNet { bridge: bridge.into(), forward, tables, conf }
    }
}

impl Drop for HostNet {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["link", "del", &self.bridge]).output();
        let _ = std::fs::write("/proc/sys/net/ipv4/ip_forward", self.forward.trim());
        for (table, before) in &self.tables {
            for script in undo(table, before, &iptables_save(table)) {
                let child = Command::new("iptables-restore")
                    .args(["-w", "--noflush"])
                    .stdin(std::process::Stdio::piped())
                    .spawn();
                if let Ok(mut child) = child {
                    if let Some(mut stdin) = child.stdin.take() {
                        let _ = stdin.write_all(script.as_bytes());
                    }
                    let _ = child.wait();
                }
            }
        }
    }
}

/// A berthd whose default network is a bridge of the test's own (`index` picks the subnet
/// `10.214.<index>.0/24`), and the image `netbox` in `k8s.io`.
fn start(index: u8) -> (Berth, HostNet, String) {
    let bridge = format!("bt{}x{index}", std::process::id() % 10_000);
    let host = HostNet::new(&bridge);
    let conf = host.conf.path().to_path_buf();
    let toml = format!(
        "[network]\nconf_dir = {:?}\ndefault_network = \"berthtest\"\nwrite_default = true\n\
         default_bridge = \"{bridge}\"\ndefault_subnet = \"10.214.{index}.0/24\"\nplugin_timeout_ms = 20000\n",
        conf.display().to_string()
    );
    let berth = Berth::start_with(&toml);
    runtime_support::import_busybox_in(&berth, "k8s.io", "netbox", serde_json::json!({"Cmd": ["sh"]}));
    (berth, host, format!("10.214.{index}."))
}

fn pod_config(name: &str, ports: Vec<cri::PortMapping>) -> cri::PodSandboxConfig {
    cri::PodSandboxConfig {
        metadata: Some(cri::PodSandboxMetadata {
            name: name.into(),
            uid: format!("uid-{name}"),
            namespace: "default".into(),
            attempt: 0,
        }),
        hostname: name.into(),
        port_mappings: ports,
        linux: Some(cri::LinuxPodSandboxConfig::default()),
        ..Default::default()
    }
}

fn run_pod(c: &mut CriClient, config: &cri::PodSandboxConfig) -> Result<String, tonic::Status> {
    let req = cri::RunPodSandboxRequest { config: Some(config.clone()), runtime_handler: String::new() };
    block_on(c.rt.run_pod_sandbox(req)).map(|r| r.into_inner().pod_sandbox_id)
}

fn pod_ip(c: &mut CriClient, id: &str) -> String {
    let req = cri::PodSandboxStatusRequest { pod_sandbox_id: id.into(), verbose: false };
    let st = block_on(c.rt.pod_sandbox_status(req)).expect("pod status").into_inner();
    st.status.and_then(|s| s.network).map(|n| n.ip).unwrap_or_default()
}

/// host-local's allocations of the test network: one file per address.
fn allocated(berth: &Berth) -> BTreeSet<String> {
    let dir = berth.root.join("cni/networks/berthtest");
    let Ok(entries) = std::fs::read_dir(dir) else { return BTreeSet::new() };
    entries
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.parse::<std::net::Ipv4Addr>().is_ok())
        .collect()
}

/// veths on the test bridge.
fn veths(bridge: &str) -> usize {
    let out = Command::new("ip").args(["-o", "link", "show", "master", bridge]).output().expect("ip link");
    String::from_utf8_lossy(&out.stdout).lines().count()
}

fn http_get(addr: &str) -> std::io::Result<String> {
    let mut s = std::net::TcpStream::connect_timeout(&addr.parse().expect("addr"), Duration::from_secs(3))?;
    s.set_read_timeout(Some(Duration::from_secs(3)))?;
    s.write_all(b"GET /index.html HTTP/1.0\r\n\r\n")?;
    let mut body = String::new();
    s.read_to_string(&mut body)?;
    Ok(body)
}

fn retry_get(addr: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match http_get(addr) {
            Ok(b) if b.contains("hello from the pod") => return b,
            other => {
                assert!(Instant::now() < deadline, "no answer from {addr}: {other:?}");
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

#[test]
fn a_pod_gets_an_address_a_host_port_and_gives_both_back() {
    if !Path::new("/usr/lib/cni/bridge").exists() {
        return;
    }
    let _host_lock = HOST.lock().unwrap_or_else(|e| e.into_inner());
    let (berth, host, subnet) = start(31);
    let mut c = block_on(CriClient::of(&berth));
    let status = block_on(c.rt.status(cri::StatusRequest { verbose: false })).expect("status").into_inner();
    let conditions = status.status.expect("status").conditions;
    assert!(conditions.iter().any(|c| c.r#type == "NetworkReady" && c.status), "{conditions:?}");

    let ports = vec![cri::PortMapping {
        protocol: cri::Protocol::Tcp as i32,
        container_port: 8080,
        host_port: 18_931,
        host_ip: "127.0.0.1".into(),
    }];
    let config = pod_config("web", ports);
    let pod = run_pod(&mut c, &config).expect("run pod");
    let ip = pod_ip(&mut c, &pod);
    assert!(ip.starts_with(&subnet), "pod IP {ip:?} in {subnet}0/24");
    assert_eq!(allocated(&berth), BTreeSet::from([ip.clone()]), "one address allocated");
    assert!(std::fs::read_dir(berth.dir.path().join("cni-conf")).is_err(), "the harness's dir is unused");

    let script = "mkdir -p /srv/www && echo hello from the pod > /srv/www/index.html && \
                  exec httpd -f -p 8080 -h /srv/www";
    let ctr = cri::ContainerConfig {
        metadata: Some(cri::ContainerMetadata { name: "httpd".into(), attempt: 0 }),
        image: Some(cri::ImageSpec { image: "netbox".into(), ..Default::default() }),
        command: vec!["sh".into(), "-c".into(), script.into()],
        ..Default::default()
    };
    let create = cri::CreateContainerRequest {
        pod_sandbox_id: pod.clone(),
        config: Some(ctr),
        sandbox_config: Some(config),
    };
    let id = block_on(c.rt.create_container(create)).expect("create").into_inner().container_id;
    block_on(c.rt.start_container(cri::StartContainerRequest { container_id: id.clone() })).expect("start");
    let inside = block_on(c.rt.exec_sync(cri::ExecSyncRequest {
        container_id: id.clone(),
        cmd: vec!["sh".into(), "-c".into(), "ip -4 addr show eth0".into()],
        timeout: 10,
    }))
    .expect("exec")
    .into_inner();
    assert!(String::from_utf8_lossy(&inside.stdout).contains(&format!("inet {ip}/24")), "{inside:?}");
    // The host reaches the pod at its address, and through the host port.
    retry_get(&format!("{ip}:8080"));
    retry_get("127.0.0.1:18931");

    block_on(c.rt.stop_pod_sandbox(cri::StopPodSandboxRequest { pod_sandbox_id: pod.clone() }))
        .expect("stop");
    assert!(allocated(&berth).is_empty(), "the address is given back at stop");
    assert_eq!(veths(&host.bridge), 0, "no veth left on the bridge");
    assert!(http_get("127.0.0.1:18931").is_err(), "the host port is closed");
    block_on(c.rt.stop_pod_sandbox(cri::StopPodSandboxRequest { pod_sandbox_id: pod.clone() }))
        .expect("a second stop is fine");
    block_on(c.rt.remove_pod_sandbox(cri::RemovePodSandboxRequest { pod_sandbox_id: pod })).expect("remove");
    assert!(berth.root.join("cni/results").read_dir().map(|d| d.count()).unwrap_or(0) == 0, "no record left");
    drop(berth);
    drop(host);
}

#[test]
fn power_cuts_during_attach_and_detach_leave_one_address_per_ready_pod() {
    if !Path::new("/usr/lib/cni/bridge").exists() {
        return;
    }
    let _host_lock = HOST.lock().unwrap_or_else(|e| e.into_inner());
    let (mut berth, host, _subnet) = start(32);
    let mut c = block_on(CriClient::of(&berth));
    let keep = run_pod(&mut c, &pod_config("keep", Vec::new())).expect("a pod that stays");
    // Cut the power in an attach (after the bridge plugin, before portmap), after an attach
    // before the record, and in a detach (after the last plugin's DEL); each time the pod the
    // cut hit is gone or stopped, and the next start gives its address back.
    let cuts = [
        ("cni.add.after_plugin@1", "cut-add"),
        ("runtime.sandbox.after_attach", "cut-record"),
        ("cni.del.after_plugin@1", "cut-del"),
    ];
    for (point, name) in cuts {
        let mut victim = None;
        if point.starts_with("cni.del") {
            victim = Some(run_pod(&mut c, &pod_config(name, Vec::new())).expect("pod to stop"));
        }
        berth.stop();
        let log = berth.dir.path().join("failpoints.log");
        let _ = std::fs::remove_file(&log);
        berth.env = vec![
            ("BERTH_FAILPOINTS".into(), point.into()),
            ("BERTH_FAILPOINT_LOG".into(), log.display().to_string()),
        ];
        berth.launch();
        let mut c2 = block_on(CriClient::of(&berth));
        let done = match &victim {
            Some(id) => {
                block_on(c2.rt.stop_pod_sandbox(cri::StopPodSandboxRequest { pod_sandbox_id: id.clone() }))
                    .map(|_| ())
            }
            None => run_pod(&mut c2, &pod_config(name, Vec::new())).map(|_| ()),
        };
        assert!(done.is_err(), "{point}: the call was cut");
        let deadline = Instant::now() + Duration::from_secs(20);
        while berth.wait_launcher_exit(Duration::from_millis(20)).is_none() {
            assert!(Instant::now() < deadline, "{point}: berthd did not die");
        }
        let fired = std::fs::read_to_string(&log).unwrap_or_default();
        assert!(fired.contains(point.split('@').next().unwrap_or(point)), "{point} fired: {fired}");
        power_cut_support::unmount_under(berth.dir.path());
        berth.env.clear();
        berth.launch();
        c = block_on(CriClient::of(&berth));
        // The reconcile runs in the background after the start; a network namespace whose
        // last mount went is destroyed by the kernel a moment later, its veth with it.
        let ready: BTreeSet<String> = {
            let list = block_on(c.rt.list_pod_sandbox(cri::ListPodSandboxRequest { filter: None }))
                .expect("list")
                .into_inner()
                .items;
            list.iter()
                .filter(|p| p.state == cri::PodSandboxState::SandboxReady as i32)
                .map(|p| pod_ip(&mut c, &p.id))
                .collect()
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while allocated(&berth) != ready || veths(&host.bridge) != ready.len() {
            assert!(
                Instant::now() < deadline,
                "{point}: allocated {:?} and {} veths, ready pods' {ready:?}\n{}",
                allocated(&berth),
                veths(&host.bridge),
                berth.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    let ids: Vec<String> = block_on(c.rt.list_pod_sandbox(cri::ListPodSandboxRequest { filter: None }))
        .expect("list")
        .into_inner()
        .items
        .into_iter()
        .map(|p| p.id)
        .collect();
    assert!(ids.contains(&keep), "the pod that stayed is listed");
    for id in ids {
        block_on(c.rt.remove_pod_sandbox(cri::RemovePodSandboxRequest { pod_sandbox_id: id }))
            .expect("remove");
    }
    assert!(allocated(&berth).is_empty(), "every address given back");
    drop(berth);
    drop(host);
}
