//! `berth commit` end to end: a container that creates and deletes files is committed, and
//! the committed image runs with those changes (the new file present, the deleted one gone,
//! the old image untouched).

mod runtime_support;

use berth_system_tests::Berth;
use berth_system_tests::mounts_under;
use runtime_support::{can_run, import_busybox, out, show, teardown};

#[test]
fn commit_keeps_created_and_deleted_files() {
    if !can_run("runc") {
        return;
    }
    let berth = Berth::start();
    import_busybox(&berth, "base", serde_json::json!({"Cmd": ["sh"]}));
    let o = berth.cli(&[
        "run",
        "base",
        "c1",
        "sh",
        "-c",
        "echo committed > /srv/new.txt && rm /etc/group && mkdir -p /srv/d && echo x > /srv/d/f",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    // The container's task has exited; commit its snapshot.
    let o = berth.cli(&["commit", "c1", "snap"]);
    assert!(o.status.success(), "{}", show(&o));
    assert!(out(&o).contains("docker.io/library/snap:latest"), "{}", show(&o));
    let o = berth.cli(&["--format", "json", "commit", "c1", "snap2"]);
    assert!(o.status.success(), "{}", show(&o));
    let v: serde_json::Value = serde_json::from_str(&out(&o)).expect("json");
    assert!(v["layer_size"].as_u64().unwrap_or(0) > 0, "{}", show(&o));

    let o = berth.cli(&[
        "run",
        "--rm",
        "snap",
        "r1",
        "sh",
        "-c",
        "cat /srv/new.txt /srv/d/f; test -e /etc/group && echo group-present; cat /etc/passwd | head -1",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    assert_eq!(out(&o), "committed\nx\nroot:x:0:0:root:/root:/bin/sh\n", "{}", show(&o));
    // The base image is unchanged.
    let o = berth.cli(&[
        "run",
        "--rm",
        "base",
        "r2",
        "sh",
        "-c",
        "test -e /etc/group && echo kept; test -e /srv/new.txt || echo absent",
    ]);
    assert_eq!(out(&o), "kept\nabsent\n", "{}", show(&o));

    // A container that does not exist is a clean error.
    let o = berth.cli(&["commit", "nosuch", "x"]);
    assert!(!o.status.success(), "{}", show(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("nosuch"), "{}", show(&o));

    let o = berth.cli(&["containers", "rm", "--force", "c1"]);
    assert!(o.status.success(), "{}", show(&o));
    for img in ["snap", "snap2", "base"] {
        let o = berth.cli(&["images", "rm", &format!("docker.io/library/{img}:latest")]);
        assert!(o.status.success(), "{img}: {}", show(&o));
    }
    let o = berth.cli(&["containers", "ls", "-q"]);
    assert_eq!(out(&o).trim(), "", "{}", show(&o));
    let o = berth.cli(&["tasks", "ls", "--format", "json"]);
    assert_eq!(out(&o).trim(), "[]", "{}", show(&o));
    assert!(mounts_under(&berth.state).is_empty(), "mounts left: {:?}", mounts_under(&berth.state));
    teardown(&berth);
}
