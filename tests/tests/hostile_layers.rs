//! The malicious layers of the snapshot service's tests, now through the whole pull path:
//! each built into an image, pushed to a local `docker-registry` and pulled by a second
//! berth, and imported from an OCI layout tar. A layer the snapshot service refuses ends in
//! an error naming the layer, no image record and no snapshot; a layer it accepts resolves
//! inside the snapshot. Either way no host file outside the snapshot is written or changed.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use berth_ipc::Digest;
use berth_system_tests::Berth;
use berth_system_tests::dist::{Registry, berth_ok, have, image_digest};
use berth_system_tests::hostile::{RawImage, RawTar, assert_clean};

/// A directory outside berth's root holding one file; checked unchanged after every case.
struct Canary {
    dir: tempfile::TempDir,
}

impl Canary {
    fn new() -> Canary {
        let dir = tempfile::Builder::new().prefix("berth-canary-").tempdir().expect("tempdir");
        std::fs::write(dir.path().join("canary"), b"canary").expect("write");
        std::fs::set_permissions(dir.path().join("canary"), std::fs::Permissions::from_mode(0o644))
            .expect("chmod");
        Canary { dir }
    }

    fn path(&self) -> String {
        self.dir.path().to_str().expect("utf8").to_string()
    }

    fn check(&self, case: &str) {
        let f = self.dir.path().join("canary");
        assert_eq!(std::fs::read(&f).expect("canary"), b"canary", "{case}: canary changed");
        let m = f.metadata().expect("stat");
        assert_eq!(m.permissions().mode() & 0o7777, 0o644, "{case}: canary mode changed");
        assert_eq!(m.nlink(), 1, "{case}: canary hardlinked");
        let names: Vec<_> =
            std::fs::read_dir(self.dir.path()).expect("ls").flatten().map(|e| e.file_name()).collect();
        assert_eq!(names.len(), 1, "{case}: canary dir written: {names:?}");
    }
}

/// The layers of each case, and whether the snapshot service must refuse them (else it may
/// resolve them inside the snapshot or refuse them).
fn cases(canary: &Canary, stamp: &str) -> Vec<(&'static str, Vec<Vec<u8>>, bool)> {
    let c = canary.path();
    vec![
        ("dotdot name", vec![RawTar::new().file(&format!("../../{stamp}"), b"x").finish()], true),
        ("absolute name", vec![RawTar::new().file(&format!("{c}/canary"), b"pwned").finish()], true),
        (
            "hardlink to a host file",
            vec![RawTar::new().hardlink("h", &format!("{c}/canary"), 0o644).finish()],
            true,
        ),
        (
            "hardlink up and out",
            vec![RawTar::new().hardlink("h", "../../../../etc/passwd", 0o644).finish()],
            true,
        ),
        ("whiteout of the parent", vec![RawTar::new().dir("d").file_mode("d/.wh..", b"", 0).finish()], true),
        (
            "symlink to host dir, file below",
            vec![
                RawTar::new()
                    .symlink("etc", "/etc")
                    .symlink("c", &c)
                    .file(&format!("etc/{stamp}"), b"x")
                    .file("c/new", b"x")
                    .finish(),
            ],
            false,
        ),
        (
            "hardlink to symlink then chmod",
            vec![
                RawTar::new()
                    .symlink("s", &format!("{c}/canary"))
                    .hardlink("h", "s", 0o4777)
                    .file_mode("h", b"replaced", 0o4755)
                    .finish(),
            ],
            false,
        ),
        (
            "device nodes",
            vec![
                RawTar::new()
                    .node("mem", tar::EntryType::Char, 1, 1)
                    .node("sda", tar::EntryType::Block, 8, 0)
                    .node("fifo", tar::EntryType::Fifo, 0, 0)
                    .finish(),
            ],
            false,
        ),
        (
            "whiteout of a symlink to a host dir",
            vec![
                RawTar::new().symlink("link", &c).finish(),
                RawTar::new().file_mode(".wh.link", b"", 0).finish(),
            ],
            false,
        ),
        (
            "directory replaced by a symlink",
            vec![
                RawTar::new().dir("d").file("d/a", b"a").symlink("d", &c).file("d/canary", b"pwned").finish(),
            ],
            false,
        ),
    ]
}

fn host_untouched(canary: &Canary, stamp: &str, case: &str, root: &Path) {
    canary.check(case);
    let mut places: Vec<PathBuf> = vec!["/".into(), "/etc".into(), "/tmp".into()];
    let mut p = root.to_path_buf();
    while p.pop() {
        places.push(p.clone());
    }
    for dir in places {
        assert!(!dir.join(stamp).exists(), "{case}: {} written", dir.join(stamp).display());
    }
    // Inside berth's own dirs, the stamp may only be in a snapshot's `fs` tree.
    let mut stack = vec![root.parent().expect("test dir").to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if e.file_name() == stamp {
                let parts: Vec<String> = p.iter().map(|c| c.to_string_lossy().into_owned()).collect();
                let in_fs = parts.windows(3).any(|w| w[0] == "snapshots" && w[2] == "fs");
                assert!(in_fs, "{case}: {} written outside a snapshot", p.display());
            }
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(p);
            }
        }
    }
}

fn check_outcome(
    berth: &Berth,
    ns: &str,
    name: &str,
    case: &str,
    refused: bool,
    layers: &[Vec<u8>],
    res: Result<String, String>,
) {
    match (refused, res) {
        (true, Err(e)) => {
            // The error names the layer (by digest) and the entry.
            let named = layers.iter().any(|l| e.contains(&Digest::of(l).to_string()));
            assert!(named, "{case}: the error does not name the layer: {e}");
            assert!(e.contains("layer entry") || e.contains("whiteout"), "{case}: unclear: {e}");
            assert_clean(berth, ns, name, layers);
        }
        (true, Ok(out)) => panic!("{case}: accepted: {out}"),
        // Resolving inside the snapshot or refusing are both safe; refused, it is clean.
        (false, Err(e)) => {
            assert!(e.contains("layer entry"), "{case}: unclear: {e}");
            assert_clean(berth, ns, name, layers);
        }
        (false, Ok(_)) => {
            assert!(image_digest(berth, ns, name).is_some(), "{case}: no image");
            let check = berth_ok(berth, &["-n", ns, "images", "check", name]);
            assert!(check.contains("\tunpacked"), "{case}: {check}");
        }
    }
}

fn run(berth: &Berth, args: &[&str]) -> Result<String, String> {
    let out = berth.cli(args);
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

#[test]
fn malicious_layers_through_pull() {
    if !have("docker-registry") {
        println!("skipped: no docker-registry");
        return;
    }
    let builder = Berth::start();
    let victim = Berth::start();
    let reg = Registry::start(None);
    let canary = Canary::new();
    let stamp = format!("berth-hostile-{}", std::process::id());
    for (i, (case, layers, refused)) in cases(&canary, &stamp).into_iter().enumerate() {
        let img = RawImage::new(layers.clone(), serde_json::json!({"Cmd": ["/x"]}), serde_json::json!({}));
        let name = format!("{}/hostile/layer{i}:v1", reg.addr);
        let archive = builder.dir.path().join(format!("layer{i}.tar"));
        img.layout_tar(&name, &[], &archive);
        berth_ok(&builder, &["images", "import", "--no-unpack", archive.to_str().expect("utf8")]);
        berth_ok(&builder, &["images", "push", &name]);
        let ns = format!("pull{i}");
        let res = run(&victim, &["-n", &ns, "images", "pull", &name]);
        println!("{case}: {res:?}");
        host_untouched(&canary, &stamp, case, &victim.root);
        check_outcome(&victim, &ns, &name, case, refused, &layers, res);
    }
}

#[test]
fn malicious_layers_through_import() {
    let berth = Berth::start();
    let canary = Canary::new();
    let stamp = format!("berth-hostile-imp-{}", std::process::id());
    for (i, (case, layers, refused)) in cases(&canary, &stamp).into_iter().enumerate() {
        let img = RawImage::new(layers.clone(), serde_json::json!({"Cmd": ["/x"]}), serde_json::json!({}));
        let name = format!("docker.io/hostile/layer{i}:v1");
        let archive = berth.dir.path().join(format!("layer{i}.tar"));
        img.layout_tar(&name, &[], &archive);
        let ns = format!("import{i}");
        let res = run(&berth, &["-n", &ns, "images", "import", archive.to_str().expect("utf8")]);
        println!("{case}: {res:?}");
        host_untouched(&canary, &stamp, case, &berth.root);
        check_outcome(&berth, &ns, &name, case, refused, &layers, res);
    }
}
