//! User namespaces for CRI pods (Kubernetes' `hostUsers: false`), end to end with runc and
//! crun: a POD-mode pod's containers run as root inside and as the mapped host ids outside,
//! see the image's files as root's through id-mapped layers, write files owned on the host
//! by the mapped ids; the id-mapped rootfs goes at stop and remove. NODE mode is the host's
//! user namespace. Malformed mappings are refused with a message and nothing left behind.

mod runtime_support;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::time::Duration;

use berth_ipc::launcher::ServiceState;
use berth_system_tests::cri::{CriClient, block_on};
use berth_system_tests::dist::Registry;
use berth_system_tests::{Berth, mounts_under, signal};
use k8s_cri::v1 as cri;
use nix::sys::signal::Signal;
use runtime_support::{can_run, import_busybox};

const LEN: u32 = 65536;

fn userns(mode: cri::NamespaceMode, host: u32) -> cri::UserNamespace {
    let map = |host_id| vec![cri::IdMapping { host_id, container_id: 0, length: LEN }];
    match mode {
        cri::NamespaceMode::Pod => {
            cri::UserNamespace { mode: mode as i32, uids: map(host), gids: map(host + 7) }
        }
        _ => cri::UserNamespace { mode: mode as i32, uids: Vec::new(), gids: Vec::new() },
    }
}

fn pod_config(name: &str, u: Option<cri::UserNamespace>) -> cri::PodSandboxConfig {
    pod_config_pid(name, u, cri::NamespaceMode::Container)
}

fn pod_config_pid(
    name: &str,
    u: Option<cri::UserNamespace>,
    pid: cri::NamespaceMode,
) -> cri::PodSandboxConfig {
    cri::PodSandboxConfig {
        metadata: Some(cri::PodSandboxMetadata {
            name: name.into(),
            uid: format!("uid-{name}"),
            namespace: "userns-test".into(),
            attempt: 0,
        }),
        hostname: format!("h-{name}"),
        linux: Some(cri::LinuxPodSandboxConfig {
            security_context: Some(cri::LinuxSandboxSecurityContext {
                namespace_options: Some(cri::NamespaceOption {
                    pid: pid as i32,
                    userns_options: u,
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn container_config(name: &str, image: &str, u: Option<cri::UserNamespace>) -> cri::ContainerConfig {
    container_config_pid(name, image, u, cri::NamespaceMode::Container)
}

fn container_config_pid(
    name: &str,
    image: &str,
    u: Option<cri::UserNamespace>,
    pid: cri::NamespaceMode,
) -> cri::ContainerConfig {
    cri::ContainerConfig {
        metadata: Some(cri::ContainerMetadata { name: name.into(), attempt: 0 }),
        image: Some(cri::ImageSpec { image: image.into(), ..Default::default() }),
        command: vec![
            "sh".into(),
            "-c".into(),
            "echo up > /made-at-start; while :; do sleep 0.2; done".into(),
        ],
        linux: Some(cri::LinuxContainerConfig {
            resources: None,
            security_context: Some(cri::LinuxContainerSecurityContext {
                namespace_options: Some(cri::NamespaceOption {
                    pid: pid as i32,
                    userns_options: u,
                    ..Default::default()
                }),
                ..Default::default()
            }),
        }),
        ..Default::default()
    }
}

/// A berthd whose temp root the mapped ids can cross (tempfile makes it 0700; runc's and
/// crun's init run as the mapped root and must reach the rootfs), a registry holding
/// busybox, the image pulled through CRI, and a client.
fn setup() -> Option<(Berth, Registry, String, CriClient)> {
    if !can_run("runc") || !can_run("crun") {
        return None;
    }
    let berth = Berth::start();
    std::fs::set_permissions(berth.dir.path(), std::fs::Permissions::from_mode(0o711)).expect("chmod root");
    let reg = Registry::start(None);
    import_busybox(&berth, "usernssrc", serde_json::json!({"Cmd": ["sh"], "User": "0"}));
    let (image, c) = CriClient::pulled(&berth, &reg, "usernssrc", "userns");
    Some((berth, reg, image, c))
}

async fn exec(c: &mut CriClient, id: &str, script: &str) -> String {
    let req = cri::ExecSyncRequest {
        container_id: id.into(),
        cmd: vec!["sh".into(), "-c".into(), script.into()],
        timeout: 10,
    };
    let r = c.rt.exec_sync(req).await.expect("exec_sync").into_inner();
    assert_eq!(r.exit_code, 0, "{script}: {}", String::from_utf8_lossy(&r.stderr));
    String::from_utf8_lossy(&r.stdout).into_owned()
}

fn words(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Runs pod `name` and a started container in it: (pod, container).
fn run(
    c: &mut CriClient,
    image: &str,
    name: &str,
    handler: &str,
    u: Option<cri::UserNamespace>,
) -> (String, String) {
    run_pid(c, image, name, handler, u, cri::NamespaceMode::Container)
}

/// [`run`] with pid namespace mode `pid` for the pod and the container.
fn run_pid(
    c: &mut CriClient,
    image: &str,
    name: &str,
    handler: &str,
    u: Option<cri::UserNamespace>,
    pid: cri::NamespaceMode,
) -> (String, String) {
    let config = pod_config_pid(name, u.clone(), pid);
    let req = cri::RunPodSandboxRequest { config: Some(config.clone()), runtime_handler: handler.into() };
    let pod = block_on(c.rt.run_pod_sandbox(req)).expect("run pod").into_inner().pod_sandbox_id;
    let create = cri::CreateContainerRequest {
        pod_sandbox_id: pod.clone(),
        config: Some(container_config_pid("main", image, u, pid)),
        sandbox_config: Some(config),
    };
    let id = block_on(c.rt.create_container(create)).expect("create").into_inner().container_id;
    block_on(c.rt.start_container(cri::StartContainerRequest { container_id: id.clone() })).expect("start");
    (pod, id)
}

fn remove_pod(c: &mut CriClient, pod: &str) {
    block_on(c.rt.stop_pod_sandbox(cri::StopPodSandboxRequest { pod_sandbox_id: pod.into() }))
        .expect("stop pod");
    block_on(c.rt.remove_pod_sandbox(cri::RemovePodSandboxRequest { pod_sandbox_id: pod.into() }))
        .expect("rm pod");
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

/// The host pid of container `id` (from its verbose status).
fn host_pid(c: &mut CriClient, id: &str) -> u32 {
    let req = cri::ContainerStatusRequest { container_id: id.into(), verbose: true };
    let info = block_on(c.rt.container_status(req)).expect("status").into_inner().info;
    let v: serde_json::Value = serde_json::from_str(info.get("info").expect("info")).expect("json");
    v["pid"].as_u64().expect("pid") as u32
}

/// `upperdir=` of the overlay mounted at `target`, from mountinfo.
fn upperdir_of(target: &std::path::Path) -> Option<String> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    let t = target.display().to_string();
    let line = info.lines().find(|l| l.split(' ').nth(4) == Some(t.as_str()))?;
    let opts = line.rsplit(' ').next()?;
    opts.split(',').find_map(|o| o.strip_prefix("upperdir=")).map(String::from)
}

#[test]
fn pod_user_namespace_with_runc_and_crun() {
    let Some((mut berth, _reg, image, mut c)) = setup() else { return };
    let st = block_on(c.rt.status(cri::StatusRequest { verbose: false })).expect("status").into_inner();
    assert!(
        st.runtime_handlers.iter().all(|h| h.features.is_some_and(|f| f.user_namespaces)),
        "{:?}",
        st.runtime_handlers
    );
    // runc with the pod's pid namespace (its holder made inside the user namespace), crun
    // with one per container.
    let cases =
        [("runc", 300_000u32, cri::NamespaceMode::Pod), ("crun", 400_000u32, cri::NamespaceMode::Container)];
    for (handler, host, pid_mode) in cases {
        let name = format!("userns-{handler}");
        let u = Some(userns(cri::NamespaceMode::Pod, host));
        let (pod, id) = run_pid(&mut c, &image, &name, handler, u, pid_mode);
        if pid_mode == cri::NamespaceMode::Pod {
            let out = block_on(exec(&mut c, &id, "cat /proc/1/comm; cat /proc/1/uid_map"));
            assert_eq!(
                words(&out),
                format!("berth-pod 0 {host} {LEN}"),
                "the pod's pid 1 in its user namespace"
            );
        }

        // Inside: the mapping, root, the image's files root's, the pod's hostname.
        let out = block_on(exec(&mut c, &id, "cat /proc/self/uid_map; cat /proc/self/gid_map"));
        assert_eq!(words(&out), format!("0 {host} {LEN} 0 {} {LEN}", host + 7), "{handler}");
        let out = block_on(exec(&mut c, &id, "id -u; id -g; stat -c %u:%g /bin/busybox /; hostname"));
        assert_eq!(words(&out), format!("0 0 0:0 0:0 h-{name}"), "{handler}");

        // Outside: the process runs as the mapped host ids.
        let pid = host_pid(&mut c, &id);
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
        let line = |k: &str| status.lines().find(|l| l.starts_with(k)).map(words).unwrap_or_default();
        assert_eq!(line("Uid:"), format!("Uid: {host} {host} {host} {host}"), "{handler}");
        assert_eq!(line("Gid:"), format!("Gid: {} {} {} {}", host + 7, host + 7, host + 7, host + 7));

        // A file the container makes is the mapped ids' on the host, in the upper dir.
        block_on(exec(&mut c, &id, "mkdir /made-dir && echo x > /made-dir/f && chown 5:6 /made-dir/f"));
        let rootfs = berth.state.join("roots/k8s.io").join(&id).join("rootfs");
        let upper = upperdir_of(&rootfs).unwrap_or_else(|| panic!("no overlay at {}", rootfs.display()));
        for (file, uid, gid) in [
            ("made-at-start", host, host + 7),
            ("made-dir/f", host + 5, host + 7 + 6),
            ("made-dir", host, host + 7),
        ] {
            let md = std::fs::metadata(std::path::Path::new(&upper).join(file)).expect(file);
            assert_eq!((md.uid(), md.gid()), (uid, gid), "{handler}: {file} in {upper}");
        }
        // The image's layer itself is untouched: still host root's.
        let top = std::fs::metadata(&upper).expect("upper");
        assert_eq!((top.uid(), top.gid()), (host, host + 7), "the upper dir's top is the mapped root's");

        // A SIGKILLed runtime service: the running container's rootfs stays; an id-mapped
        // rootfs left without its task (a delete cut off) is unmounted and removed at start.
        let leftover = berth.state.join("roots/k8s.io").join(format!("gone-{handler}"));
        std::fs::create_dir_all(leftover.join("rootfs")).expect("leftover dir");
        nix::mount::mount(
            Some("tmpfs"),
            &leftover.join("rootfs"),
            Some("tmpfs"),
            nix::mount::MsFlags::empty(),
            None::<&str>,
        )
        .expect("mount leftover");
        kill_service(&mut berth, "runtime");
        let deadline = std::time::Instant::now() + Duration::from_secs(15);
        while leftover.exists() && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        assert!(!leftover.exists(), "{} not reconciled", leftover.display());
        assert!(mounts_under(&leftover).is_empty(), "{:?}", mounts_under(&leftover));
        let out = block_on(exec(&mut c, &id, "cat /made-dir/f; stat -c %u /made-dir/f"));
        assert_eq!(words(&out), "x 5", "{handler}: after the runtime service's restart");

        // Stop and remove the container: the id-mapped rootfs is unmounted and gone.
        block_on(c.rt.stop_container(cri::StopContainerRequest { container_id: id.clone(), timeout: 0 }))
            .expect("stop");
        block_on(c.rt.remove_container(cri::RemoveContainerRequest { container_id: id.clone() }))
            .expect("rm");
        assert!(mounts_under(&berth.state.join("roots")).is_empty(), "{:?}", mounts_under(&berth.state));
        assert!(!rootfs.exists(), "{} left", rootfs.display());
        remove_pod(&mut c, &pod);
        assert!(mounts_under(berth.dir.path()).is_empty(), "{:?}", mounts_under(berth.dir.path()));
    }
}

#[test]
fn node_mode_is_the_hosts_and_bad_mappings_are_refused() {
    let Some((berth, _reg, image, mut c)) = setup() else { return };

    // NODE: the host's user namespace, as without any option.
    let (pod, id) = run(&mut c, &image, "userns-node", "runc", Some(userns(cri::NamespaceMode::Node, 0)));
    let out = block_on(exec(&mut c, &id, "cat /proc/self/uid_map"));
    assert_eq!(words(&out), "0 0 4294967295");
    let pid = host_pid(&mut c, &id);
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    assert!(status.lines().any(|l| words(l) == "Uid: 0 0 0 0"), "{status}");
    block_on(c.rt.stop_container(cri::StopContainerRequest { container_id: id.clone(), timeout: 0 }))
        .expect("stop");
    remove_pod(&mut c, &pod);
    assert!(mounts_under(berth.dir.path()).is_empty(), "{:?}", mounts_under(berth.dir.path()));

    // Malformed pod mappings: refused by name, nothing made.
    let overlapping = cri::UserNamespace {
        mode: cri::NamespaceMode::Pod as i32,
        uids: vec![
            cri::IdMapping { host_id: 500_000, container_id: 0, length: 100 },
            cri::IdMapping { host_id: 600_000, container_id: 50, length: 100 },
        ],
        gids: vec![cri::IdMapping { host_id: 500_000, container_id: 0, length: LEN }],
    };
    let zero = cri::UserNamespace {
        uids: vec![cri::IdMapping { host_id: 500_000, container_id: 0, length: 0 }],
        ..overlapping.clone()
    };
    let none =
        cri::UserNamespace { mode: cri::NamespaceMode::Pod as i32, uids: Vec::new(), gids: Vec::new() };
    let container_mode = cri::UserNamespace { mode: cri::NamespaceMode::Container as i32, ..none.clone() };
    let rootless = cri::UserNamespace {
        uids: vec![cri::IdMapping { host_id: 500_000, container_id: 1, length: LEN }],
        ..overlapping.clone()
    };
    let cases = [
        (rootless, "user namespace does not map container uid 0 (root)"),
        (overlapping, "uid mappings 0:500000:100 and 50:600000:100 overlap"),
        (zero, "uid mapping 0:500000:0 has length 0"),
        (none, "user namespace mode POD needs uid and gid mappings"),
        (container_mode, "user namespace mode CONTAINER is not supported"),
    ];
    for (i, (u, want)) in cases.into_iter().enumerate() {
        let name = format!("userns-bad-{i}");
        let req = cri::RunPodSandboxRequest {
            config: Some(pod_config(&name, Some(u))),
            runtime_handler: String::new(),
        };
        let e = block_on(c.rt.run_pod_sandbox(req)).expect_err(want);
        assert_eq!(e.code(), tonic::Code::InvalidArgument, "{e:?}");
        assert!(e.message().contains(want), "{:?} does not say {want:?}", e.message());
        assert!(e.message().contains(&format!("userns-test/{name}")), "{:?} names no pod", e.message());
    }
    let pods = block_on(c.rt.list_pod_sandbox(cri::ListPodSandboxRequest { filter: None }))
        .expect("list")
        .into_inner()
        .items;
    assert!(pods.is_empty(), "{pods:?}");
    assert!(mounts_under(berth.dir.path()).is_empty(), "{:?}", mounts_under(berth.dir.path()));
    let sandboxes = std::fs::read_dir(berth.state.join("sandboxes/k8s.io")).map(|d| d.count()).unwrap_or(0);
    assert_eq!(sandboxes, 0, "sandbox dirs left");

    // A container whose mappings are not its pod's: refused by name, the pod unharmed.
    let config = pod_config("userns-mismatch", Some(userns(cri::NamespaceMode::Pod, 700_000)));
    let req = cri::RunPodSandboxRequest { config: Some(config.clone()), runtime_handler: "crun".into() };
    let pod = block_on(c.rt.run_pod_sandbox(req)).expect("run pod").into_inner().pod_sandbox_id;
    for other in [userns(cri::NamespaceMode::Pod, 800_000), userns(cri::NamespaceMode::Node, 0)] {
        let create = cri::CreateContainerRequest {
            pod_sandbox_id: pod.clone(),
            config: Some(container_config("stray", &image, Some(other))),
            sandbox_config: Some(config.clone()),
        };
        let e = block_on(c.rt.create_container(create)).expect_err("other mappings");
        assert_eq!(e.code(), tonic::Code::InvalidArgument, "{e:?}");
        assert!(
            e.message().contains("container \"stray\"") && e.message().contains("user namespace differs"),
            "{:?}",
            e.message()
        );
    }
    let listed = block_on(c.rt.list_containers(cri::ListContainersRequest { filter: None }))
        .expect("list")
        .into_inner()
        .containers;
    assert!(listed.is_empty(), "{listed:?}");

    // A state dir the mapped root cannot reach: the start fails saying so, leaving nothing;
    // once reachable, the same container starts.
    let create = cri::CreateContainerRequest {
        pod_sandbox_id: pod.clone(),
        config: Some(container_config("main", &image, Some(userns(cri::NamespaceMode::Pod, 700_000)))),
        sandbox_config: Some(config),
    };
    let id = block_on(c.rt.create_container(create)).expect("create").into_inner().container_id;
    let chmod = |mode| std::fs::set_permissions(berth.dir.path(), std::fs::Permissions::from_mode(mode));
    chmod(0o700).expect("chmod 0700");
    let start = cri::StartContainerRequest { container_id: id.clone() };
    let e = block_on(c.rt.start_container(start.clone())).expect_err("unreachable rootfs");
    chmod(0o711).expect("chmod 0711");
    assert_eq!(e.code(), tonic::Code::FailedPrecondition, "{e:?}");
    assert!(
        e.message().contains("cannot be searched by the pod's root (host uid 700000)"),
        "{:?}",
        e.message()
    );
    assert!(e.message().contains(&berth.dir.path().display().to_string()), "{:?}", e.message());
    assert!(!berth.state.join("roots/k8s.io").join(&id).exists(), "roots dir left");
    assert!(!berth.state.join("tasks/k8s.io").join(&id).exists(), "bundle left");
    block_on(c.rt.start_container(start)).expect("start once reachable");
    assert_eq!(words(&block_on(exec(&mut c, &id, "id -u; stat -c %u /bin/busybox"))), "0 0");

    remove_pod(&mut c, &pod);
    assert!(mounts_under(berth.dir.path()).is_empty(), "{:?}", mounts_under(berth.dir.path()));
}
