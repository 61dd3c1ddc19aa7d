//! A container's capabilities: Docker's default set, then `cap_drop` (`ALL` drops every
//! one), then `cap_add` (`ALL` adds every one the kernel knows), as containerd's CRI applies
//! a Kubernetes security context; or, privileged, every capability. "Every" is what the
//! kernel knows (`/proc/sys/kernel/cap_last_cap`) and the runtime itself holds (its bounding
//! set, as containerd's `WithAllCurrentCapabilities`): a capability the runtime lacks cannot
//! be given, and runc would fail with "unable to apply caps". Names are case-insensitive,
//! `CAP_` optional.

use std::collections::HashSet;

use berth_ipc::{Error, Result};
use oci_spec::runtime::Capability;

/// Every capability by its kernel number (`linux/capability.h`).
const BY_NUMBER: [(&str, Capability); 41] = [
    ("CHOWN", Capability::Chown),
    ("DAC_OVERRIDE", Capability::DacOverride),
    ("DAC_READ_SEARCH", Capability::DacReadSearch),
    ("FOWNER", Capability::Fowner),
    ("FSETID", Capability::Fsetid),
    ("KILL", Capability::Kill),
    ("SETGID", Capability::Setgid),
    ("SETUID", Capability::Setuid),
    ("SETPCAP", Capability::Setpcap),
    ("LINUX_IMMUTABLE", Capability::LinuxImmutable),
    ("NET_BIND_SERVICE", Capability::NetBindService),
    ("NET_BROADCAST", Capability::NetBroadcast),
    ("NET_ADMIN", Capability::NetAdmin),
    ("NET_RAW", Capability::NetRaw),
    ("IPC_LOCK", Capability::IpcLock),
    ("IPC_OWNER", Capability::IpcOwner),
    ("SYS_MODULE", Capability::SysModule),
    ("SYS_RAWIO", Capability::SysRawio),
    ("SYS_CHROOT", Capability::SysChroot),
    ("SYS_PTRACE", Capability::SysPtrace),
    ("SYS_PACCT", Capability::SysPacct),
    ("SYS_ADMIN", Capability::SysAdmin),
    ("SYS_BOOT", Capability::SysBoot),
    ("SYS_NICE", Capability::SysNice),
    ("SYS_RESOURCE", Capability::SysResource),
    ("SYS_TIME", Capability::SysTime),
    ("SYS_TTY_CONFIG", Capability::SysTtyConfig),
    ("MKNOD", Capability::Mknod),
    ("LEASE", Capability::Lease),
    ("AUDIT_WRITE", Capability::AuditWrite),
    ("AUDIT_CONTROL", Capability::AuditControl),
    ("SETFCAP", Capability::Setfcap),
    ("MAC_OVERRIDE", Capability::MacOverride),
    ("MAC_ADMIN", Capability::MacAdmin),
    ("SYSLOG", Capability::Syslog),
    ("WAKE_ALARM", Capability::WakeAlarm),
    ("BLOCK_SUSPEND", Capability::BlockSuspend),
    ("AUDIT_READ", Capability::AuditRead),
    ("PERFMON", Capability::Perfmon),
    ("BPF", Capability::Bpf),
    ("CHECKPOINT_RESTORE", Capability::CheckpointRestore),
];

/// Docker's default capability set.
pub const DEFAULT: [Capability; 14] = [
    Capability::Chown,
    Capability::DacOverride,
    Capability::Fsetid,
    Capability::Fowner,
    Capability::Mknod,
    Capability::NetRaw,
    Capability::Setgid,
    Capability::Setuid,
    Capability::Setfcap,
    Capability::Setpcap,
    Capability::NetBindService,
    Capability::SysChroot,
    Capability::Kill,
    Capability::AuditWrite,
];

/// The highest capability number of the running kernel (`/proc/sys/kernel/cap_last_cap`);
/// the highest berth knows when it cannot be read.
pub fn kernel_last_cap() -> u32 {
    std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(BY_NUMBER.len() as u32 - 1)
}

/// The bounding set of this process (`CapBnd` of `/proc/self/status`); every capability
/// when it cannot be read.
pub fn own_bounding() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            let line = s.lines().find(|l| l.starts_with("CapBnd:"))?;
            u64::from_str_radix(line.split_whitespace().nth(1)?, 16).ok()
        })
        .unwrap_or(u64::MAX)
}

/// Every capability numbered up to `last_cap` whose bit is in `bounding` (those the kernel
/// knows, the runtime holds and berth can name).
pub fn all(last_cap: u32, bounding: u64) -> HashSet<Capability> {
    BY_NUMBER
        .iter()
        .enumerate()
        .take(last_cap as usize + 1)
        .filter(|(i, _)| bounding & (1u64 << i) != 0)
        .map(|(_, (_, c))| *c)
        .collect()
}

/// `name` (`net_admin`, `CAP_NET_ADMIN`), or `None` for `ALL`.
fn parse(name: &str) -> Result<Option<Capability>> {
    let upper = name.trim().to_ascii_uppercase();
    let bare = upper.strip_prefix("CAP_").unwrap_or(&upper);
    if bare == "ALL" {
        return Ok(None);
    }
    BY_NUMBER.iter().find(|(n, _)| *n == bare).map(|(_, c)| Some(*c)).ok_or_else(|| {
        Error::invalid(format!("capability {name:?}: unknown (expected a name like NET_ADMIN or ALL)"))
    })
}

/// The default set with `drop` then `add` applied; `ALL` adds [`all`]`(last_cap, bounding)`.
pub fn apply(add: &[String], drop: &[String], last_cap: u32, bounding: u64) -> Result<HashSet<Capability>> {
    let mut caps: HashSet<Capability> = DEFAULT.into_iter().collect();
    for name in drop {
        match parse(name).map_err(|e| e.context("cap_drop"))? {
            None => caps.clear(),
            Some(c) => {
                caps.remove(&c);
            }
        }
    }
    for name in add {
        match parse(name).map_err(|e| e.context("cap_add"))? {
            None => caps.extend(all(last_cap, bounding)),
            Some(c) => {
                caps.insert(c);
            }
        }
    }
    Ok(caps)
}
