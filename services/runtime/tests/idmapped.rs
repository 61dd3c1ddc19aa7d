//! The id-mapped rootfs of a container in a pod's user namespace, against the kernel: a user
//! namespace pinned by the real `berth-sandbox` helper, overlayfs on id-mapped clones of two
//! layers, a single id-mapped bind, and a failed mount that leaves nothing mounted.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use berth_ipc::snapshot::Mount;
use berth_runtime::idmapped::{self, Userns};

const UID: u32 = 100_000;
const GID: u32 = 200_000;

fn mounts_under(dir: &Path) -> Vec<String> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let d = dir.display().to_string();
    info.lines().filter_map(|l| l.split(' ').nth(4)).filter(|m| m.starts_with(&d)).map(String::from).collect()
}

/// Pins a user namespace mapping 0 to UID/GID at `<ns>/user` with the real helper.
fn pin_userns(ns: &Path) {
    std::fs::create_dir_all(ns).expect("ns dir");
    let request = serde_json::json!({
        "dir": ns, "net": false, "ipc": false, "uts": false, "pid": false, "hostname": "",
        "sysctls": {},
        "user": {
            "uids": [{"container_id": 0, "host_id": UID, "length": 65536}],
            "gids": [{"container_id": 0, "host_id": GID, "length": 65536}],
        },
    });
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_berth-sandbox"))
        .arg("pin")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn berth-sandbox");
    std::io::Write::write_all(&mut child.stdin.take().expect("stdin"), request.to_string().as_bytes())
        .expect("request");
    let out = child.wait_with_output().expect("berth-sandbox");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

fn layer(dir: &Path, file: &str, owner: u32) {
    std::fs::create_dir_all(dir).expect("layer");
    std::fs::write(dir.join(file), file).expect("file");
    std::os::unix::fs::chown(dir.join(file), Some(owner), Some(owner)).expect("chown");
}

fn owner(path: &Path) -> (u32, u32) {
    let md = std::fs::metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    (md.uid(), md.gid())
}

#[test]
fn layers_are_seen_through_the_pods_user_namespace() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let tmp = tempfile::Builder::new().prefix("berth-idmap-").tempdir().expect("tempdir");
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o711)).expect("chmod");
    let t = tmp.path();
    pin_userns(&t.join("ns"));
    let userns = Userns { path: t.join("ns/user"), root_uid: UID, root_gid: GID };
    layer(&t.join("l1"), "a", 0);
    layer(&t.join("l2"), "b", 1000);
    for d in ["upper", "work"] {
        std::fs::create_dir(t.join(d)).expect("dir");
    }
    let overlay = Mount {
        kind: "overlay".into(),
        source: "overlay".into(),
        options: vec![
            format!("workdir={}", t.join("work").display()),
            format!("upperdir={}", t.join("upper").display()),
            format!("lowerdir={}:{}", t.join("l2").display(), t.join("l1").display()),
        ],
    };
    let dir = t.join("state/roots/k8s.io/c1");
    let rootfs = idmapped::mount(std::slice::from_ref(&overlay), &dir, &userns).expect("id-mapped overlay");
    assert_eq!(rootfs, dir.join("rootfs"));
    // Seen from the host: the layers' ids shifted by the mapping; on disk, untouched.
    assert_eq!(owner(&rootfs.join("a")), (UID, GID));
    assert_eq!(owner(&rootfs.join("b")), (UID + 1000, GID + 1000));
    assert_eq!(owner(&rootfs), (UID, GID), "the upper dir's top is the mapped root's");
    assert_eq!(owner(&t.join("l1/a")), (0, 0));
    assert_eq!(owner(&t.join("l2/b")), (1000, 1000));
    // Only the overlay stays mounted: the layer clones were detached and their dirs removed.
    assert_eq!(mounts_under(&dir), vec![rootfs.display().to_string()]);
    assert!(!dir.join("lower").exists());
    for d in [t.join("state/roots"), t.join("state/roots/k8s.io"), dir.clone()] {
        assert_eq!(std::fs::metadata(&d).expect("dir").mode() & 0o777, 0o711, "{}", d.display());
    }
    // A second task of another container, a single-layer bind.
    let bind = Mount {
        kind: "bind".into(),
        source: t.join("l1").display().to_string(),
        options: vec!["rw".into(), "rbind".into()],
    };
    let dir2 = t.join("state/roots/k8s.io/c2");
    let root2 = idmapped::mount(&[bind], &dir2, &userns).expect("id-mapped bind");
    assert_eq!(owner(&root2.join("a")), (UID, GID));

    idmapped::unmount(&dir).expect("unmount");
    idmapped::unmount(&dir2).expect("unmount bind");
    assert!(mounts_under(&t.join("state")).is_empty(), "{:?}", mounts_under(&t.join("state")));
    assert!(!dir.exists() && !dir2.exists());
    idmapped::unmount(&dir).expect("unmount of nothing is fine");

    // A layer that is not there: an error naming it, nothing left mounted.
    let mut broken = overlay.clone();
    broken.options[2] = format!("lowerdir={}:{}", t.join("l2").display(), t.join("nope").display());
    let e = idmapped::mount(&[broken], &dir, &userns).expect_err("missing layer");
    assert!(e.message.contains(&t.join("nope").display().to_string()), "{e}");
    assert!(mounts_under(&t.join("state")).is_empty(), "{:?}", mounts_under(&t.join("state")));
    assert!(!dir.join("lower").exists());
    idmapped::unmount(&dir).expect("clean");

    // Two mounts cannot be id-mapped as one rootfs.
    let e = idmapped::mount(&[overlay.clone(), overlay], &dir, &userns).expect_err("two mounts");
    assert!(e.message.contains("cannot be id-mapped"), "{e}");
    idmapped::unmount(&dir).expect("clean");

    berth_runtime::pin::unpin(&t.join("ns"));
    assert!(mounts_under(t).is_empty(), "{:?}", mounts_under(t));
}
