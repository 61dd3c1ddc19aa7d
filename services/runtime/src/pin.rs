//! `berth-sandbox`: holds a pod's namespaces without any image. The runtime service runs it
//! once per sandbox (`berth-sandbox pin`, the request as one JSON line on stdin); it
//! unshares the network, IPC and UTS namespaces asked for, sets the hostname, brings up
//! loopback, writes the pod's sysctls inside them, bind-mounts each namespace onto a file
//! under the sandbox's `ns/` dir and exits. Containers join those files through their OCI
//! spec. Nothing stays running, so a pod costs no process, as CRI-O's `pinns`.
//!
//! A shared pid namespace is the one thing a file cannot hold: a pid namespace without its
//! pid 1 takes no new processes. For `pid: true` the helper forks a holder that is pid 1 of
//! a new pid namespace, reaps what is orphaned into it, and lives until the sandbox is
//! stopped (SIGKILL, which also ends every process of the namespace, as a pause container's
//! death does).
//!
//! Answer on stdout: one JSON line `{"holder_pid": N}` (0 without a holder); on failure a
//! message on stderr and exit status 1, with what was mounted unmounted again.
// fork of the holder, the loopback ioctl and the holder's signal wait are syscalls nix does
// not cover (or not without allocation after fork).
#![allow(unsafe_code)]

use std::collections::BTreeMap;
use std::ffi::CString;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use nix::mount::{MntFlags, MsFlags};
use nix::sched::CloneFlags;
use serde::{Deserialize, Serialize};

/// What to hold, sent on the helper's stdin.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct PinRequest {
    /// The sandbox's `ns/` dir: files `net`, `ipc`, `uts`, `pid` are made and mounted in it.
    pub dir: PathBuf,
    /// A new network namespace (loopback up).
    pub net: bool,
    /// A new IPC namespace.
    pub ipc: bool,
    /// A new UTS namespace with `hostname`.
    pub uts: bool,
    /// A new pid namespace held by a holder process.
    pub pid: bool,
    /// The hostname (with `uts`).
    pub hostname: String,
    /// Sysctls to set inside the new namespaces (names checked by the caller).
    pub sysctls: BTreeMap<String, String>,
}

/// The helper's answer.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct PinAnswer {
    /// The holder's pid (0 without a shared pid namespace).
    pub holder_pid: u32,
}

/// The kinds of namespace a sandbox may hold, as named under `/proc/<pid>/ns`.
pub const KINDS: [&str; 4] = ["net", "ipc", "uts", "pid"];

/// `main` of `berth-sandbox`.
pub fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) != Some("pin") {
        eprintln!("usage: berth-sandbox pin [SANDBOX-DIR] < request.json (run by berth's runtime service)");
        return std::process::ExitCode::from(2);
    }
    let mut input = String::new();
    let request = std::io::stdin()
        .read_to_string(&mut input)
        .map_err(|e| format!("reading the request: {e}"))
        .and_then(|_| serde_json::from_str::<PinRequest>(&input).map_err(|e| format!("bad request: {e}")));
    let result = request.and_then(|r| {
        let answer = pin(&r);
        if answer.is_err() {
            unpin(&r.dir);
        }
        answer
    });
    match result {
        Ok(answer) => {
            let line = serde_json::to_string(&answer).unwrap_or_default();
            let _ = writeln!(std::io::stdout(), "{line}");
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("berth-sandbox: {e}");
            std::process::ExitCode::from(1)
        }
    }
}

fn pin(r: &PinRequest) -> Result<PinAnswer, String> {
    let mut flags = CloneFlags::empty();
    if r.net {
        flags |= CloneFlags::CLONE_NEWNET;
    }
    if r.ipc {
        flags |= CloneFlags::CLONE_NEWIPC;
    }
    if r.uts {
        flags |= CloneFlags::CLONE_NEWUTS;
    }
    nix::sched::unshare(flags).map_err(|e| format!("unshare: {e}"))?;
    if r.uts {
        nix::unistd::sethostname(&r.hostname).map_err(|e| format!("hostname {:?}: {e}", r.hostname))?;
    }
    if r.net {
        loopback_up().map_err(|e| format!("loopback up: {e}"))?;
    }
    for (name, value) in &r.sysctls {
        let path = Path::new("/proc/sys").join(sysctl_path(name));
        std::fs::write(&path, value).map_err(|e| format!("sysctl {name}={value}: {e}"))?;
    }
    for (kind, wanted) in [("net", r.net), ("ipc", r.ipc), ("uts", r.uts)] {
        if wanted {
            bind_ns(&format!("/proc/self/ns/{kind}"), &r.dir.join(kind))?;
        }
    }
    let mut answer = PinAnswer::default();
    if r.pid {
        nix::sched::unshare(CloneFlags::CLONE_NEWPID).map_err(|e| format!("unshare pid: {e}"))?;
        // SAFETY: this process has one thread (nothing here spawns any), so the child may
        // run any code; it never returns into ours.
        match unsafe { nix::unistd::fork() }.map_err(|e| format!("fork holder: {e}"))? {
            nix::unistd::ForkResult::Child => hold(),
            nix::unistd::ForkResult::Parent { child } => {
                answer.holder_pid = child.as_raw().unsigned_abs();
                if let Err(e) = bind_ns(&format!("/proc/{child}/ns/pid"), &r.dir.join("pid")) {
                    let _ = nix::sys::signal::kill(child, nix::sys::signal::Signal::SIGKILL);
                    return Err(e);
                }
            }
        }
    }
    Ok(answer)
}

/// A sysctl's file under `/proc/sys`: `a.b.c` is `a/b/c`; a name with a `/` is already a path
/// (Kubernetes allows `net/ipv4/conf/eth0.100/forwarding`).
pub fn sysctl_path(name: &str) -> String {
    if name.contains('/') { name.to_string() } else { name.replace('.', "/") }
}

/// Bind-mounts namespace file `from` onto `to` (made empty first).
fn bind_ns(from: &str, to: &Path) -> Result<(), String> {
    std::fs::File::create(to).map_err(|e| format!("{}: {e}", to.display()))?;
    nix::mount::mount(Some(from), to, None::<&str>, MsFlags::MS_BIND, None::<&str>)
        .map_err(|e| format!("bind {from} on {}: {e}", to.display()))
}

/// Unmounts and removes every namespace file under `dir` (what a failed pin made).
pub fn unpin(dir: &Path) {
    for kind in KINDS {
        let file = dir.join(kind);
        let _ = nix::mount::umount2(&file, MntFlags::MNT_DETACH);
        let _ = std::fs::remove_file(&file);
    }
}

/// Sets `lo` up in the current network namespace.
fn loopback_up() -> std::io::Result<()> {
    // SAFETY: plain socket and ioctl calls on a zeroed `ifreq` whose name is set.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let mut req: libc::ifreq = std::mem::zeroed();
        for (i, b) in b"lo\0".iter().enumerate() {
            req.ifr_name[i] = *b as libc::c_char;
        }
        let mut result = Ok(());
        if libc::ioctl(fd, libc::SIOCGIFFLAGS, &mut req) < 0 {
            result = Err(std::io::Error::last_os_error());
        } else {
            req.ifr_ifru.ifru_flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
            if libc::ioctl(fd, libc::SIOCSIFFLAGS, &req) < 0 {
                result = Err(std::io::Error::last_os_error());
            }
        }
        libc::close(fd);
        result
    }
}

/// The holder: pid 1 of the pod's pid namespace. Closes what it inherited, waits for
/// SIGCHLD and reaps; never returns.
fn hold() -> ! {
    // SAFETY: single-threaded child; only syscalls.
    unsafe {
        for fd in 0..3 {
            libc::close(fd);
        }
        let name = CString::new("berth-pod").unwrap_or_default();
        libc::prctl(libc::PR_SET_NAME, name.as_ptr() as libc::c_ulong, 0, 0, 0);
        libc::setsid();
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGCHLD);
        libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        loop {
            while libc::waitpid(-1, std::ptr::null_mut(), libc::WNOHANG) > 0 {}
            let mut sig = 0;
            libc::sigwait(&set, &mut sig);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::sysctl_path;

    #[test]
    fn sysctl_names_become_paths() {
        assert_eq!(sysctl_path("net.ipv4.ip_forward"), "net/ipv4/ip_forward");
        assert_eq!(sysctl_path("net/ipv4/conf/eth0.100/forwarding"), "net/ipv4/conf/eth0.100/forwarding");
        assert_eq!(sysctl_path("kernel.shm_rmid_forced"), "kernel/shm_rmid_forced");
    }
}
