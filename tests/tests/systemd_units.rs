//! The unit files in `systemd/` pass `systemd-analyze verify` (with their `/usr/bin/` paths
//! pointed at the built binaries), and carry the settings DESIGN.md asks for.

use std::path::Path;
use std::process::Command;

use berth_system_tests::{SERVICES, bin_dir};

fn units_dir() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../systemd"))
}

#[test]
fn units_verify_cleanly() {
    if Command::new("systemd-analyze").arg("--version").output().is_err() {
        println!("skipped: systemd-analyze is not installed");
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let bins = bin_dir();
    let mut files = Vec::new();
    for entry in std::fs::read_dir(units_dir()).expect("systemd/") {
        let path = entry.expect("entry").path();
        let text = std::fs::read_to_string(&path).expect("read unit");
        let out = tmp.path().join(path.file_name().expect("name"));
        std::fs::write(&out, text.replace("/usr/bin/", &format!("{}/", bins.display()))).expect("write unit");
        files.push(out);
    }
    assert_eq!(files.len(), SERVICES.len() + 2, "a unit per service, berth.target, berthd.service");
    let out =
        Command::new("systemd-analyze").arg("verify").args(&files).output().expect("run systemd-analyze");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let ours: Vec<_> = stderr.lines().filter(|l| l.contains(tmp.path().to_str().unwrap_or("?"))).collect();
    assert!(out.status.success() && ours.is_empty(), "systemd-analyze verify:\n{stderr}");
}

#[test]
fn units_have_the_designed_settings() {
    for name in SERVICES {
        let text = std::fs::read_to_string(units_dir().join(format!("berth-{name}.service"))).expect("unit");
        for want in
            ["Type=notify", "Restart=always", "PartOf=berth.target", &format!("/usr/bin/berth-{name} ")]
        {
            assert!(text.contains(want), "berth-{name}.service lacks {want}");
        }
        let runtime_only = text.contains("KillMode=process") && text.contains("Delegate=yes");
        assert_eq!(runtime_only, name == "runtime", "berth-{name}.service KillMode/Delegate");
    }
    let target = std::fs::read_to_string(units_dir().join("berth.target")).expect("target");
    for name in SERVICES {
        assert!(target.contains(&format!("berth-{name}.service")), "berth.target lacks {name}");
    }
}
