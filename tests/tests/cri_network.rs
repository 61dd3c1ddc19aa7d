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
use std::path::Path;
use std::time::{Duration, Instant};

use berth_system_tests::Berth;
use berth_system_tests::cri::{CriClient, block_on};
use berth_system_tests::hostnet::{self, HOST, HostNet, http_get, veths};
use k8s_cri::v1 as cri;

/// A berthd whose default network is a bridge of the test's own (`index` picks the subnet
/// `10.214.<index>.0/24`), and the image `netbox` in `k8s.io`.
fn start(index: u8) -> (Berth, HostNet, String) {
    let bridge = format!("bt{}x{index}", std::process::id() % 10_000);
    let host = HostNet::new(&[&bridge]);
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
    hostnet::allocated(&berth.root.join("cni/networks"), "berthtest")
}

fn retry_get(addr: &str) -> String {
    hostnet::retry_get(addr, "hello from the pod")
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
    assert_eq!(veths(host.bridge()), 0, "no veth left on the bridge");
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
        while allocated(&berth) != ready || veths(host.bridge()) != ready.len() {
            assert!(
                Instant::now() < deadline,
                "{point}: allocated {:?} and {} veths, ready pods' {ready:?}\n{}",
                allocated(&berth),
                veths(host.bridge()),
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
