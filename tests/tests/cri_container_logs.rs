//! The kubelet's container logs through the CRI: a pod's `log_directory` joined with a
//! container's `log_path` is where its shim writes the output (CRI format); the kubelet's
//! rotation (rename, `ReopenContainerLog`) starts a fresh file there and the renamed one
//! keeps the old lines; `ContainerStatus` names the file; a stopped container's reopen is
//! refused.

mod runtime_support;

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use berth_system_tests::Berth;
use berth_system_tests::cri::{CriClient, block_on};
use berth_system_tests::dist::Registry;
use k8s_cri::v1 as cri;
use runtime_support::{can_run, import_busybox};

/// A tonic channel's connection task lives on the runtime it was made on.
/// The `lineN` numbers of a CRI log file's full stdout records.
fn numbers(path: &Path) -> Vec<u64> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            l.splitn(4, ' ').nth(3).and_then(|d| d.strip_prefix("line")).and_then(|n| n.parse().ok())
        })
        .collect()
}

fn wait_for(what: &str, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn container_output_at_the_pods_log_directory_rotated_by_reopen() {
    if !can_run("runc") {
        return;
    }
    let berth = Berth::start();
    let reg = Registry::start(None);
    import_busybox(&berth, "crisrc", serde_json::json!({"Cmd": ["sh"], "User": "0"}));
    let (image, mut c) = CriClient::pulled(&berth, &reg, "crisrc", "1");

    let log_dir = berth.dir.path().join("pods/default_logs_uid-logs");
    let pod_config = cri::PodSandboxConfig {
        metadata: Some(cri::PodSandboxMetadata {
            name: "logs".into(),
            uid: "uid-logs".into(),
            namespace: "default".into(),
            attempt: 0,
        }),
        log_directory: log_dir.display().to_string(),
        ..Default::default()
    };
    let pod = block_on(c.rt.run_pod_sandbox(cri::RunPodSandboxRequest {
        config: Some(pod_config.clone()),
        runtime_handler: String::new(),
    }))
    .expect("run pod")
    .into_inner()
    .pod_sandbox_id;
    let config = cri::ContainerConfig {
        metadata: Some(cri::ContainerMetadata { name: "main".into(), attempt: 0 }),
        image: Some(cri::ImageSpec { image: image.clone(), ..Default::default() }),
        command: vec!["sh".into(), "-c".into()],
        args: vec![
            "printf abc; sleep 0.3; echo; i=0; while :; do echo line$i; i=$((i+1)); sleep 0.01; done".into(),
        ],
        log_path: "main/0.log".into(),
        labels: HashMap::new(),
        ..Default::default()
    };
    let id = block_on(c.rt.create_container(cri::CreateContainerRequest {
        pod_sandbox_id: pod.clone(),
        config: Some(config),
        sandbox_config: Some(pod_config),
    }))
    .expect("create")
    .into_inner()
    .container_id;
    block_on(c.rt.start_container(cri::StartContainerRequest { container_id: id.clone() })).expect("start");
    let log = log_dir.join("main/0.log");
    wait_for("lines at the pod's log path", || numbers(&log).len() >= 5);
    let text = std::fs::read_to_string(&log).expect("log");
    assert!(text.lines().next().is_some_and(|l| l.ends_with(" stdout P abc")), "{text}");
    let status = block_on(
        c.rt.container_status(cri::ContainerStatusRequest { container_id: id.clone(), verbose: false }),
    )
    .expect("status")
    .into_inner()
    .status
    .expect("status");
    assert_eq!(status.log_path, log.display().to_string());

    // The kubelet's rotation.
    let rotated = log_dir.join("main/0.log.20250101-000000");
    std::fs::rename(&log, &rotated).expect("rename");
    block_on(c.rt.reopen_container_log(cri::ReopenContainerLogRequest { container_id: id.clone() }))
        .expect("reopen");
    wait_for("a fresh file", || numbers(&log).len() >= 5);
    block_on(c.rt.stop_container(cri::StopContainerRequest { container_id: id.clone(), timeout: 0 }))
        .expect("stop");
    let (old, new) = (numbers(&rotated), numbers(&log));
    let all = [old.clone(), new].concat();
    assert_eq!(all, (0..all.len() as u64).collect::<Vec<_>>(), "lost or doubled lines (old file {old:?})");

    let e = block_on(c.rt.reopen_container_log(cri::ReopenContainerLogRequest { container_id: id.clone() }))
        .expect_err("a stopped container");
    assert_eq!(e.code(), tonic::Code::FailedPrecondition, "{e:?}");
    assert!(e.message().contains("is not running"), "{e:?}");
    block_on(c.rt.remove_pod_sandbox(cri::RemovePodSandboxRequest { pod_sandbox_id: pod }))
        .expect("remove pod");
    berth.teardown();
}
