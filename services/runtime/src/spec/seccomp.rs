//! The seccomp filter of a container: berth's default profile, with the semantics of
//! Docker's and containerd's default (`contrib/seccomp`): an allow-list, every other syscall
//! fails with `EPERM`; `personality` only for the harmless personas; `clone` only without
//! the namespace flags and `clone3` answering `ENOSYS` (so libcs fall back to `clone`)
//! unless `CAP_SYS_ADMIN`; and the syscalls a capability stands for (`mount`, `unshare`,
//! `setns` for `CAP_SYS_ADMIN`, `chroot` for `CAP_SYS_CHROOT`, …) only with that capability
//! in the bounding set. `keyctl`, `add_key`, `request_key` (the kernel keyring is not
//! namespaced), `bpf`, `userfaultfd`, `io_uring_*`, module and clock syscalls are never
//! allowed; `socket` is, for every address family but `AF_VSOCK`. A user profile
//! (`--security-opt seccomp=PATH`) is OCI `linux.seccomp` JSON or Docker's format
//! (`names`, `action`, `args`; `archMap`, `includes`, `excludes` ignored).

use std::collections::HashSet;

use berth_ipc::{Error, Result};
use oci_spec::runtime::{Capability, LinuxSeccomp};
use serde_json::{Value, json};

/// Allowed for every container.
#[rustfmt::skip]
const ALLOWED: &[&str] = &[
    "accept", "accept4", "access", "adjtimex", "alarm", "arch_prctl", "bind", "brk", "cachestat",
    "capget", "capset", "chdir", "chmod", "chown", "clock_adjtime", "clock_getres", "clock_gettime",
    "clock_nanosleep", "close", "close_range", "connect", "copy_file_range", "creat", "dup", "dup2",
    "dup3", "epoll_create", "epoll_create1", "epoll_ctl", "epoll_pwait", "epoll_pwait2",
    "epoll_wait", "eventfd", "eventfd2", "execve", "execveat", "exit", "exit_group", "faccessat",
    "faccessat2", "fadvise64", "fallocate", "fanotify_mark", "fchdir", "fchmod", "fchmodat",
    "fchmodat2", "fchown", "fchownat", "fcntl", "fdatasync", "fgetxattr", "flistxattr", "flock",
    "fork", "fremovexattr", "fsetxattr", "fstat", "fstatfs", "fsync", "ftruncate", "futex",
    "futex_requeue", "futex_wait", "futex_waitv", "futex_wake", "futimesat", "get_mempolicy",
    "get_robust_list", "get_thread_area", "getcpu", "getcwd", "getdents", "getdents64", "getegid",
    "geteuid", "getgid", "getgroups", "getitimer", "getpeername", "getpgid", "getpgrp", "getpid",
    "getppid", "getpriority", "getrandom", "getresgid", "getresuid", "getrlimit", "getrusage",
    "getsid", "getsockname", "getsockopt", "gettid", "gettimeofday", "getuid", "getxattr",
    "inotify_add_watch", "inotify_init", "inotify_init1", "inotify_rm_watch", "io_cancel",
    "io_destroy", "io_getevents", "io_pgetevents", "io_setup", "io_submit", "ioctl", "ioprio_get",
    "ioprio_set", "ipc", "kill", "landlock_add_rule", "landlock_create_ruleset",
    "landlock_restrict_self", "lchown", "lgetxattr", "link", "linkat", "listen", "listxattr",
    "llistxattr", "lremovexattr", "lseek", "lsetxattr", "lstat", "madvise", "map_shadow_stack",
    "membarrier", "memfd_create", "memfd_secret", "mincore", "mkdir", "mkdirat", "mknod", "mknodat",
    "mlock", "mlock2", "mlockall", "mmap", "mprotect", "mq_getsetattr", "mq_notify", "mq_open",
    "mq_timedreceive", "mq_timedsend", "mq_unlink", "mremap", "msgctl", "msgget", "msgrcv",
    "msgsnd", "msync", "munlock", "munlockall", "munmap", "name_to_handle_at", "nanosleep",
    "newfstatat", "open", "openat", "openat2", "pause", "pidfd_getfd", "pidfd_open",
    "pidfd_send_signal", "pipe", "pipe2", "pkey_alloc", "pkey_free", "pkey_mprotect", "poll",
    "ppoll", "prctl", "pread64", "preadv", "preadv2", "prlimit64", "process_mrelease",
    "process_vm_readv", "process_vm_writev", "pselect6", "ptrace", "pwrite64", "pwritev",
    "pwritev2", "read", "readahead", "readlink", "readlinkat", "readv", "recvfrom", "recvmmsg",
    "recvmsg", "remap_file_pages", "removexattr", "rename", "renameat", "renameat2",
    "restart_syscall", "rmdir", "rseq", "rt_sigaction", "rt_sigpending", "rt_sigprocmask",
    "rt_sigqueueinfo", "rt_sigreturn", "rt_sigsuspend", "rt_sigtimedwait", "rt_tgsigqueueinfo",
    "sched_get_priority_max", "sched_get_priority_min", "sched_getaffinity", "sched_getattr",
    "sched_getparam", "sched_getscheduler", "sched_rr_get_interval", "sched_setaffinity",
    "sched_setattr", "sched_setparam", "sched_setscheduler", "sched_yield", "seccomp", "select",
    "semctl", "semget", "semop", "semtimedop", "send", "sendfile", "sendmmsg", "sendmsg", "sendto",
    "set_robust_list", "set_thread_area", "set_tid_address", "setfsgid", "setfsuid", "setgid",
    "setgroups", "setitimer", "setpgid", "setpriority", "setregid", "setresgid", "setresuid",
    "setreuid", "setrlimit", "setsid", "setsockopt", "setuid", "setxattr", "shmat", "shmctl",
    "shmdt", "shmget", "shutdown", "sigaltstack", "signalfd", "signalfd4", "socketcall",
    "socketpair", "splice", "stat", "statfs", "statx", "symlink", "symlinkat", "sync",
    "sync_file_range", "syncfs", "sysinfo", "tee", "tgkill", "time", "timer_create", "timer_delete",
    "timer_getoverrun", "timer_gettime", "timer_settime", "timerfd_create", "timerfd_gettime",
    "timerfd_settime", "times", "tkill", "truncate", "umask", "uname", "unlink", "unlinkat",
    "utime", "utimensat", "utimes", "vfork", "vmsplice", "wait4", "waitid", "write", "writev",
];

/// Syscalls a capability in the bounding set adds (containerd's `contrib/seccomp`).
#[rustfmt::skip]
fn by_capability(cap: Capability) -> &'static [&'static str] {
    match cap {
        Capability::SysAdmin => &[
            "bpf",
            "clone",
            "clone3",
            "fanotify_init",
            "fsconfig",
            "fsmount",
            "fsopen",
            "fspick",
            "lookup_dcookie",
            "mount",
            "mount_setattr",
            "move_mount",
            "open_tree",
            "perf_event_open",
            "quotactl",
            "quotactl_fd",
            "setdomainname",
            "sethostname",
            "setns",
            "syslog",
            "umount",
            "umount2",
            "unshare",
        ],
        Capability::SysBoot => &["reboot"],
        Capability::SysChroot => &["chroot"],
        Capability::SysModule => &["delete_module", "init_module", "finit_module"],
        Capability::SysPacct => &["acct"],
        Capability::SysPtrace => &["kcmp", "pidfd_getfd", "process_madvise"],
        Capability::SysRawio => &["iopl", "ioperm"],
        Capability::SysTime => &["settimeofday", "stime", "clock_settime"],
        Capability::SysTtyConfig => &["vhangup"],
        Capability::SysNice => &["get_mempolicy", "mbind", "set_mempolicy", "set_mempolicy_home_node"],
        Capability::Syslog => &["syslog"],
        Capability::Bpf => &["bpf"],
        Capability::Perfmon => &["perf_event_open"],
        _ => &[],
    }
}

/// The namespace flags of `clone` (`CLONE_NEWNS|NEWCGROUP|NEWUTS|NEWIPC|NEWUSER|NEWPID|
/// NEWNET`), refused without `CAP_SYS_ADMIN`.
const CLONE_NS_FLAGS: u64 = 0x7E02_0000;

/// The address family of virtio sockets, refused by the default profile as in Docker's.
const AF_VSOCK: u64 = 40;

/// The default profile for a process whose bounding set is `caps`.
pub fn default_profile(caps: &HashSet<Capability>) -> Result<LinuxSeccomp> {
    let mut allowed: Vec<&str> = ALLOWED.to_vec();
    for cap in caps {
        allowed.extend_from_slice(by_capability(*cap));
    }
    allowed.sort_unstable();
    allowed.dedup();
    let mut syscalls = vec![
        json!({"names": allowed, "action": "SCMP_ACT_ALLOW"}),
        // Linux personas only: PER_LINUX, UNAME26, PER_LINUX32, and the query.
        json!({"names": ["personality"], "action": "SCMP_ACT_ALLOW",
               "args": [{"index": 0, "value": 0, "op": "SCMP_CMP_EQ"}]}),
        json!({"names": ["personality"], "action": "SCMP_ACT_ALLOW",
               "args": [{"index": 0, "value": 8, "op": "SCMP_CMP_EQ"}]}),
        json!({"names": ["personality"], "action": "SCMP_ACT_ALLOW",
               "args": [{"index": 0, "value": 131080, "op": "SCMP_CMP_EQ"}]}),
        json!({"names": ["personality"], "action": "SCMP_ACT_ALLOW",
               "args": [{"index": 0, "value": 4294967295u64, "op": "SCMP_CMP_EQ"}]}),
        // Sockets of every family but AF_VSOCK (40), which reaches the hypervisor's host.
        json!({"names": ["socket"], "action": "SCMP_ACT_ALLOW",
               "args": [{"index": 0, "value": AF_VSOCK, "op": "SCMP_CMP_NE"}]}),
    ];
    if !caps.contains(&Capability::SysAdmin) {
        // x86-64 and most arches: flags are arg 0 (s390 has them in arg 1).
        syscalls.push(json!({"names": ["clone"], "action": "SCMP_ACT_ALLOW",
            "args": [{"index": 0, "value": CLONE_NS_FLAGS, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}]}));
        // ENOSYS, not EPERM: glibc and musl then fall back to clone, which is checked above.
        syscalls.push(json!({"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38}));
    }
    let profile = json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": 1,
        "architectures": architectures(),
        "syscalls": syscalls,
    });
    serde_json::from_value(profile).map_err(|e| Error::internal_cause("default seccomp profile", e))
}

/// The host's architecture and the compat ones its processes may use.
fn architectures() -> Vec<&'static str> {
    match std::env::consts::ARCH {
        "x86_64" => vec!["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "aarch64" => vec!["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"],
        "riscv64" => vec!["SCMP_ARCH_RISCV64"],
        "s390x" => vec!["SCMP_ARCH_S390X", "SCMP_ARCH_S390"],
        "powerpc64" => vec!["SCMP_ARCH_PPC64LE"],
        _ => vec![],
    }
}

/// A user's profile: OCI `linux.seccomp` JSON, or Docker's format (its `archMap` gives the
/// architectures; `includes`/`excludes`, `comment` are dropped). `None` for `unconfined`.
pub fn user_profile(text: &str) -> Result<Option<LinuxSeccomp>> {
    if text.trim() == "unconfined" {
        return Ok(None);
    }
    let bad = |what: String| Error::invalid(format!("seccomp profile: {what}"));
    let mut v: Value = serde_json::from_str(text).map_err(|e| bad(format!("not JSON: {e}")))?;
    let obj = v.as_object_mut().ok_or_else(|| bad("not a JSON object".into()))?;
    if !obj.contains_key("defaultAction") {
        return Err(bad("no defaultAction".into()));
    }
    if let Some(map) = obj.remove("archMap") {
        let arches: Vec<Value> = map
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|a| {
                let main = a.get("architecture").cloned().into_iter();
                let subs = a.get("subArchitectures").and_then(Value::as_array).cloned().into_iter().flatten();
                main.chain(subs)
            })
            .collect();
        obj.entry("architectures").or_insert(Value::Array(arches));
    }
    for key in ["includes", "excludes", "comment"] {
        obj.remove(key);
    }
    if let Some(Value::Array(calls)) = obj.get_mut("syscalls") {
        for (i, call) in calls.iter_mut().enumerate() {
            let c = call.as_object_mut().ok_or_else(|| bad(format!("syscalls[{i}]: not an object")))?;
            for key in ["includes", "excludes", "comment"] {
                c.remove(key);
            }
            if let Some(name) = c.remove("name") {
                c.entry("names").or_insert(json!([name]));
            }
            if c.get("names").is_none_or(|n| n.as_array().is_none_or(|n| n.is_empty())) {
                return Err(bad(format!("syscalls[{i}]: no names")));
            }
        }
    }
    serde_json::from_value(v).map(Some).map_err(|e| bad(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_refuses_namespaces_and_keys() {
        let caps: HashSet<Capability> = [Capability::Chown, Capability::SysChroot].into_iter().collect();
        let p = default_profile(&caps).expect("profile");
        let json = serde_json::to_value(&p).expect("json");
        assert_eq!(json["defaultAction"], "SCMP_ACT_ERRNO");
        assert_eq!(json["defaultErrnoRet"], 1);
        let allowed = json["syscalls"][0]["names"].as_array().expect("names");
        let has = |n: &str| allowed.iter().any(|a| a == n);
        for no in ["mount", "unshare", "setns", "keyctl", "add_key", "request_key", "bpf", "clone", "reboot"]
        {
            assert!(!has(no), "{no} allowed");
        }
        for yes in ["read", "execve", "chroot", "openat"] {
            assert!(has(yes), "{yes} refused");
        }
        let admin: HashSet<Capability> = [Capability::SysAdmin].into_iter().collect();
        let json = serde_json::to_value(default_profile(&admin).expect("admin")).expect("json");
        assert!(json["syscalls"][0]["names"].as_array().expect("names").iter().any(|a| a == "mount"));
        assert!(!json.to_string().contains("SCMP_CMP_MASKED_EQ"));
    }

    #[test]
    fn user_profiles() {
        assert!(user_profile("unconfined").expect("unconfined").is_none());
        let docker = r#"{"defaultAction":"SCMP_ACT_ERRNO","archMap":[{"architecture":"SCMP_ARCH_X86_64","subArchitectures":["SCMP_ARCH_X86"]}],
            "syscalls":[{"names":["read"],"action":"SCMP_ACT_ALLOW","includes":{"caps":["CAP_SYS_ADMIN"]},"comment":"x"}]}"#;
        let p = user_profile(docker).expect("docker").expect("profile");
        assert_eq!(p.architectures().as_ref().map(Vec::len), Some(2));
        for (bad, want) in [
            ("{", "not JSON"),
            ("[]", "not a JSON object"),
            ("{}", "no defaultAction"),
            (r#"{"defaultAction":"SCMP_ACT_NOPE"}"#, "SCMP_ACT_NOPE"),
            (r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"action":"SCMP_ACT_ERRNO"}]}"#, "no names"),
        ] {
            let e = user_profile(bad).expect_err(bad);
            assert!(
                e.is(berth_ipc::Code::InvalidArgument) && e.message.contains(want),
                "{bad}: {}",
                e.message
            );
        }
    }
}
