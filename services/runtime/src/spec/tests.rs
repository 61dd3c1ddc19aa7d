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
