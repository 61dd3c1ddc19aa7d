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

use berth_ipc::idmap::{IdMappings, map_text};
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
    /// A new user namespace with these maps (checked by the caller), made first and held at
    /// `user`; the other namespaces are made inside it, so it owns them.
    #[serde(default)]
    pub user: Option<IdMappings>,
}

/// The helper's answer.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct PinAnswer {
    /// The holder's pid (0 without a shared pid namespace).
    pub holder_pid: u32,
}

/// The kinds of namespace a sandbox may hold, as named under `/proc/<pid>/ns`.
pub const KINDS: [&str; 5] = ["net", "ipc", "uts", "pid", "user"];

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
    match &r.user {
        Some(maps) => pin_in_userns(r, maps),
        None => pin_here(r),
    }
}

/// Makes the namespaces in this process (owned by the host's user namespace) and binds them.
fn pin_here(r: &PinRequest) -> Result<PinAnswer, String> {
    enter(r)?;
    for (kind, wanted) in [("net", r.net), ("ipc", r.ipc), ("uts", r.uts)] {
        if wanted {
            bind_ns(&format!("/proc/self/ns/{kind}"), &r.dir.join(kind))?;
        }
    }
    let mut answer = PinAnswer::default();
    if r.pid {
        let child = fork_holder()?;
        answer.holder_pid = child.as_raw().unsigned_abs();
        if let Err(e) = bind_ns(&format!("/proc/{child}/ns/pid"), &r.dir.join("pid")) {
            let _ = nix::sys::signal::kill(child, nix::sys::signal::Signal::SIGKILL);
            return Err(e);
        }
    }
    Ok(answer)
}

/// Unshares the network, IPC and UTS namespaces asked for and sets them up (hostname,
/// loopback, sysctls) in the calling process.
fn enter(r: &PinRequest) -> Result<(), String> {
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
    Ok(())
}

/// Forks the holder: pid 1 of a new pid namespace (owned by the caller's user namespace).
fn fork_holder() -> Result<nix::unistd::Pid, String> {
    nix::sched::unshare(CloneFlags::CLONE_NEWPID).map_err(|e| format!("unshare pid: {e}"))?;
    // SAFETY: this process has one thread (nothing here spawns any), so the child may run
    // any code; it never returns into ours.
    match unsafe { nix::unistd::fork() }.map_err(|e| format!("fork holder: {e}"))? {
        nix::unistd::ForkResult::Child => hold(),
        nix::unistd::ForkResult::Parent { child } => Ok(child),
    }
}

/// With a user namespace: a child unshares it and waits; this process (still root of the
/// host's user namespace, which writing the maps and binding need) writes its maps and
/// binds it; the child then makes the other namespaces inside it (so it owns them) and
/// waits again while they are bound from its `/proc/<pid>/ns`.
fn pin_in_userns(r: &PinRequest, maps: &IdMappings) -> Result<PinAnswer, String> {
    let (to_child_r, to_child_w) = nix::unistd::pipe().map_err(|e| format!("pipe: {e}"))?;
    let (to_parent_r, to_parent_w) = nix::unistd::pipe().map_err(|e| format!("pipe: {e}"))?;
    // SAFETY: one thread here (as in `fork_holder`); the child ends with `_exit`.
    let child = match unsafe { nix::unistd::fork() }.map_err(|e| format!("fork: {e}"))? {
        nix::unistd::ForkResult::Child => {
            drop((to_child_w, to_parent_r));
            let code = match userns_child(r, to_child_r, to_parent_w) {
                Ok(()) => 0,
                Err(()) => 1,
            };
            // SAFETY: ends the forked child without running the parent's exit handlers.
            unsafe { libc::_exit(code) }
        }
        nix::unistd::ForkResult::Parent { child } => child,
    };
    drop((to_child_r, to_parent_w));
    let mut to_child = std::fs::File::from(to_child_w);
    let mut from_child = std::io::BufReader::new(std::fs::File::from(to_parent_r));
    let kill_child = |holder: Option<nix::unistd::Pid>| {
        for pid in holder.into_iter().chain([child]) {
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
        }
        let _ = nix::sys::wait::waitpid(child, None);
    };
    let result = (|| {
        let line = read_line(&mut from_child)?;
        if line != "unshared" {
            return Err(line.strip_prefix("error ").unwrap_or(&line).to_string());
        }
        // gid_map first or not: either order works for a writer with CAP_SETGID.
        for (file, map) in [("uid_map", &maps.uids), ("gid_map", &maps.gids)] {
            let path = format!("/proc/{child}/{file}");
            std::fs::write(&path, map_text(map)).map_err(|e| format!("writing {file}: {e}"))?;
        }
        bind_ns(&format!("/proc/{child}/ns/user"), &r.dir.join("user"))?;
        to_child.write_all(b"go\n").map_err(|e| format!("namespace child: {e}"))?;
        let line = read_line(&mut from_child)?;
        let holder = match line.strip_prefix("ready ") {
            Some(pid) => pid.parse::<i32>().map_err(|_| format!("namespace child said {line:?}"))?,
            None => return Err(line.strip_prefix("error ").unwrap_or(&line).to_string()),
        };
        let holder = (holder > 0).then(|| nix::unistd::Pid::from_raw(holder));
        let bound = (|| {
            for (kind, wanted) in [("net", r.net), ("ipc", r.ipc), ("uts", r.uts)] {
                if wanted {
                    bind_ns(&format!("/proc/{child}/ns/{kind}"), &r.dir.join(kind))?;
                }
            }
            if let Some(h) = holder {
                bind_ns(&format!("/proc/{h}/ns/pid"), &r.dir.join("pid"))?;
            }
            Ok::<(), String>(())
        })();
        Ok((holder, bound))
    })();
    match result {
        Ok((holder, Ok(()))) => {
            // The child exits when its pipe closes; the holder (if any) stays.
            drop(to_child);
            let _ = nix::sys::wait::waitpid(child, None);
            Ok(PinAnswer { holder_pid: holder.map_or(0, |h| h.as_raw().unsigned_abs()) })
        }
        Ok((holder, Err(e))) => {
            kill_child(holder);
            Err(e)
        }
        Err(e) => {
            kill_child(None);
            Err(e)
        }
    }
}

/// The forked child of [`pin_in_userns`]: every failure is told to the parent as a line.
fn userns_child(
    r: &PinRequest,
    from_parent: std::os::fd::OwnedFd,
    to_parent: std::os::fd::OwnedFd,
) -> Result<(), ()> {
    let mut to_parent = std::fs::File::from(to_parent);
    let mut say = |line: String| {
        let _ = to_parent.write_all(format!("{line}\n").as_bytes());
    };
    if let Err(e) = nix::sched::unshare(CloneFlags::CLONE_NEWUSER) {
        say(format!("error unshare user: {e}"));
        return Err(());
    }
    say("unshared".into());
    let mut parent = std::io::BufReader::new(std::fs::File::from(from_parent));
    if read_line(&mut parent).as_deref() != Ok("go") {
        return Err(());
    }
    let made = enter(r).and_then(|()| if r.pid { fork_holder().map(|p| p.as_raw()) } else { Ok(0) });
    match made {
        Ok(holder) => say(format!("ready {holder}")),
        Err(e) => {
            say(format!("error {e}"));
            return Err(());
        }
    }
    // Held until the parent has bound the namespaces and closes its end.
    let _ = read_line(&mut parent);
    Ok(())
}

/// One line from `from` (without its newline); EOF is an error.
fn read_line(from: &mut impl std::io::BufRead) -> Result<String, String> {
    let mut line = String::new();
    match from.read_line(&mut line) {
        Ok(0) => Err("namespace child exited early".into()),
        Ok(_) => Ok(line.trim_end().to_string()),
        Err(e) => Err(format!("namespace child: {e}")),
    }
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

/// The holder: pid 1 of the pod's pid namespace. Closes every fd it inherited, waits for
/// SIGCHLD and reaps; never returns.
fn hold() -> ! {
    // SAFETY: single-threaded child; only syscalls.
    unsafe {
        // Everything inherited: stdio and, in a user namespace, the helper's pipes.
        libc::syscall(libc::SYS_close_range, 0u32, u32::MAX, 0u32);
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
