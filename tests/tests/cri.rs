//! `berth-cri` end to end: a CRI v1 client drives a temp berthd through the kubelet's story —
//! pull from a registry on 127.0.0.1, pods without any pause image, containers with runc and
//! crun, ExecSync, status and exit codes, SIGKILLs of the CRI and runtime services
//! mid-lifecycle, idempotent stops and removes, bad requests refused with nothing left.

mod runtime_support;

use std::collections::HashMap;
use std::time::Duration;

use berth_ipc::launcher::ServiceState;
use berth_system_tests::cri::{CriClient, block_on};
use berth_system_tests::dist::{Registry, berth_ok};
use berth_system_tests::{Berth, mounts_under, processes_with, signal};
use k8s_cri::v1 as cri;
use nix::sys::signal::Signal;
use runtime_support::{can_run, import_busybox};

fn pod_config(name: &str, attempt: u32) -> cri::PodSandboxConfig {
    cri::PodSandboxConfig {
        metadata: Some(cri::PodSandboxMetadata {
            name: name.into(),
            uid: format!("uid-{name}"),
            namespace: "default".into(),
            attempt,
        }),
        hostname: format!("host-{name}"),
        dns_config: Some(cri::DnsConfig {
            servers: vec!["10.0.0.10".into()],
            searches: vec!["svc.cluster.local".into()],
            options: vec!["ndots:5".into()],
        }),
        labels: HashMap::from([("app".into(), name.into())]),
        annotations: HashMap::from([("note".into(), "kept exactly: ä/\"x\"".into())]),
        linux: Some(cri::LinuxPodSandboxConfig {
            sysctls: HashMap::from([("net.ipv4.ip_unprivileged_port_start".into(), "81".into())]),
            // As the kubelet sends it without shareProcessNamespace: a pid namespace per container.
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

fn container_config(name: &str, image: &str, script: &str) -> cri::ContainerConfig {
    cri::ContainerConfig {
        metadata: Some(cri::ContainerMetadata { name: name.into(), attempt: 0 }),
        image: Some(cri::ImageSpec { image: image.into(), ..Default::default() }),
        command: vec!["sh".into(), "-c".into(), script.into()],
        labels: HashMap::from([("c".into(), name.into())]),
        ..Default::default()
    }
}

/// A berthd, a registry holding `busybox` as `<reg>/test/busybox:1`, and a CRI client.
fn setup() -> Option<(Berth, Registry, String)> {
    if !can_run("runc") || !can_run("crun") {
        return None;
    }
    let berth = Berth::start();
    let reg = Registry::start(None);
    import_busybox(&berth, "crisrc", serde_json::json!({"Cmd": ["sh"], "User": "0"}));
    let image = format!("{}/test/busybox:1", reg.addr);
    berth_ok(&berth, &["images", "tag", "crisrc", &image]);
    berth_ok(&berth, &["images", "push", &image]);
    Some((berth, reg, image))
}

async fn exec(c: &mut CriClient, id: &str, script: &str) -> cri::ExecSyncResponse {
    let req = cri::ExecSyncRequest {
        container_id: id.into(),
        cmd: vec!["sh".into(), "-c".into(), script.into()],
        timeout: 10,
    };
    c.rt.exec_sync(req).await.expect("exec_sync").into_inner()
}

async fn container_state(c: &mut CriClient, id: &str) -> cri::ContainerStatus {
    let req = cri::ContainerStatusRequest { container_id: id.into(), verbose: false };
    c.rt.container_status(req).await.expect("container_status").into_inner().status.expect("status")
}

/// Pulls `image`, runs pod `name` and creates in it a container running `script` with a
/// memory limit of `memory` bytes: the pod's id and the container's.
fn limited_container(
    c: &mut CriClient,
    image: &str,
    name: &str,
    script: &str,
    memory: i64,
) -> (String, String) {
    block_on(c.img.pull_image(cri::PullImageRequest {
        image: Some(cri::ImageSpec { image: image.into(), ..Default::default() }),
        ..Default::default()
    }))
    .expect("pull");
    let config = pod_config(name, 0);
    let run = cri::RunPodSandboxRequest { config: Some(config.clone()), runtime_handler: String::new() };
    let pod = block_on(c.rt.run_pod_sandbox(run)).expect("run pod").into_inner().pod_sandbox_id;
    let mut ctr = container_config(name, image, script);
    ctr.linux = Some(cri::LinuxContainerConfig {
        resources: Some(cri::LinuxContainerResources { memory_limit_in_bytes: memory, ..Default::default() }),
        security_context: None,
    });
    let create = cri::CreateContainerRequest {
        pod_sandbox_id: pod.clone(),
        config: Some(ctr),
        sandbox_config: Some(config),
    };
    let id = block_on(c.rt.create_container(create)).expect("create").into_inner().container_id;
    (pod, id)
}

/// SIGKILLs service `name` and waits until the launcher has it running again.
fn kill_service(berth: &mut Berth, name: &str) {
    let before = berth.status(name);
    signal(before.pid.expect("pid"), Signal::SIGKILL);
    berth.wait_until(&format!("{name} back"), Duration::from_secs(15), |l| {
        l.iter().any(|s| {
            s.name == name && s.state == ServiceState::Running && s.pid.is_some() && s.pid != before.pid
        })
    });
}

#[test]
fn pod_lifecycle_through_cri_with_runc_and_crun() {
    let Some((mut berth, _reg, image)) = setup() else { return };
    let mut c = block_on(CriClient::of(&berth));

    // What the kubelet asks first.
    let v = block_on(c.rt.version(cri::VersionRequest::default())).expect("version").into_inner();
    assert_eq!((v.runtime_name.as_str(), v.runtime_api_version.as_str()), ("berth", "v1"));
    let st = block_on(c.rt.status(cri::StatusRequest { verbose: false })).expect("status").into_inner();
    let conds = st.status.expect("conditions").conditions;
    assert!(conds.iter().any(|x| x.r#type == "RuntimeReady" && x.status), "{conds:?}");

    // Pull, then find the image by tag, id and digest.
    let pulled = block_on(c.img.pull_image(cri::PullImageRequest {
        image: Some(cri::ImageSpec { image: image.clone(), ..Default::default() }),
        ..Default::default()
    }))
    .expect("pull")
    .into_inner()
    .image_ref;
    assert!(pulled.starts_with("sha256:") && pulled.len() == 71, "{pulled}");
    let status = |c: &mut CriClient, spec: &str| {
        let req = cri::ImageStatusRequest {
            image: Some(cri::ImageSpec { image: spec.into(), ..Default::default() }),
            verbose: false,
        };
        block_on(c.img.image_status(req)).expect("image_status").into_inner().image
    };
    let img = status(&mut c, &image).expect("by tag");
    assert_eq!(img.id, pulled);
    assert_eq!(img.repo_tags, vec![image.clone()]);
    assert_eq!(img.repo_digests.len(), 1, "{img:?}");
    assert_eq!(img.uid.map(|u| u.value), Some(0));
    assert_eq!(status(&mut c, &pulled).map(|i| i.id), Some(pulled.clone()), "by id");
    assert_eq!(status(&mut c, &img.repo_digests[0]).map(|i| i.id), Some(pulled.clone()), "by digest");
    assert!(status(&mut c, "127.0.0.1:1/nope:1").is_none());

    for handler in ["runc", "crun"] {
        let name = format!("web-{handler}");
        let run =
            cri::RunPodSandboxRequest { config: Some(pod_config(&name, 0)), runtime_handler: handler.into() };
        let pod = block_on(c.rt.run_pod_sandbox(run.clone())).expect("run pod").into_inner().pod_sandbox_id;
        // A name is reserved once.
        let again = block_on(c.rt.run_pod_sandbox(run)).expect_err("same name twice");
        assert_eq!(again.code(), tonic::Code::AlreadyExists, "{again:?}");
        let s = block_on(c.rt.pod_sandbox_status(cri::PodSandboxStatusRequest {
            pod_sandbox_id: pod.clone(),
            verbose: false,
        }))
        .expect("pod status")
        .into_inner()
        .status
        .expect("status");
        assert_eq!(s.state, cri::PodSandboxState::SandboxReady as i32);
        assert_eq!(s.annotations.get("note").map(String::as_str), Some("kept exactly: ä/\"x\""));
        assert_eq!(s.runtime_handler, handler);
        // No pause process: nothing runs for the pod itself.
        assert!(processes_with(&pod).is_empty(), "processes for pod {pod}: {:?}", processes_with(&pod));

        let create = cri::CreateContainerRequest {
            pod_sandbox_id: pod.clone(),
            config: Some(container_config(
                "main",
                &image,
                "trap 'echo term' TERM; echo started; while :; do sleep 0.2; done",
            )),
            sandbox_config: Some(pod_config(&name, 0)),
        };
        let main = block_on(c.rt.create_container(create)).expect("create").into_inner().container_id;
        assert_eq!(
            block_on(container_state(&mut c, &main)).state,
            cri::ContainerState::ContainerCreated as i32
        );
        block_on(c.rt.start_container(cri::StartContainerRequest { container_id: main.clone() }))
            .expect("start");
        let st = block_on(container_state(&mut c, &main));
        assert_eq!(st.state, cri::ContainerState::ContainerRunning as i32);
        assert!(st.started_at > 0 && st.image_ref == pulled, "{st:?}");

        // ExecSync: exact streams and code; the pod's hostname, sysctl, DNS and /dev/shm.
        let r = block_on(exec(&mut c, &main, "printf 'o1\\no2'; printf e1 >&2; exit 7"));
        assert_eq!((r.stdout.as_slice(), r.stderr.as_slice(), r.exit_code), (&b"o1\no2"[..], &b"e1"[..], 7));
        let r = block_on(exec(
            &mut c,
            &main,
            "hostname; cat /proc/sys/net/ipv4/ip_unprivileged_port_start; cat /etc/resolv.conf; grep -c ' /dev/shm tmpfs' /proc/mounts",
        ));
        assert_eq!(
            String::from_utf8_lossy(&r.stdout),
            format!("host-{name}\n81\nsearch svc.cluster.local\nnameserver 10.0.0.10\noptions ndots:5\n1\n")
        );
        // Probes every few seconds for a container's life: exec records and logs stay bounded.
        for i in 0..20 {
            let r = block_on(exec(&mut c, &main, &format!("echo probe {i}")));
            assert_eq!(String::from_utf8_lossy(&r.stdout), format!("probe {i}\n"));
        }
        let logs = berth.root.join("logs/k8s.io").join(&main);
        let kept = std::fs::read_dir(&logs).map(|d| d.count()).unwrap_or(0);
        assert!(kept <= 17, "{kept} log files kept in {}", logs.display());
        // A timeout kills the process and fails the call.
        let slow = cri::ExecSyncRequest {
            container_id: main.clone(),
            cmd: vec!["sleep".into(), "30".into()],
            timeout: 1,
        };
        let t0 = std::time::Instant::now();
        assert!(block_on(c.rt.exec_sync(slow)).is_err());
        assert!(t0.elapsed() < Duration::from_secs(10));

        // A second container of the pod shares its network namespace; it exits 3.
        let create = cri::CreateContainerRequest {
            pod_sandbox_id: pod.clone(),
            config: Some(container_config(
                "side",
                &image,
                "cat /proc/sys/net/ipv4/ip_unprivileged_port_start > /dev/null; exit 3",
            )),
            sandbox_config: None,
        };
        let side = block_on(c.rt.create_container(create)).expect("create side").into_inner().container_id;
        block_on(c.rt.start_container(cri::StartContainerRequest { container_id: side.clone() }))
            .expect("start side");
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let st = loop {
            let st = block_on(container_state(&mut c, &side));
            if st.state == cri::ContainerState::ContainerExited as i32 || std::time::Instant::now() > deadline
            {
                break st;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        assert_eq!(
            (st.state, st.exit_code, st.reason.as_str()),
            (cri::ContainerState::ContainerExited as i32, 3, "Error")
        );

        // SIGKILL of the CRI service, then of the runtime service: everything listed as before.
        let list = |c: &mut CriClient| {
            let mut ids: Vec<(String, i32)> = block_on(c.rt.list_containers(cri::ListContainersRequest {
                filter: Some(cri::ContainerFilter { pod_sandbox_id: pod.clone(), ..Default::default() }),
            }))
            .expect("list")
            .into_inner()
            .containers
            .into_iter()
            .map(|x| (x.id, x.state))
            .collect();
            ids.sort();
            ids
        };
        let before = list(&mut c);
        assert_eq!(before.len(), 2);
        kill_service(&mut berth, "cri");
        c = block_on(CriClient::of(&berth));
        assert_eq!(list(&mut c), before, "after SIGKILL of berth-cri");
        kill_service(&mut berth, "runtime");
        assert_eq!(list(&mut c), before, "after SIGKILL of the runtime service");
        let only_running = cri::ListContainersRequest {
            filter: Some(cri::ContainerFilter {
                state: Some(cri::ContainerStateValue { state: cri::ContainerState::ContainerRunning as i32 }),
                label_selector: HashMap::from([("c".into(), "main".into())]),
                ..Default::default()
            }),
        };
        let running = block_on(c.rt.list_containers(only_running)).expect("filtered").into_inner().containers;
        assert!(running.iter().all(|x| x.id == main) && running.iter().any(|x| x.id == main), "{running:?}");

        // berth's own CLI sees the same objects in namespace k8s.io.
        let listed = berth_ok(&berth, &["-n", "k8s.io", "containers", "ls", "-q"]);
        assert!(listed.contains(&main) && listed.contains(&side), "{listed}");

        // Stop: SIGTERM then SIGKILL after the timeout (the shell traps SIGTERM and goes on).
        block_on(c.rt.stop_container(cri::StopContainerRequest { container_id: main.clone(), timeout: 1 }))
            .expect("stop");
        let st = block_on(container_state(&mut c, &main));
        assert_eq!((st.state, st.exit_code), (cri::ContainerState::ContainerExited as i32, 137), "{st:?}");
        assert!(st.finished_at >= st.started_at);

        block_on(c.rt.stop_pod_sandbox(cri::StopPodSandboxRequest { pod_sandbox_id: pod.clone() }))
            .expect("stop pod");
        let pods = block_on(c.rt.list_pod_sandbox(cri::ListPodSandboxRequest {
            filter: Some(cri::PodSandboxFilter { id: pod.clone(), ..Default::default() }),
        }))
        .expect("list pods")
        .into_inner()
        .items;
        assert_eq!(pods.len(), 1);
        assert_eq!(pods[0].state, cri::PodSandboxState::SandboxNotready as i32);
        assert_eq!(pods[0].labels.get("app"), Some(&name));
        block_on(c.rt.remove_pod_sandbox(cri::RemovePodSandboxRequest { pod_sandbox_id: pod.clone() }))
            .expect("rm pod");
        assert!(list(&mut c).is_empty());
        // Idempotent: stopping and removing what is gone is fine.
        block_on(c.rt.stop_pod_sandbox(cri::StopPodSandboxRequest { pod_sandbox_id: pod.clone() }))
            .expect("stop again");
        block_on(c.rt.remove_pod_sandbox(cri::RemovePodSandboxRequest { pod_sandbox_id: pod.clone() }))
            .expect("rm again");
        block_on(c.rt.stop_container(cri::StopContainerRequest { container_id: main.clone(), timeout: 0 }))
            .expect("stop gone");
        block_on(c.rt.remove_container(cri::RemoveContainerRequest { container_id: main.clone() }))
            .expect("rm gone");
    }
    let left = mounts_under(&berth.state);
    assert!(left.is_empty(), "mounts left: {left:?}");
    assert!(!berth.state.join("sandboxes/k8s.io").read_dir().is_ok_and(|mut d| d.next().is_some()));
    // The removed containers' snapshots and output logs go just after RemoveContainer
    // answered (in the background): soon, and for good.
    let leftovers = || {
        let snaps = berth.cli(&["-n", "k8s.io", "snapshots", "ls"]);
        assert!(snaps.status.success(), "{snaps:?}");
        let snaps =
            String::from_utf8_lossy(&snaps.stdout).lines().filter(|l| l.contains("berth-container")).count();
        let logs = berth.root.join("logs/k8s.io").read_dir().map(|d| d.count()).unwrap_or(0);
        (snaps, logs)
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while leftovers() != (0, 0) && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(leftovers(), (0, 0), "(container snapshots, log dirs) left after RemoveContainer");

    // RemoveImage removes every name; a second remove is fine.
    let rm = || cri::RemoveImageRequest {
        image: Some(cri::ImageSpec { image: pulled.clone(), ..Default::default() }),
    };
    block_on(c.img.remove_image(rm())).expect("rm image");
    block_on(c.img.remove_image(rm())).expect("rm image again");
    let images =
        block_on(c.img.list_images(cri::ListImagesRequest::default())).expect("list").into_inner().images;
    assert!(images.is_empty(), "{images:?}");
}

#[test]
fn a_power_cut_after_remove_container_leaves_no_snapshot_or_logs_behind() {
    let Some((mut berth, _reg, image)) = setup() else { return };
    let leftovers = |berth: &Berth| {
        let snaps = berth.cli(&["-n", "k8s.io", "snapshots", "ls"]);
        assert!(snaps.status.success(), "{snaps:?}");
        let snaps =
            String::from_utf8_lossy(&snaps.stdout).lines().filter(|l| l.contains("berth-container")).count();
        let logs = berth.root.join("logs/k8s.io").read_dir().map(|d| d.count()).unwrap_or(0);
        (snaps, logs)
    };
    berth.stop();
    let log = berth.dir.path().join("failpoints.log");
    berth.env = vec![
        ("BERTH_FAILPOINTS".into(), "runtime.container.remove.after_record".into()),
        ("BERTH_FAILPOINT_LOG".into(), log.display().to_string()),
    ];
    berth.launch();
    let mut c = block_on(CriClient::of(&berth));
    block_on(c.img.pull_image(cri::PullImageRequest {
        image: Some(cri::ImageSpec { image: image.clone(), ..Default::default() }),
        ..Default::default()
    }))
    .expect("pull");
    let config = pod_config("cut", 0);
    let pod = block_on(c.rt.run_pod_sandbox(cri::RunPodSandboxRequest {
        config: Some(config.clone()),
        runtime_handler: String::new(),
    }))
    .expect("run pod")
    .into_inner()
    .pod_sandbox_id;
    let req = cri::CreateContainerRequest {
        pod_sandbox_id: pod.clone(),
        config: Some(container_config("c", &image, "echo out; sleep 1000")),
        sandbox_config: Some(config),
    };
    let id = block_on(c.rt.create_container(req)).expect("create").into_inner().container_id;
    block_on(c.rt.start_container(cri::StartContainerRequest { container_id: id.clone() })).expect("start");
    block_on(c.rt.stop_container(cri::StopContainerRequest { container_id: id.clone(), timeout: 0 }))
        .expect("stop");
    assert_eq!(leftovers(&berth), (1, 1), "(container snapshots, log dirs) before the remove");
    // The shim unmounts an exited container's rootfs after its early delete.
    let rootfs = format!("{id}/rootfs");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while mounts_under(&berth.state).iter().any(|m| m.ends_with(&rootfs)) {
        assert!(
            std::time::Instant::now() < deadline,
            "rootfs still mounted: {:?}",
            mounts_under(&berth.state)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // The cut comes once the record is gone: the answer may or may not have left.
    let _ = block_on(c.rt.remove_container(cri::RemoveContainerRequest { container_id: id.clone() }));
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while berth.wait_launcher_exit(Duration::from_millis(20)).is_none() {
        assert!(std::time::Instant::now() < deadline, "berthd did not die");
    }
    let fired = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(fired.contains("runtime.container.remove.after_record"), "fired: {fired}");
    berth.env.clear();
    berth.launch();
    let mut c = block_on(CriClient::of(&berth));
    // The container is gone; its snapshot is GC's, its log dir the start's reconcile's.
    let listed = block_on(c.rt.list_containers(cri::ListContainersRequest::default()))
        .expect("list")
        .into_inner()
        .containers;
    assert!(listed.iter().all(|x| x.id != id), "{listed:?}");
    berth_ok(&berth, &["gc"]);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while leftovers(&berth) != (0, 0) && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(leftovers(&berth), (0, 0), "(container snapshots, log dirs) left after the cut");
    block_on(c.rt.stop_pod_sandbox(cri::StopPodSandboxRequest { pod_sandbox_id: pod.clone() }))
        .expect("stop pod");
    block_on(c.rt.remove_pod_sandbox(cri::RemovePodSandboxRequest { pod_sandbox_id: pod })).expect("rm pod");
    let left = mounts_under(&berth.state);
    assert!(left.is_empty(), "mounts left: {left:?}");
}

#[test]
fn bad_cri_requests_are_refused_and_leave_nothing() {
    let Some((berth, _reg, image)) = setup() else { return };
    let mut c = block_on(CriClient::of(&berth));
    let code = |r: Result<tonic::Response<cri::RunPodSandboxResponse>, tonic::Status>| {
        r.expect_err("refused").code()
    };
    let handler =
        cri::RunPodSandboxRequest { config: Some(pod_config("h", 0)), runtime_handler: "kata".into() };
    assert_eq!(code(block_on(c.rt.run_pod_sandbox(handler))), tonic::Code::InvalidArgument);
    let mut host_sysctl = pod_config("s", 0);
    host_sysctl.linux.as_mut().expect("linux").sysctls.insert("kernel.panic".into(), "1".into());
    let r = block_on(c.rt.run_pod_sandbox(cri::RunPodSandboxRequest {
        config: Some(host_sysctl),
        runtime_handler: String::new(),
    }));
    let e = r.expect_err("host sysctl");
    assert!(e.code() == tonic::Code::InvalidArgument && e.message().contains("kernel.panic"), "{e:?}");
    let no_meta = cri::PodSandboxConfig { metadata: None, ..pod_config("m", 0) };
    let r = block_on(c.rt.run_pod_sandbox(cri::RunPodSandboxRequest {
        config: Some(no_meta),
        runtime_handler: String::new(),
    }));
    assert_eq!(code(r), tonic::Code::InvalidArgument);

    let pod = block_on(c.rt.run_pod_sandbox(cri::RunPodSandboxRequest {
        config: Some(pod_config("ok", 0)),
        runtime_handler: String::new(),
    }))
    .expect("pod")
    .into_inner()
    .pod_sandbox_id;
    let mut escaping = container_config("esc", &image, "true");
    escaping.mounts.push(cri::Mount {
        container_path: "/a/../../etc".into(),
        host_path: "/tmp".into(),
        ..Default::default()
    });
    let r = block_on(c.rt.create_container(cri::CreateContainerRequest {
        pod_sandbox_id: pod.clone(),
        config: Some(escaping),
        sandbox_config: None,
    }));
    assert_eq!(r.expect_err("escaping mount").code(), tonic::Code::InvalidArgument);
    let unknown = container_config("img", "127.0.0.1:1/none:1", "true");
    let r = block_on(c.rt.create_container(cri::CreateContainerRequest {
        pod_sandbox_id: pod.clone(),
        config: Some(unknown),
        sandbox_config: None,
    }));
    assert_eq!(r.expect_err("unknown image").code(), tonic::Code::NotFound);
    let r = block_on(c.rt.create_container(cri::CreateContainerRequest {
        pod_sandbox_id: "0000".into(),
        config: Some(container_config("x", &image, "true")),
        sandbox_config: None,
    }));
    assert_eq!(r.expect_err("unknown pod").code(), tonic::Code::NotFound);
    let r = block_on(
        c.rt.container_status(cri::ContainerStatusRequest { container_id: "ffff".into(), verbose: false }),
    );
    assert_eq!(r.expect_err("unknown container").code(), tonic::Code::NotFound);
    // Nothing was made by the refused creates.
    let all = block_on(c.rt.list_containers(cri::ListContainersRequest::default()))
        .expect("list")
        .into_inner()
        .containers;
    assert!(all.is_empty(), "{all:?}");
    let pods = block_on(c.rt.list_pod_sandbox(cri::ListPodSandboxRequest::default()))
        .expect("pods")
        .into_inner()
        .items;
    assert_eq!(pods.len(), 1);
    block_on(c.rt.remove_pod_sandbox(cri::RemovePodSandboxRequest { pod_sandbox_id: pod })).expect("rm");
    assert!(mounts_under(&berth.state).is_empty(), "{:?}", mounts_under(&berth.state));
}

#[test]
fn shared_pid_namespace_is_held_by_a_holder_until_the_pod_stops() {
    let Some((berth, _reg, image)) = setup() else { return };
    let mut c = block_on(CriClient::of(&berth));
    block_on(c.img.pull_image(cri::PullImageRequest {
        image: Some(cri::ImageSpec { image: image.clone(), ..Default::default() }),
        ..Default::default()
    }))
    .expect("pull");
    let mut config = pod_config("shared", 0);
    let sc = config.linux.as_mut().and_then(|l| l.security_context.as_mut()).expect("security context");
    sc.namespace_options.as_mut().expect("options").pid = cri::NamespaceMode::Pod as i32;
    let run = cri::RunPodSandboxRequest { config: Some(config.clone()), runtime_handler: String::new() };
    let pod = block_on(c.rt.run_pod_sandbox(run)).expect("run pod").into_inner().pod_sandbox_id;
    let holders = processes_with(&pod);
    assert_eq!(holders.len(), 1, "one holder for the shared pid namespace: {holders:?}");
    let mut ids = Vec::new();
    for (name, script) in [("a", "exec sleep 4242"), ("b", "exec sleep 1000")] {
        let create = cri::CreateContainerRequest {
            pod_sandbox_id: pod.clone(),
            config: Some(container_config(name, &image, script)),
            sandbox_config: Some(config.clone()),
        };
        let id = block_on(c.rt.create_container(create)).expect("create").into_inner().container_id;
        block_on(c.rt.start_container(cri::StartContainerRequest { container_id: id.clone() }))
            .expect("start");
        ids.push(id);
    }
    // b sees a's process, and pid 1 of the namespace is the holder, not a container.
    let r =
        block_on(exec(&mut c, &ids[1], "cat /proc/[0-9]*/cmdline | tr '\\0' ' '; echo; cat /proc/1/comm"));
    let out = String::from_utf8_lossy(&r.stdout);
    assert!(out.contains("sleep 4242"), "{out}");
    assert!(out.trim_end().ends_with("berth-pod"), "{out}");
    block_on(c.rt.stop_pod_sandbox(cri::StopPodSandboxRequest { pod_sandbox_id: pod.clone() }))
        .expect("stop");
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !processes_with(&pod).is_empty() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(processes_with(&pod).is_empty(), "holder left: {:?}", processes_with(&pod));
    for id in &ids {
        assert_eq!(block_on(container_state(&mut c, id)).state, cri::ContainerState::ContainerExited as i32);
    }
    block_on(c.rt.remove_pod_sandbox(cri::RemovePodSandboxRequest { pod_sandbox_id: pod })).expect("rm");
    assert!(mounts_under(&berth.state).is_empty(), "{:?}", mounts_under(&berth.state));
}

#[test]
fn a_container_killed_by_the_oom_killer_reports_oomkilled() {
    let Some((berth, _reg, image)) = setup() else { return };
    let mut c = block_on(CriClient::of(&berth));
    // Memory is filled at once: the kill comes in the container's first moments.
    let (pod, id) = limited_container(&mut c, &image, "oom", "tail /dev/zero", 16 << 20);
    block_on(c.rt.start_container(cri::StartContainerRequest { container_id: id.clone() })).expect("start");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let st = loop {
        let st = block_on(container_state(&mut c, &id));
        if st.state == cri::ContainerState::ContainerExited as i32 || std::time::Instant::now() > deadline {
            break st;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(
        (st.state, st.exit_code, st.reason.as_str()),
        (cri::ContainerState::ContainerExited as i32, 137, "OOMKilled"),
        "{st:?}"
    );
    block_on(c.rt.remove_pod_sandbox(cri::RemovePodSandboxRequest { pod_sandbox_id: pod })).expect("rm");
}

#[test]
fn update_container_resources_changes_a_running_containers_cgroup() {
    let Some((berth, _reg, image)) = setup() else { return };
    let mut c = block_on(CriClient::of(&berth));
    let (pod, id) = limited_container(&mut c, &image, "upd", "sleep 600", 64 << 20);
    block_on(c.rt.start_container(cri::StartContainerRequest { container_id: id.clone() })).expect("start");
    // The container's own memory cgroup, v1 or v2, as the kernel enforces it.
    let limit_script =
        "cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max";
    let limit = |c: &mut CriClient| {
        let out = block_on(exec(c, &id, limit_script));
        assert_eq!(out.exit_code, 0, "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    assert_eq!(limit(&mut c), (64u64 << 20).to_string(), "the create's limit");

    let new = cri::LinuxContainerResources {
        memory_limit_in_bytes: 96 << 20,
        cpu_period: 100_000,
        cpu_quota: 50_000,
        ..Default::default()
    };
    let update = cri::UpdateContainerResourcesRequest {
        container_id: id[..12].into(),
        linux: Some(new.clone()),
        ..Default::default()
    };
    block_on(c.rt.update_container_resources(update)).expect("update by id prefix");
    assert_eq!(limit(&mut c), (96u64 << 20).to_string(), "the running cgroup holds the new limit");
    let st = block_on(container_state(&mut c, &id));
    let reported = st.resources.and_then(|r| r.linux).expect("status reports resources");
    assert_eq!((reported.memory_limit_in_bytes, reported.cpu_quota), (96 << 20, 50_000), "{reported:?}");

    // A bad limit is refused by name and changes nothing.
    let bad = cri::UpdateContainerResourcesRequest {
        container_id: id.clone(),
        linux: Some(cri::LinuxContainerResources { cpuset_cpus: "0-x".into(), ..Default::default() }),
        ..Default::default()
    };
    let err = block_on(c.rt.update_container_resources(bad)).expect_err("bad cpuset refused");
    assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err}");
    assert!(err.message().contains(&id) && err.message().contains("cpuset"), "{err}");
    assert_eq!(limit(&mut c), (96u64 << 20).to_string(), "unchanged after the refusal");
    let unknown = cri::UpdateContainerResourcesRequest {
        container_id: "0123456789abcdef".into(),
        linux: Some(new.clone()),
        ..Default::default()
    };
    let err = block_on(c.rt.update_container_resources(unknown)).expect_err("unknown container");
    assert_eq!(err.code(), tonic::Code::NotFound, "{err}");

    // Once it has exited, its resources are history.
    let stop = cri::StopContainerRequest { container_id: id.clone(), timeout: 0 };
    block_on(c.rt.stop_container(stop)).expect("stop");
    let late =
        cri::UpdateContainerResourcesRequest { container_id: id, linux: Some(new), ..Default::default() };
    let err = block_on(c.rt.update_container_resources(late)).expect_err("exited container");
    assert_eq!(err.code(), tonic::Code::FailedPrecondition, "{err}");
    block_on(c.rt.remove_pod_sandbox(cri::RemovePodSandboxRequest { pod_sandbox_id: pod })).expect("rm");
}

#[test]
fn stop_container_sends_the_images_stop_signal() {
    let Some((berth, _reg, _image)) = setup() else { return };
    runtime_support::import_busybox_in(
        &berth,
        "k8s.io",
        "quitter",
        serde_json::json!({"Cmd": ["sh"], "StopSignal": "SIGUSR1"}),
    );
    let mut c = block_on(CriClient::of(&berth));
    let config = pod_config("stopsig", 0);
    let run = cri::RunPodSandboxRequest { config: Some(config.clone()), runtime_handler: String::new() };
    let pod = block_on(c.rt.run_pod_sandbox(run)).expect("run pod").into_inner().pod_sandbox_id;
    // As pid 1 the shell ignores a signal it has no trap for: SIGTERM would end in the
    // SIGKILL after the timeout (137); SIGUSR1 runs the trap (42).
    let script = "trap 'exit 42' USR1; touch /tmp/ready; while true; do sleep 0.1; done";
    let create = cri::CreateContainerRequest {
        pod_sandbox_id: pod.clone(),
        config: Some(container_config("quitter", "quitter", script)),
        sandbox_config: Some(config),
    };
    let id = block_on(c.rt.create_container(create)).expect("create").into_inner().container_id;
    block_on(c.rt.start_container(cri::StartContainerRequest { container_id: id.clone() })).expect("start");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while block_on(exec(&mut c, &id, "test -e /tmp/ready")).exit_code != 0 {
        assert!(std::time::Instant::now() < deadline, "the trap was never set");
        std::thread::sleep(Duration::from_millis(20));
    }
    let stop = cri::StopContainerRequest { container_id: id.clone(), timeout: 10 };
    block_on(c.rt.stop_container(stop)).expect("stop");
    let st = block_on(container_state(&mut c, &id));
    assert_eq!((st.state, st.exit_code), (cri::ContainerState::ContainerExited as i32, 42), "{st:?}");
    block_on(c.rt.remove_pod_sandbox(cri::RemovePodSandboxRequest { pod_sandbox_id: pod })).expect("rm");
}
