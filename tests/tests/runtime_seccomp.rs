//! The default seccomp profile and `--security-opt`, on runc and crun: a default container
//! runs filtered (`Seccomp: 2`), may open sockets, and is refused `unshare` (and so `mount` in a user
//! namespace of its own); `seccomp=unconfined` allows both; a profile file is applied, and a
//! bad one refused with an error naming it; no-new-privileges is on for a non-root user and
//! with `--security-opt no-new-privileges`, off for root by default.

mod runtime_support;

use runtime_support::{berth_with_tiny, out, show, teardown};

const UNSHARE_MOUNT: &str = "/bin/busybox unshare -Urm /bin/busybox mount -t tmpfs none /tmp && echo mounted";

#[test]
fn default_profile_refuses_namespaces_unconfined_allows() {
    let Some(berth) = berth_with_tiny(&["runc", "crun"]) else { return };
    let dir = berth.dir.path();
    let profile = dir.join("allow-all.json");
    std::fs::write(&profile, r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mkdir","mkdirat"],"action":"SCMP_ACT_ERRNO","errnoRet":1}]}"#)
        .expect("profile");
    let bad = dir.join("bad.json");
    std::fs::write(&bad, r#"{"defaultAction":"SCMP_ACT_MAYBE"}"#).expect("bad");
    let seccomp_path = format!("seccomp={}", profile.display());
    let bad_path = format!("seccomp={}", bad.display());
    for runtime in ["runc", "crun"] {
        let run = |id: &str, opts: &[&str], script: &str| {
            let mut args = vec!["run", "--rm", "--runtime", runtime];
            args.extend_from_slice(opts);
            args.extend(["tiny", id, "sh", "-c", script]);
            berth.cli(&args)
        };
        let o = run("sc-status", &[], "grep -E '^(Seccomp|NoNewPrivs):' /proc/self/status");
        assert!(o.status.success(), "{runtime}: {}", show(&o));
        let status = out(&o);
        assert!(status.contains("Seccomp:\t2"), "{runtime}: not filtered: {status}");
        assert!(status.contains("NoNewPrivs:\t0"), "{runtime}: {status}");
        // Sockets work (netlink here), under the filter.
        let o = run("sc-socket", &[], "/bin/busybox ip addr show lo");
        assert!(o.status.success() && out(&o).contains("LOOPBACK"), "{runtime}: no socket: {}", show(&o));
        let o = run("sc-default", &[], UNSHARE_MOUNT);
        assert!(
            !o.status.success() && !out(&o).contains("mounted"),
            "{runtime}: unshare allowed: {}",
            show(&o)
        );
        let o = run("sc-unconfined", &["--security-opt", "seccomp=unconfined"], UNSHARE_MOUNT);
        assert!(o.status.success() && out(&o).contains("mounted"), "{runtime}: {}", show(&o));
        let o = run(
            "sc-status2",
            &["--security-opt", "seccomp=unconfined"],
            "grep '^Seccomp:' /proc/self/status",
        );
        assert!(out(&o).contains("Seccomp:\t0"), "{runtime}: {}", show(&o));
        // A profile file: everything but mkdir.
        let o = run("sc-file", &["--security-opt", &seccomp_path], "mkdir /tmp/d; echo rc=$?");
        assert!(out(&o).contains("rc=1"), "{runtime}: mkdir allowed: {}", show(&o));
        let o = run("sc-bad", &["--security-opt", &bad_path], "true");
        let e = String::from_utf8_lossy(&o.stderr);
        assert!(
            !o.status.success() && e.contains("seccomp profile") && e.contains("SCMP_ACT_MAYBE"),
            "{runtime}: {e}"
        );
        // no-new-privileges: asked for, and implied for a non-root user.
        let o =
            run("sc-nnp", &["--security-opt", "no-new-privileges"], "grep '^NoNewPrivs:' /proc/self/status");
        assert!(out(&o).contains("NoNewPrivs:\t1"), "{runtime}: {}", show(&o));
        let o = run("sc-web", &["--user", "web"], "grep '^NoNewPrivs:' /proc/self/status");
        assert!(out(&o).contains("NoNewPrivs:\t1"), "{runtime}: {}", show(&o));
    }
    let list = berth.cli(&["--format", "json", "containers", "ls"]);
    assert_eq!(out(&list).trim(), "[]", "{}", show(&list));
    teardown(&berth);
}
