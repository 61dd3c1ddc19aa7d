//! Helpers for the runtime crate's tests: a busybox rootfs and a shim client.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;

use berth_ipc::runtime::{ShimRequest, ShimResponse};

/// Applets linked in the test rootfs.
pub const APPLETS: &[&str] = &[
    "sh", "echo", "sleep", "true", "false", "hostname", "cat", "ls", "pwd", "id", "env", "mount", "ps",
    "touch", "rm", "mkdir", "grep", "head", "dd", "readlink", "test",
];

/// Whether the machine can run containers (root, busybox, the runtime).
pub fn can_run(runtime: &str) -> bool {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: needs root");
        return false;
    }
    if !Path::new("/bin/busybox").exists() {
        eprintln!("skipped: /bin/busybox (busybox-static) is missing");
        return false;
    }
    if std::process::Command::new(runtime).arg("--version").output().is_err() {
        eprintln!("skipped: {runtime} is missing");
        return false;
    }
    true
}

/// Builds a busybox rootfs in `dir`.
pub fn busybox_rootfs(dir: &Path) {
    for d in ["bin", "etc", "proc", "sys", "dev", "tmp", "root", "work"] {
        std::fs::create_dir_all(dir.join(d)).expect("mkdir");
    }
    std::fs::copy("/bin/busybox", dir.join("bin/busybox")).expect("copy busybox");
    for applet in APPLETS {
        std::os::unix::fs::symlink("busybox", dir.join("bin").join(applet)).expect("symlink");
    }
    std::fs::write(dir.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\nweb:x:80:81::/:/bin/sh\n")
        .expect("passwd");
    std::fs::write(dir.join("etc/group"), "root:x:0:\nweb:x:81:\n").expect("group");
}

/// One request to a shim's socket.
pub fn shim_call(socket: &Path, req: &ShimRequest) -> ShimResponse {
    let mut conn = UnixStream::connect(socket).expect("connect shim");
    writeln!(conn, "{}", serde_json::to_string(req).expect("json")).expect("send");
    let mut line = String::new();
    BufReader::new(conn).read_line(&mut line).expect("read");
    serde_json::from_str(&line).expect("shim answer")
}
