use super::*;

fn image(json: &str) -> ImageConfig {
    serde_json::from_str(json).expect("image config")
}

fn rootfs() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(dir.path().join("etc")).expect("etc");
    std::fs::create_dir_all(dir.path().join("app")).expect("app");
    std::fs::write(dir.path().join("etc/passwd"), "root:x:0:0::/root:/bin/sh\nweb:x:80:81::/:/bin/sh\n")
        .expect("passwd");
    dir
}

#[test]
fn image_defaults_and_overrides() {
    let r = rootfs();
    let img = image(
        r#"{"config":{"Entrypoint":["/bin/ep"],"Cmd":["a"],"Env":["A=1","PATH=/x"],"WorkingDir":"/app","User":"web"}}"#,
    );
    let spec = generate(&img, &RunOptions::default(), "c1", &place("/berth/ns/c1"), r.path()).expect("spec");
    let p = spec.process().clone().expect("process");
    assert_eq!(p.args().clone().expect("args"), vec!["/bin/ep", "a"]);
    assert_eq!(p.env().clone().expect("env"), vec!["PATH=/x", "A=1"]);
    assert_eq!(p.cwd(), &PathBuf::from("/app"));
    assert_eq!((p.user().uid(), p.user().gid()), (80, 81));
    assert_eq!(spec.hostname().as_deref(), Some("c1"));
    let linux = spec.linux().clone().expect("linux");
    assert_eq!(linux.cgroups_path().clone(), Some(PathBuf::from("/berth/ns/c1")));
    let ns: Vec<_> = linux.namespaces().clone().expect("ns").iter().map(|n| n.typ()).collect();
    assert!(ns.contains(&LinuxNamespaceType::Network) && ns.contains(&LinuxNamespaceType::Pid));
    assert!(linux.masked_paths().as_ref().is_some_and(|m| m.iter().any(|p| p == "/proc/kcore")));

    let opts = RunOptions {
        args: Some(vec!["b".into()]),
        env: vec!["A=2".into(), "B=3".into()],
        cwd: Some("/srv".into()),
        user: Some("5:6".into()),
        hostname: Some("h".into()),
        memory: Some(64 << 20),
        pids_limit: Some(10),
        net_host: true,
        read_only: true,
        ..RunOptions::default()
    };
    let spec = generate(&img, &opts, "c1", &place("/berth/ns/c1"), r.path()).expect("spec");
    let p = spec.process().clone().expect("process");
    assert_eq!(p.args().clone().expect("args"), vec!["/bin/ep", "b"]);
    assert_eq!(p.env().clone().expect("env"), vec!["PATH=/x", "A=2", "B=3"]);
    assert_eq!(p.cwd(), &PathBuf::from("/srv"));
    assert_eq!((p.user().uid(), p.user().gid()), (5, 6));
    let linux = spec.linux().clone().expect("linux");
    let ns: Vec<_> = linux.namespaces().clone().expect("ns").iter().map(|n| n.typ()).collect();
    assert!(!ns.contains(&LinuxNamespaceType::Network));
    let mem = linux.resources().clone().and_then(|r| *r.memory()).expect("memory");
    assert_eq!(mem.limit(), Some(64 << 20));
    assert_eq!(spec.root().clone().and_then(|r| r.readonly()), Some(true));
    let json = serde_json::to_string(&spec).expect("json");
    assert!(json.contains("\"CAP_CHOWN\""), "{json}");
}

#[test]
fn entrypoint_override_drops_image_cmd() {
    let r = rootfs();
    let img = image(r#"{"config":{"Entrypoint":["/bin/ep"],"Cmd":["a"]}}"#);
    let opts = RunOptions { entrypoint: Some(vec!["/bin/sh".into()]), ..RunOptions::default() };
    let spec = generate(&img, &opts, "c1", &place("/berth/ns/c1"), r.path()).expect("spec");
    assert_eq!(spec.process().clone().expect("p").args().clone().expect("args"), vec!["/bin/sh"]);
}

#[test]
fn bad_input() {
    let r = rootfs();
    std::os::unix::fs::symlink("/proc/self/fd/5", r.path().join("leak")).expect("symlink");
    let ok = image(r#"{"config":{"Cmd":["/bin/true"]}}"#);
    let cases: Vec<(ImageConfig, RunOptions)> = vec![
        (image("{}"), RunOptions::default()),
        (ok.clone(), RunOptions { user: Some("4294967295".into()), ..RunOptions::default() }),
        (ok.clone(), RunOptions { user: Some("nobody".into()), ..RunOptions::default() }),
        (ok.clone(), RunOptions { cwd: Some("/leak".into()), ..RunOptions::default() }),
        (image(r#"{"config":{"Cmd":["x"],"WorkingDir":"/leak"}}"#), RunOptions::default()),
        (ok.clone(), RunOptions { cwd: Some("rel".into()), ..RunOptions::default() }),
        (ok.clone(), RunOptions { env: vec!["NOEQUALS".into()], ..RunOptions::default() }),
        (ok.clone(), RunOptions { cpus_milli: Some(0), ..RunOptions::default() }),
        (
            ok.clone(),
            RunOptions {
                mounts: vec![berth_ipc::runtime::BindMount {
                    source: "/nonexistent-berth".into(),
                    destination: "/x".into(),
                    ..Default::default()
                }],
                ..RunOptions::default()
            },
        ),
    ];
    for (i, (img, opts)) in cases.iter().enumerate() {
        let err = generate(img, opts, "c", &place("/berth/ns/c"), r.path()).expect_err(&format!("case {i}"));
        assert!(err.is(berth_ipc::Code::InvalidArgument), "case {i}: {err:?}");
    }
}

#[test]
fn exec_inherits_the_container() {
    let r = rootfs();
    let img = image(r#"{"config":{"Cmd":["/bin/true"],"Env":["A=1"]}}"#);
    let spec = generate(&img, &RunOptions::default(), "c", &place("/berth/ns/c"), r.path()).expect("spec");
    let exec =
        ExecSpec { args: vec!["ls".into()], env: vec!["B=2".into()], cwd: None, ..ExecSpec::default() };
    let p = exec_process(&spec, &exec).expect("exec");
    assert_eq!(p.args().clone().expect("args"), vec!["ls"]);
    assert!(p.env().clone().expect("env").contains(&"B=2".to_string()));
    assert!(exec_process(&spec, &ExecSpec::default()).is_err());
}

fn place(cgroup: &str) -> super::Placement {
    super::Placement { cgroup: cgroup.to_string(), ..super::Placement::default() }
}

fn host() -> super::host::Host {
    super::host::Host {
        last_cap: 40,
        bounding: u64::MAX,
        oom_score_adj: 0,
        cgroup_v2: true,
        dev: PathBuf::from("/dev"),
        mountinfo: PathBuf::from("/proc/self/mountinfo"),
    }
}

fn linux_spec(host: &super::host::Host, linux: berth_ipc::runtime::LinuxOptions) -> Result<Spec> {
    let r = rootfs();
    let img = image(r#"{"config":{"Cmd":["/bin/true"],"User":"web"}}"#);
    let opts = RunOptions { linux, ..RunOptions::default() };
    generate_on(host, &img, &opts, "c", &place("/berth/ns/c"), r.path())
}

fn opts(f: impl FnOnce(&mut berth_ipc::runtime::LinuxOptions)) -> berth_ipc::runtime::LinuxOptions {
    let mut l = berth_ipc::runtime::LinuxOptions::default();
    f(&mut l);
    l
}

fn capset(spec: &Spec) -> Vec<String> {
    let caps = spec.process().clone().and_then(|p| p.capabilities().clone()).expect("caps");
    let eff = caps.effective().clone().expect("effective");
    assert_eq!(Some(&eff), caps.bounding().as_ref());
    assert_eq!(Some(&eff), caps.permitted().as_ref());
    let mut names: Vec<String> = eff.iter().map(|c| c.to_string()).collect();
    names.sort();
    names
}

fn linux_of(spec: &Spec) -> oci_spec::runtime::Linux {
    spec.linux().clone().expect("linux")
}

#[test]
fn capabilities_drop_then_add() {
    let h = host();
    let spec = linux_spec(
        &h,
        opts(|l| {
            l.cap_drop = vec!["ALL".into()];
            l.cap_add = vec!["net_bind_service".into(), "CAP_sys_admin".into()];
        }),
    )
    .expect("spec");
    assert_eq!(capset(&spec), vec!["NET_BIND_SERVICE", "SYS_ADMIN"]);
    // The default seccomp profile follows the caps: SYS_ADMIN lets mount through.
    let json = serde_json::to_string(&linux_of(&spec).seccomp()).expect("json");
    assert!(json.contains("\"mount\""), "{json}");

    let spec = linux_spec(&h, opts(|l| l.cap_drop = vec!["chown".into(), "CAP_KILL".into()])).expect("spec");
    let names = capset(&spec);
    assert_eq!(names.len(), 12);
    assert!(!names.contains(&"CHOWN".to_string()) && !names.contains(&"KILL".to_string()), "{names:?}");

    // ALL adds what the kernel knows: 38 on a kernel whose last cap is 37 (AUDIT_READ).
    let old = super::host::Host { last_cap: 37, ..host() };
    let spec = linux_spec(&old, opts(|l| l.cap_add = vec!["all".into()])).expect("spec");
    assert_eq!(capset(&spec).len(), 38);
    assert!(!capset(&spec).contains(&"BPF".to_string()));

    let err = linux_spec(&h, opts(|l| l.cap_add = vec!["CAP_FLY".into()])).expect_err("unknown");
    assert!(err.is(berth_ipc::Code::InvalidArgument), "{err:?}");
    assert!(err.message.contains("\"CAP_FLY\"") && err.message.contains("cap_add"), "{}", err.message);
    let err = linux_spec(&h, opts(|l| l.cap_drop = vec!["".into()])).expect_err("empty");
    assert!(err.message.contains("cap_drop"), "{}", err.message);
}

#[test]
fn privileged() {
    let h = host();
    let spec = linux_spec(
        &h,
        opts(|l| {
            l.privileged = true;
            l.cap_drop = vec!["ALL".into()];
            l.masked_paths = Some(vec!["/proc/x".into()]);
        }),
    )
    .expect("spec");
    assert_eq!(capset(&spec).len(), 41);
    // A runtime without CAP_SYS_RESOURCE (24) cannot give it.
    let lacking = super::host::Host { bounding: !(1 << 24), ..host() };
    let spec2 = linux_spec(&lacking, opts(|l| l.privileged = true)).expect("spec");
    assert_eq!(capset(&spec2).len(), 40);
    assert!(!capset(&spec2).contains(&"SYS_RESOURCE".to_string()));
    let spec2 = linux_spec(&lacking, opts(|l| l.cap_add = vec!["ALL".into()])).expect("spec");
    assert_eq!(capset(&spec2).len(), 40);
    let linux = linux_of(&spec);
    assert_eq!(linux.masked_paths(), &None);
    assert_eq!(linux.readonly_paths(), &None);
    assert!(linux.seccomp().is_none());
    // A non-root user, yet privileged: no_new_privileges only when asked.
    assert_eq!(spec.process().clone().expect("p").no_new_privileges(), Some(false));
    for m in spec.mounts().clone().expect("mounts") {
        if matches!(m.typ().as_deref(), Some("sysfs" | "cgroup")) {
            let o = m.options().clone().expect("options");
            assert!(o.contains(&"rw".to_string()) && !o.contains(&"ro".to_string()), "{o:?}");
        }
    }
    let devs = linux.devices().clone().expect("devices");
    let null = devs.iter().find(|d| d.path() == Path::new("/dev/null")).expect("/dev/null");
    assert_eq!((null.major(), null.minor()), (1, 3));
    assert!(!devs.iter().any(|d| d.path().starts_with("/dev/pts") || d.path() == Path::new("/dev/console")));
    let rules = linux.resources().clone().and_then(|r| r.devices().clone()).expect("rules");
    assert_eq!(rules.len(), 1);
    assert!(rules[0].allow() && rules[0].access().as_deref() == Some("rwm"), "{rules:?}");

    // An explicit profile still applies.
    let r = rootfs();
    let img = image(r#"{"config":{"Cmd":["/bin/true"]}}"#);
    let o = RunOptions {
        seccomp: Some(r#"{"defaultAction":"SCMP_ACT_ALLOW"}"#.into()),
        linux: opts(|l| l.privileged = true),
        ..RunOptions::default()
    };
    let spec = generate_on(&h, &img, &o, "c", &place("/berth/ns/c"), r.path()).expect("spec");
    assert!(linux_of(&spec).seccomp().is_some());
}

#[test]
fn not_privileged_defaults() {
    let spec = linux_spec(&host(), berth_ipc::runtime::LinuxOptions::default()).expect("spec");
    assert_eq!(capset(&spec).len(), 14);
    let linux = linux_of(&spec);
    assert!(linux.devices().is_none());
    let rules = linux.resources().clone().and_then(|r| r.devices().clone()).expect("rules");
    assert_eq!(rules.len(), 1);
    assert!(!rules[0].allow(), "deny-all first: {rules:?}");
    assert!(linux.seccomp().is_some());
    assert_eq!(linux.rootfs_propagation(), &None);
    assert_eq!(spec.process().clone().expect("p").oom_score_adj(), None);
    assert_eq!(spec.annotations(), &None);
}

#[test]
fn groups() {
    let r = rootfs();
    std::fs::write(r.path().join("etc/group"), "web:x:81:\nwheel:x:10:web\naudio:x:29:web\n").expect("group");
    let img = image(r#"{"config":{"Cmd":["/bin/true"],"User":"web"}}"#);
    let gids = |linux| {
        let o = RunOptions { linux, ..RunOptions::default() };
        let spec = generate_on(&host(), &img, &o, "c", &place("/berth/ns/c"), r.path()).expect("spec");
        let user = spec.process().clone().expect("p").user().clone();
        (user.gid(), user.additional_gids().clone().unwrap_or_default())
    };
    assert_eq!(gids(opts(|_| {})), (81, vec![10, 29]));
    assert_eq!(gids(opts(|l| l.supplemental_groups = vec![500, 10])), (81, vec![10, 29, 500]));
    assert_eq!(
        gids(opts(|l| {
            l.supplemental_groups = vec![500];
            l.strict_groups = true;
        })),
        (81, vec![500])
    );
    assert_eq!(gids(opts(|l| l.strict_groups = true)), (81, vec![]));
    let err = linux_spec(&host(), opts(|l| l.supplemental_groups = vec![u32::MAX])).expect_err("max");
    assert!(err.is(berth_ipc::Code::InvalidArgument), "{err:?}");
}

#[test]
fn masked_and_readonly_paths_replace_the_defaults() {
    let spec = linux_spec(
        &host(),
        opts(|l| {
            l.masked_paths = Some(vec!["/proc/cpuinfo".into()]);
            l.readonly_paths = Some(vec![]);
        }),
    )
    .expect("spec");
    let linux = linux_of(&spec);
    assert_eq!(linux.masked_paths().clone(), Some(vec!["/proc/cpuinfo".to_string()]));
    assert_eq!(linux.readonly_paths().clone(), Some(vec![]));
    // Only one replaced: the other keeps runc's defaults.
    let spec = linux_spec(&host(), opts(|l| l.readonly_paths = Some(vec!["/proc/a".into()]))).expect("spec");
    assert!(linux_of(&spec).masked_paths().as_ref().is_some_and(|m| m.iter().any(|p| p == "/proc/kcore")));
    for bad in ["proc/x", "/proc/../etc"] {
        let err = linux_spec(&host(), opts(|l| l.masked_paths = Some(vec![bad.into()]))).expect_err(bad);
        assert!(err.message.contains("masked path"), "{}", err.message);
    }
}

#[test]
fn devices() {
    use berth_ipc::runtime::Device;
    let dev = |host: &str, cont: &str, perm: &str| Device {
        host_path: host.into(),
        container_path: cont.into(),
        permissions: perm.into(),
    };
    let spec =
        linux_spec(&host(), opts(|l| l.devices = vec![dev("/dev/null", "/dev/mynull", "rw")])).expect("spec");
    let linux = linux_of(&spec);
    let nodes = linux.devices().clone().expect("devices");
    assert_eq!(nodes.len(), 1);
    assert_eq!(nodes[0].path(), Path::new("/dev/mynull"));
    assert_eq!(
        (nodes[0].typ(), nodes[0].major(), nodes[0].minor()),
        (oci_spec::runtime::LinuxDeviceType::C, 1, 3)
    );
    let rules = linux.resources().clone().and_then(|r| r.devices().clone()).expect("rules");
    assert_eq!(rules.len(), 2);
    assert!(!rules[0].allow());
    assert!(rules[1].allow() && rules[1].major() == Some(1) && rules[1].minor() == Some(3));
    assert_eq!(rules[1].access().as_deref(), Some("rw"));

    for (d, want) in [
        (dev("/dev/berth-missing", "/dev/x", "rwm"), "/dev/berth-missing: not usable"),
        (dev("/etc/hostname", "/dev/x", "rwm"), "not a character or block device"),
        (dev("/dev/null", "/dev/x", "rwx"), "subset of \"rwm\""),
        (dev("/dev/null", "x", "r"), "must be absolute"),
    ] {
        let err = linux_spec(&host(), opts(|l| l.devices = vec![d])).expect_err(want);
        assert!(err.is(berth_ipc::Code::InvalidArgument), "{err:?}");
        assert!(err.message.contains(want), "{}", err.message);
    }
}

#[test]
fn resources_and_oom_score() {
    let spec = linux_spec(
        &host(),
        opts(|l| {
            l.oom_score_adj = Some(-500);
            l.cpu_shares = Some(1);
            l.cpu_period = Some(50_000);
            l.cpu_quota = Some(25_000);
            l.cpuset_cpus = Some("0-1,3".into());
            l.cpuset_mems = Some("0".into());
            l.unified = [("memory.high".to_string(), "1G".to_string())].into_iter().collect();
        }),
    )
    .expect("spec");
    // A runtime at 0 cannot give less than 0; one at -1000 can.
    assert_eq!(spec.process().clone().expect("p").oom_score_adj(), Some(0));
    let low = super::host::Host { oom_score_adj: -1000, ..host() };
    let spec2 = linux_spec(&low, opts(|l| l.oom_score_adj = Some(-500))).expect("spec");
    assert_eq!(spec2.process().clone().expect("p").oom_score_adj(), Some(-500));
    let res = linux_of(&spec).resources().clone().expect("resources");
    let cpu = res.cpu().clone().expect("cpu");
    assert_eq!((cpu.shares(), cpu.period(), cpu.quota()), (Some(2), Some(50_000), Some(25_000)));
    assert_eq!((cpu.cpus().as_deref(), cpu.mems().as_deref()), (Some("0-1,3"), Some("0")));
    assert_eq!(res.unified().clone().expect("unified").get("memory.high").map(String::as_str), Some("1G"));

    // A runtime at 100 cannot give less than 100.
    let high = super::host::Host { oom_score_adj: 100, ..host() };
    let spec = linux_spec(&high, opts(|l| l.oom_score_adj = Some(-999))).expect("spec");
    assert_eq!(spec.process().clone().expect("p").oom_score_adj(), Some(100));
    let spec = linux_spec(&high, opts(|l| l.oom_score_adj = Some(900))).expect("spec");
    assert_eq!(spec.process().clone().expect("p").oom_score_adj(), Some(900));

    let v1 = super::host::Host { cgroup_v2: false, ..host() };
    let unified = |k: &str| [(k.to_string(), "1".to_string())].into_iter().collect();
    let err = linux_spec(&v1, opts(|l| l.unified = unified("memory.high"))).expect_err("v1");
    assert!(err.message.contains("cgroup v1"), "{}", err.message);
    let bad: Vec<(&str, berth_ipc::runtime::LinuxOptions)> = vec![
        ("oom", opts(|l| l.oom_score_adj = Some(1001))),
        ("period", opts(|l| l.cpu_period = Some(10))),
        ("quota", opts(|l| l.cpu_quota = Some(-5))),
        ("cpus", opts(|l| l.cpuset_cpus = Some("3-1".into()))),
        ("cpus", opts(|l| l.cpuset_cpus = Some("a".into()))),
        ("mems", opts(|l| l.cpuset_mems = Some("0,".into()))),
        ("unified", opts(|l| l.unified = unified("../memory.high"))),
        ("unified", opts(|l| l.unified = unified("memory"))),
        ("unified", opts(|l| l.unified = unified("a/b.c"))),
    ];
    for (what, l) in bad {
        let err = linux_spec(&host(), l).expect_err(what);
        assert!(err.is(berth_ipc::Code::InvalidArgument), "{what}: {err:?}");
    }
}

#[test]
fn mount_propagation_and_rro() {
    use berth_ipc::runtime::{BindMount, Propagation};
    let src = tempfile::tempdir().expect("src");
    let dir = tempfile::tempdir().expect("mountinfo");
    let source = std::fs::canonicalize(src.path()).expect("canonical");
    // The source's mount is shared; / is private.
    let info = format!(
        "27 1 254:0 / / rw,relatime - ext4 /dev/vda rw\n\
         90 27 0:50 / {} rw,relatime shared:7 - tmpfs tmpfs rw\n",
        source.display()
    );
    std::fs::write(dir.path().join("shared"), &info).expect("write");
    std::fs::write(dir.path().join("private"), "27 1 254:0 / / rw,relatime - ext4 /dev/vda rw\n")
        .expect("write");
    std::fs::write(dir.path().join("slave"), "27 1 254:0 / / rw,relatime master:3 - ext4 /dev/vda rw\n")
        .expect("write");
    let with = |table: &str, propagation, ro, rro| {
        let h = super::host::Host { mountinfo: dir.path().join(table), ..host() };
        let r = rootfs();
        let img = image(r#"{"config":{"Cmd":["/bin/true"]}}"#);
        let bind = BindMount {
            source: source.display().to_string(),
            destination: "/data".into(),
            read_only: ro,
            propagation,
            recursive_read_only: rro,
        };
        let o = RunOptions { mounts: vec![bind], ..RunOptions::default() };
        generate_on(&h, &img, &o, "c", &place("/berth/ns/c"), r.path())
    };
    let options = |spec: &Spec| {
        let m = spec.mounts().clone().expect("mounts");
        m.iter()
            .find(|m| m.destination() == Path::new("/data"))
            .and_then(|m| m.options().clone())
            .expect("data")
    };
    let spec = with("shared", Propagation::Bidirectional, false, false).expect("rshared");
    assert_eq!(options(&spec), vec!["rbind", "rshared"]);
    assert_eq!(linux_of(&spec).rootfs_propagation().as_deref(), Some("rshared"));
    let spec = with("slave", Propagation::HostToContainer, false, false).expect("rslave");
    assert_eq!(options(&spec), vec!["rbind", "rslave"]);
    assert_eq!(linux_of(&spec).rootfs_propagation().as_deref(), Some("rslave"));
    let spec = with("private", Propagation::Private, true, true).expect("rro");
    assert_eq!(options(&spec), vec!["rbind", "rprivate", "ro", "rro"]);
    assert_eq!(linux_of(&spec).rootfs_propagation(), &None);

    let err = with("private", Propagation::Bidirectional, false, false).expect_err("private");
    assert!(
        err.message.contains("needs its source on a shared mount") && err.message.contains("private"),
        "{}",
        err.message
    );
    let err = with("slave", Propagation::Bidirectional, false, false).expect_err("slave");
    assert!(err.is(berth_ipc::Code::InvalidArgument), "{err:?}");
    let err = with("private", Propagation::HostToContainer, false, false).expect_err("private");
    assert!(err.message.contains("shared or slave"), "{}", err.message);
    let err = with("private", Propagation::Private, false, true).expect_err("rro without ro");
    assert!(err.message.contains("needs the mount read-only"), "{}", err.message);
}

#[test]
fn mountinfo_lookup() {
    let text = "1 0 0:1 / / rw - ext4 a rw\n2 1 0:2 / /mnt/a\\040b rw shared:1 - tmpfs t rw\n\
                3 1 0:3 / /mnt rw master:2 - tmpfs t rw\nbroken line\n";
    let table = super::mounts::parse_mountinfo(text);
    assert_eq!(table.len(), 3);
    let m = super::mounts::mount_of(Path::new("/mnt/a b/c"), &table).expect("mount");
    assert_eq!(m.mount_point, PathBuf::from("/mnt/a b"));
    assert!(m.shared && !m.slave);
    let m = super::mounts::mount_of(Path::new("/mnt/ab"), &table).expect("mount");
    assert!(m.slave && m.mount_point == Path::new("/mnt"));
    assert_eq!(
        super::mounts::mount_of(Path::new("/etc"), &table).map(|m| m.mount_point.clone()),
        Some("/".into())
    );
}

#[test]
fn annotations_merge() {
    let r = rootfs();
    let img = image(r#"{"config":{"Cmd":["/bin/true"]}}"#);
    let o = RunOptions {
        stdin: true,
        linux: opts(|l| l.annotations = [("io.k8s/x".to_string(), "1".to_string())].into_iter().collect()),
        ..RunOptions::default()
    };
    let spec = generate_on(&host(), &img, &o, "c", &place("/berth/ns/c"), r.path()).expect("spec");
    let a = spec.annotations().clone().expect("annotations");
    assert_eq!(a.get("io.k8s/x").map(String::as_str), Some("1"));
    assert_eq!(a.get(STDIN_ANNOTATION).map(String::as_str), Some("open"));
    let err = linux_spec(
        &host(),
        opts(|l| l.annotations = [(STDIN_ANNOTATION.to_string(), "open".to_string())].into_iter().collect()),
    )
    .expect_err("reserved");
    assert!(err.message.contains("reserved"), "{}", err.message);
}

fn userns_sandbox(user_ns: Option<berth_ipc::runtime::IdMappings>) -> berth_ipc::runtime::SandboxInfo {
    berth_ipc::runtime::SandboxInfo {
        id: "pod".into(),
        namespace: "k8s.io".into(),
        state: berth_ipc::runtime::SandboxState::Ready,
        runtime: "runc".into(),
        spec: berth_ipc::runtime::SandboxSpec { user_ns, ..Default::default() },
        labels: Default::default(),
        extensions: Default::default(),
        created: 0,
        netns: None,
        holder_pid: 0,
        dir: "/run/berth/sandboxes/k8s.io/pod".into(),
        ips: Vec::new(),
    }
}

#[test]
fn a_container_joins_its_pods_user_namespace() {
    use berth_ipc::runtime::{IdMapping, IdMappings, NamespaceMode};
    let maps = IdMappings {
        uids: vec![IdMapping { container_id: 0, host_id: 100_000, length: 65536 }],
        gids: vec![IdMapping { container_id: 0, host_id: 200_000, length: 65536 }],
    };
    let r = rootfs();
    let img = image(r#"{"config":{"Cmd":["/bin/true"]}}"#);
    let make =
        |sb: Option<IdMappings>, own: Option<IdMappings>, f: fn(&mut berth_ipc::runtime::LinuxOptions)| {
            let mut linux = opts(f);
            linux.user_ns = own;
            let opts = RunOptions { linux, ..RunOptions::default() };
            let placement = super::Placement { sandbox: Some(userns_sandbox(sb)), ..place("/berth/ns/c") };
            generate_on(&host(), &img, &opts, "c", &placement, r.path())
        };
    let spec = make(Some(maps.clone()), Some(maps.clone()), |_| {}).expect("joined");
    let linux = linux_of(&spec);
    let namespaces = linux.namespaces().clone().unwrap_or_default();
    let user = namespaces.iter().find(|n| n.typ() == LinuxNamespaceType::User).expect("user namespace");
    assert_eq!(user.path().as_deref(), Some(Path::new("/run/berth/sandboxes/k8s.io/pod/ns/user")));
    assert!(namespaces.iter().any(|n| n.typ() == LinuxNamespaceType::Cgroup && n.path().is_none()));
    let uid = linux.uid_mappings().clone().unwrap_or_default();
    assert_eq!((uid[0].container_id(), uid[0].host_id(), uid[0].size()), (0, 100_000, 65536));
    assert_eq!(linux.gid_mappings().clone().unwrap_or_default()[0].host_id(), 200_000);
    let userns = crate::idmapped::userns_of(&spec).expect("userns of the spec");
    assert_eq!((userns.root_uid, userns.root_gid), (100_000, 200_000));

    let mut other = maps.clone();
    other.uids[0].host_id = 300_000;
    let refusals = [
        (make(Some(maps.clone()), Some(other), |_| {}), "differ from sandbox pod's"),
        (make(Some(maps.clone()), None, |_| {}), "its containers must run in it"),
        (make(None, Some(maps.clone()), |_| {}), "has no user namespace of its own"),
        (
            make(Some(maps.clone()), Some(maps.clone()), |l| l.network = NamespaceMode::Node),
            "cannot use the host's network namespace",
        ),
        (make(Some(maps.clone()), Some(maps.clone()), |l| l.privileged = true), "privileged"),
    ];
    for (result, want) in refusals {
        let e = result.expect_err(want);
        assert!(e.message.starts_with("container c: ") && e.message.contains(want), "{e}");
        assert_eq!(e.code, berth_ipc::Code::InvalidArgument);
    }
    // Outside a sandbox there is no user namespace to join.
    let mut linux = opts(|_| {});
    linux.user_ns = Some(maps);
    let opts = RunOptions { linux, ..RunOptions::default() };
    let e = generate_on(&host(), &img, &opts, "c", &place("/berth/ns/c"), r.path()).expect_err("standalone");
    assert!(e.message.contains("only made for a pod sandbox"), "{e}");
    // Without one, a spec has no user namespace.
    assert!(crate::idmapped::userns_of(&linux_spec(&host(), Default::default()).expect("plain")).is_none());
}
