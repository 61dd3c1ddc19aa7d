//! Scripting with `--format json` (issue 15, item 6): every command that prints a table or
//! a result line has a JSON form with stable field names, tables show human sizes, and
//! `images ls` SIZE is the image's total (config + layers + manifest, compressed, as
//! `ctr images ls` shows), not the manifest's few hundred bytes.

mod runtime_support;

use berth_system_tests::Berth;
use berth_system_tests::dist::{Registry, have};
use runtime_support::{berth_with_tiny, busybox_tar, out, show, teardown};
use serde_json::Value;

const TINY: &str = "docker.io/library/tiny:latest";

/// `berth --format json ARGS…`, which must succeed and print JSON.
fn json(berth: &Berth, args: &[&str]) -> Value {
    let mut all = vec!["--format", "json"];
    all.extend_from_slice(args);
    let o = berth.cli(&all);
    assert!(o.status.success(), "{args:?}: {}", show(&o));
    serde_json::from_str(&out(&o)).unwrap_or_else(|e| panic!("{args:?}: not JSON ({e}): {}", show(&o)))
}

/// The object's keys, sorted.
fn keys(v: &Value) -> Vec<String> {
    let mut k: Vec<String> = v.as_object().expect("an object").keys().cloned().collect();
    k.sort();
    k
}

fn sorted(k: &[&str]) -> Vec<String> {
    let mut k: Vec<String> = k.iter().map(|s| s.to_string()).collect();
    k.sort();
    k
}

/// Whether a table cell is a human size (`12.3 MiB`, `512 B`).
fn human(cell: &str) -> bool {
    let Some((num, unit)) = cell.split_once(' ') else { return false };
    num.parse::<f64>().is_ok() && ["B", "KiB", "MiB", "GiB"].contains(&unit)
}

#[test]
fn json_forms_and_human_sizes() {
    let Some(berth) = berth_with_tiny(&["runc"]) else { return };
    let layer = busybox_tar().len() as u64;

    // images ls: the total in bytes in JSON, human in the table.
    let images = json(&berth, &["images", "ls"]);
    let tiny = images.as_array().expect("array").iter().find(|i| i["name"] == TINY).expect("tiny listed");
    assert_eq!(
        keys(tiny),
        sorted(&[
            "name",
            "media_type",
            "digest",
            "size",
            "target_size",
            "labels",
            "created_ns",
            "updated_ns"
        ])
    );
    let (size, target) =
        (tiny["size"].as_u64().expect("size"), tiny["target_size"].as_u64().expect("target"));
    assert!(target < 2048, "a manifest: {target}");
    assert!(size > layer && size < layer + 8192, "size {size}: the layer ({layer}) + config + manifest");
    let table = out(&berth.cli(&["images", "ls"]));
    let row = table.lines().find(|l| l.starts_with(TINY)).expect("tiny row");
    let want = format!("{:.1} MiB", size as f64 / (1 << 20) as f64);
    assert!(row.contains(&want), "SIZE {want} (human, the total) in {row:?}\n{table}");

    // images check.
    let check = json(&berth, &["images", "check", "tiny"]);
    let c = &check.as_array().expect("array")[0];
    assert_eq!(keys(c), sorted(&["name", "complete", "present", "total", "missing", "unpacked"]));
    assert_eq!(
        (c["name"].as_str(), c["complete"].as_bool(), c["total"].as_u64()),
        (Some(TINY), Some(true), Some(3))
    );
    assert_eq!(c["unpacked"], true);

    // content check and content ls.
    let cc = json(&berth, &["content", "check"]);
    assert_eq!(keys(&cc), sorted(&["namespace", "checked", "bad"]));
    assert_eq!((cc["checked"].as_u64(), cc["bad"].as_array().map(Vec::len)), (Some(3), Some(0)), "{cc}");
    let ls = out(&berth.cli(&["content", "ls"]));
    assert!(ls.lines().skip(1).all(|l| l.split("   ").any(|c| human(c.trim()))), "human sizes:\n{ls}");

    // tasks ps and tasks metrics.
    let o = berth.cli(&["run", "-d", "tiny", "fmt1", "sleep", "1000"]);
    assert!(o.status.success(), "{}", show(&o));
    let ps = json(&berth, &["tasks", "ps", "fmt1"]);
    let pids = ps.as_array().expect("array");
    assert!(
        !pids.is_empty() && pids.iter().all(|p| keys(p) == ["pid"] && p["pid"].as_u64().is_some()),
        "{ps}"
    );
    let m = json(&berth, &["tasks", "metrics", "fmt1"]);
    assert_eq!(keys(&m), sorted(&["id", "cpu_ns", "memory_bytes", "memory_limit", "pids"]));
    let o = berth.cli(&["tasks", "metrics", "fmt1"]);
    let text = out(&o);
    assert!(text.starts_with("ID") && text.contains("MEMORY"), "a table, not JSON: {}", show(&o));
    let row: Vec<&str> = text.lines().nth(1).expect("a row").split("   ").map(str::trim).collect();
    assert!(human(row[2]), "MEMORY human: {row:?}");

    // snapshots usage: objects, not arrays of strings.
    let usage = json(&berth, &["snapshots", "usage"]);
    let u = &usage.as_array().expect("array")[0];
    assert_eq!(keys(u), sorted(&["key", "size", "inodes"]));
    assert!(u["size"].as_u64().is_some(), "{u}");

    // A bad blob: content check names it in JSON (and exits 1).
    let digest = tiny["digest"].as_str().expect("digest").to_string();
    let hex = digest.trim_start_matches("sha256:");
    let file = find_file(&berth.root, hex).expect("the manifest's blob file");
    let len = std::fs::metadata(&file).expect("stat").len() as usize;
    std::fs::write(&file, vec![b'x'; len]).expect("corrupt");
    let o = berth.cli(&["--format", "json", "content", "check"]);
    assert_eq!(o.status.code(), Some(1), "{}", show(&o));
    let cc: Value = serde_json::from_str(&out(&o)).expect("json");
    let bad = cc["bad"].as_array().expect("bad");
    assert!(bad.len() == 1 && bad[0]["digest"] == digest.as_str() && bad[0]["problem"].is_string(), "{cc}");
    teardown(&berth);
}

/// The file named `name` under `dir`, not descending into mounts' rootfs.
fn find_file(dir: &std::path::Path, name: &str) -> Option<std::path::PathBuf> {
    for e in std::fs::read_dir(dir).ok()?.flatten() {
        let t = e.file_type().ok()?;
        if t.is_file() && e.file_name() == name {
            return Some(e.path());
        }
        if t.is_dir()
            && e.file_name() != "rootfs"
            && let Some(found) = find_file(&e.path(), name)
        {
            return Some(found);
        }
    }
    None
}

#[test]
fn pull_and_import_print_json() {
    let Some(berth) = berth_with_tiny(&["runc"]) else { return };
    if !have("docker-registry") {
        eprintln!("skipped: docker-registry is missing");
        return;
    }
    let reg = Registry::start(None);
    let remote = format!("{}/fmt/tiny:v1", reg.addr);
    let o = berth.cli(&["images", "push", "-q", "tiny", &remote]);
    assert!(o.status.success(), "{}", show(&o));
    let pulled = json(&berth, &["-n", "other", "images", "pull", "-q", &remote]);
    let p = &pulled.as_array().expect("array")[0];
    assert_eq!(keys(p), sorted(&["name", "digest", "media_type", "size", "unpacked"]));
    assert_eq!(p["name"], remote.as_str());
    assert_eq!(p["unpacked"], true);
    assert!(p["digest"].as_str().is_some_and(|d| d.starts_with("sha256:")), "{p}");
    teardown(&berth);
}

#[test]
fn global_options_appear_once_in_help() {
    let berth = Berth::start();
    let top = out(&berth.cli(&["--help"]));
    assert!(top.contains("--namespace <") && top.contains("--format <"), "{top}");
    for cmd in [&["version", "--help"][..], &["tasks", "ps", "--help"], &["images", "pull", "--help"]] {
        let h = out(&berth.cli(cmd));
        assert!(!h.contains("--namespace <") && !h.contains("--state <"), "{cmd:?} repeats globals:\n{h}");
        assert!(h.contains("see berth --help"), "{cmd:?}:\n{h}");
    }
    // They still work after the subcommand.
    let v = json(&berth, &["version", "-n", "x"]);
    // The client and each service.
    assert!(v.as_array().is_some_and(|a| a.len() == 1 + berth_system_tests::SERVICES.len()), "{v}");
}
