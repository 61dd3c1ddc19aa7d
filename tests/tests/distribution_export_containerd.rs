//! `berth images export` writes what containerd reads: a private containerd (own root, state
//! and socket in the test's temp dir) imports berth's export of a busybox image, unpacks it
//! on overlayfs, and lists it under the same name and digest.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use berth_system_tests::Berth;
use berth_system_tests::dist::{berth_ok, busybox_rootfs, have, image_digest, sh, tar_dir};

/// A containerd on its own socket and root, killed (by pid) and unmounted on drop.
struct Containerd {
    child: Child,
    root: std::path::PathBuf,
    socket: String,
}

impl Containerd {
    fn start(dir: &Path) -> Containerd {
        let root = dir.join("ctd-root");
        let socket = dir.join("ctd.sock").to_str().expect("utf8").to_string();
        let config = dir.join("ctd.toml");
        std::fs::write(
            &config,
            format!(
                "version = 2\nroot = \"{}\"\nstate = \"{}\"\ndisabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n\
                 [grpc]\n  address = \"{socket}\"\n[ttrpc]\n  address = \"{socket}.ttrpc\"\n\
                 [debug]\n  address = \"{}\"\n[metrics]\n  address = \"\"\n\
                 [plugins.\"io.containerd.internal.v1.opt\"]\n  path = \"{}\"\n",
                root.display(),
                dir.join("ctd-state").display(),
                dir.join("ctd-debug.sock").display(),
                dir.join("ctd-opt").display(),
            ),
        )
        .expect("containerd config");
        let log = std::fs::File::create(dir.join("ctd.log")).expect("log");
        let child = Command::new("containerd")
            .arg("--config")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start containerd");
        let ctd = Containerd { child, root, socket };
        let deadline = Instant::now() + Duration::from_secs(30);
        while Command::new("ctr")
            .args(["--address", &ctd.socket, "version"])
            .output()
            .map_or(true, |o| !o.status.success())
        {
            assert!(Instant::now() < deadline, "containerd did not answer within 30 s");
            std::thread::sleep(Duration::from_millis(100));
        }
        ctd
    }

    fn ctr(&self, args: &[&str]) -> String {
        sh(Command::new("ctr").args(["--address", &self.socket, "-n", "berth-test"]).args(args))
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = Command::new("umount").arg("-R").arg(&self.root).status();
    }
}

#[test]
fn containerd_imports_and_unpacks_berths_export() {
    if !have("containerd") || !have("ctr") {
        eprintln!("skipped: containerd or ctr is not installed");
        return;
    }
    let berth = Berth::start();
    let work = berth.dir.path();
    let rootfs = work.join("rootfs");
    busybox_rootfs(&rootfs, "exported");
    let tar = work.join("rootfs.tar.gz");
    tar_dir(&rootfs, &tar, true);
    let name = "docker.io/library/exported:v1";
    berth_ok(&berth, &["images", "import", "--rootfs", tar.to_str().expect("utf8"), name]);
    let want = image_digest(&berth, "default", name).expect("imported image");

    let out = work.join("export.tar");
    berth_ok(&berth, &["images", "export", out.to_str().expect("utf8"), name]);

    let ctd = Containerd::start(work);
    ctd.ctr(&["images", "import", out.to_str().expect("utf8")]);
    let listed = ctd.ctr(&["images", "ls"]);
    let line =
        listed.lines().find(|l| l.starts_with(name)).unwrap_or_else(|| panic!("{name} not in:\n{listed}"));
    assert!(line.contains(&want), "containerd lists another digest than berth's {want}:\n{line}");
    // containerd unpacked it: its overlayfs snapshotter holds the chain, and ctr can check it.
    let check = ctd.ctr(&["images", "check"]);
    assert!(check.lines().any(|l| l.starts_with(name) && l.contains("complete")), "{check}");
    let snaps = ctd.ctr(&["snapshots", "ls"]);
    assert!(snaps.lines().count() >= 2, "containerd did not unpack the export:\n{snaps}");

    // And back: `ctr images export` (io.containerd.image.name and a bare ref.name) into
    // another namespace of berth, same digest.
    let back = work.join("ctr-export.tar");
    ctd.ctr(&["images", "export", back.to_str().expect("utf8"), name]);
    berth_ok(&berth, &["-n", "fromctr", "images", "import", back.to_str().expect("utf8")]);
    assert_eq!(image_digest(&berth, "fromctr", name).as_deref(), Some(want.as_str()), "ctr's export");
}
