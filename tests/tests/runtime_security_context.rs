//! A Kubernetes-style security context applied by the runtime's spec, seen from inside the
//! container with runc and crun: `--cap-drop ALL --cap-add NET_BIND_SERVICE` leaves exactly
//! that capability (`CapEff`/`CapBnd` in `/proc/self/status`), `--privileged` gives every
//! capability the runtime holds, host devices and a writable `/sys`; `--group-add` and
//! `--device` reach the process; a masked/read-only paths override (through the runtime
//! client, as the CRI service sends it) replaces runc's defaults exactly; `rro` bind mounts
//! make the mounts under them read-only too.

mod runtime_support;

use std::collections::BTreeMap;
use std::time::Duration;

use berth_ipc::runtime::{CreateContainer, LinuxOptions, RunOptions};
use berth_system_tests::block_on;
use runtime_support::{berth_with_tiny, out, show, teardown};

/// The hex value of `field` (`CapEff`) in a `/proc/self/status` text.
fn cap_field(status: &str, field: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with(&format!("{field}:")))?;
    u64::from_str_radix(line.split_whitespace().nth(1)?, 16).ok()
}

#[test]
fn capabilities_groups_devices_privileged() {
    let Some(berth) = berth_with_tiny(&["runc", "crun"]) else { return };
    // Privileged: every capability the kernel knows that the runtime (root, like this
    // test) holds.
    let own = std::fs::read_to_string("/proc/self/status").expect("status");
    let all_caps = cap_field(&own, "CapBnd").expect("CapBnd");
    for runtime in ["runc", "crun"] {
        let run = |id: &str, opts: &[&str], script: &str| {
            let mut args = vec!["run", "--rm", "--runtime", runtime];
            args.extend_from_slice(opts);
            args.extend(["tiny", id, "sh", "-c", script]);
            berth.cli(&args)
        };
        let o =
            run("sc-caps", &["--cap-drop", "ALL", "--cap-add", "NET_BIND_SERVICE"], "cat /proc/self/status");
        assert!(o.status.success(), "{runtime}: {}", show(&o));
        let status = out(&o);
        // CAP_NET_BIND_SERVICE is capability 10.
        for field in ["CapEff", "CapPrm", "CapBnd"] {
            assert_eq!(cap_field(&status, field), Some(1 << 10), "{runtime}: {field}: {status}");
        }
        assert_eq!(cap_field(&status, "CapAmb"), Some(0), "{runtime}: {status}");

        let o = run("sc-default", &[], "cat /proc/self/status");
        let eff = cap_field(&out(&o), "CapEff").expect("CapEff");
        assert_eq!(eff.count_ones(), 14, "{runtime}: default set: {eff:x}");

        let o = run("sc-drop", &["--cap-drop", "chown,CAP_KILL"], "cat /proc/self/status");
        // CAP_CHOWN is 0, CAP_KILL 5.
        let dropped = cap_field(&out(&o), "CapEff").expect("CapEff");
        assert_eq!(dropped, eff & !(1 | 1 << 5), "{runtime}: {dropped:x} from {eff:x}");
        assert_eq!(dropped.count_ones(), 12, "{runtime}: {dropped:x}");

        let o = run("sc-bad", &["--cap-add", "CAP_FLY"], "true");
        let e = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success() && e.contains("CAP_FLY") && e.contains("unknown"), "{runtime}: {e}");

        let o = run("sc-groups", &["--user", "web", "--group-add", "500"], "id -G");
        assert_eq!(out(&o).trim(), "81 500", "{runtime}: {}", show(&o));

        let o = run("sc-dev", &["--device", "/dev/null:/dev/mynull:rw"], "echo x > /dev/mynull && echo ok");
        assert!(out(&o).contains("ok"), "{runtime}: {}", show(&o));
        let o = run("sc-nodev", &["--device", "/dev/berth-missing"], "true");
        let e = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success() && e.contains("/dev/berth-missing"), "{runtime}: {e}");

        let script = "cat /proc/self/status; grep ' /sys ' /proc/self/mounts; ls /dev; \
                      grep -c kcore /proc/self/mountinfo; grep '^Seccomp:' /proc/self/status";
        let o = run("sc-priv", &["--privileged", "--user", "web"], script);
        assert!(o.status.success(), "{runtime}: {}", show(&o));
        let text = out(&o);
        assert_eq!(cap_field(&text, "CapBnd"), Some(all_caps), "{runtime}: {text}");
        assert!(text.contains("sysfs /sys sysfs rw"), "{runtime}: /sys not rw: {text}");
        assert!(text.contains("Seccomp:\t0"), "{runtime}: {text}");
        assert!(text.lines().any(|l| l == "0"), "{runtime}: /proc/kcore masked: {text}");
        // A host device runc's default list does not have.
        if std::path::Path::new("/dev/kmsg").exists() {
            assert!(text.lines().any(|l| l == "kmsg"), "{runtime}: no host devices: {text}");
        }
    }
    teardown(&berth);
}

#[test]
fn masked_and_readonly_paths_override() {
    let Some(berth) = berth_with_tiny(&["runc", "crun"]) else { return };
    let services = berth.clients(Duration::from_secs(20));
    let script = "cat /proc/cpuinfo | wc -c; grep -c kcore /proc/self/mountinfo; \
                  touch /srv/x 2>/dev/null; echo srv=$?; echo 1 > /proc/sys/kernel/shmmni; echo sys=$?; \
                  cat /proc/self/oom_score_adj";
    for runtime in ["runc", "crun"] {
        let id = format!("paths-{runtime}");
        let linux = LinuxOptions {
            masked_paths: Some(vec!["/proc/cpuinfo".into()]),
            readonly_paths: Some(vec!["/srv".into()]),
            oom_score_adj: Some(300),
            ..LinuxOptions::default()
        };
        let options = RunOptions {
            args: Some(vec!["sh".into(), "-c".into(), script.into()]),
            linux,
            ..RunOptions::default()
        };
        let req = CreateContainer {
            namespace: "default".into(),
            id: id.clone(),
            image: "docker.io/library/tiny:latest".into(),
            runtime: runtime.into(),
            options,
            labels: BTreeMap::new(),
            extensions: BTreeMap::new(),
        };
        block_on(services.runtime.call(req)).expect("create");
        let o = berth.cli(&["tasks", "start", &id]);
        assert!(o.status.success(), "{runtime}: {}", show(&o));
        let o = berth.cli(&["tasks", "wait", &id]);
        assert!(o.status.success(), "{runtime}: {}", show(&o));
        let o = berth.cli(&["tasks", "logs", &id]);
        let lines: Vec<String> = out(&o).lines().map(String::from).collect();
        // /proc/cpuinfo masked (empty), /proc/kcore not (the defaults are replaced), /srv
        // read-only, /proc/sys writable (in its own IPC namespace), the OOM score set.
        assert_eq!(lines, vec!["0", "0", "srv=1", "sys=0", "300"], "{runtime}: {}", show(&o));
        let o = berth.cli(&["tasks", "delete", &id]);
        assert!(o.status.success(), "{runtime}: {}", show(&o));
        let o = berth.cli(&["containers", "rm", &id]);
        assert!(o.status.success(), "{runtime}: {}", show(&o));
    }
    teardown(&berth);
}

#[test]
fn recursive_read_only_mounts() {
    let Some(berth) = berth_with_tiny(&["runc", "crun"]) else { return };
    let data = berth.dir.path().join("data");
    let sub = data.join("sub");
    std::fs::create_dir_all(&sub).expect("sub");
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=1m", "berth-rro-test"])
        .arg(&sub)
        .status()
        .expect("mount");
    assert!(mounted.success(), "mount tmpfs on {}", sub.display());
    let ro = format!("type=bind,src={},dst=/data,ro", data.display());
    let rro = format!("type=bind,src={},dst=/data,rro", data.display());
    for runtime in ["runc", "crun"] {
        let run = |id: &str, mount: &str| {
            berth.cli(&[
                "run",
                "--rm",
                "--runtime",
                runtime,
                "--mount",
                mount,
                "tiny",
                id,
                "sh",
                "-c",
                "touch /data/sub/x 2>/dev/null; echo sub=$?; touch /data/y 2>/dev/null; echo top=$?",
            ])
        };
        // Plain ro: the tmpfs under it stays writable.
        let o = run("ro", &ro);
        assert_eq!(out(&o).trim(), "sub=0\ntop=1", "{runtime}: {}", show(&o));
        let o = run("rro", &rro);
        assert_eq!(out(&o).trim(), "sub=1\ntop=1", "{runtime}: {}", show(&o));
        let _ = std::fs::remove_file(sub.join("x"));
    }
    let _ = std::process::Command::new("umount").arg(&sub).status();
    teardown(&berth);
}
