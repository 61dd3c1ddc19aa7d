//! A container's cgroup limits and OOM score: `RunOptions`' memory, CPU and pids limits,
//! then `LinuxOptions`' CPU shares, period, quota, cpuset and cgroup v2 `unified` files
//! (which win over `cpus_milli`), and its `oom_score_adj` (raised to the runtime's own, the
//! least it may give a child without `CAP_SYS_RESOURCE`).

use berth_ipc::runtime::{LinuxOptions, ResourceUpdate, RunOptions};
use berth_ipc::{Error, Result};
use oci_spec::runtime::{LinuxCpu, LinuxMemory, LinuxPids, LinuxResources};

use super::host::Host;

/// `opts`' limits, set on `resources`.
pub fn limit(resources: &mut LinuxResources, opts: &RunOptions, host: &Host) -> Result<()> {
    if let Some(limit) = opts.memory {
        let limit = i64::try_from(limit).map_err(|_| Error::invalid("memory: limit too large"))?;
        let mut memory = LinuxMemory::default();
        memory.set_limit(Some(limit));
        memory.set_swap(Some(limit));
        resources.set_memory(Some(memory));
    }
    let mut cpu = resources.cpu().clone().unwrap_or_default();
    if let Some(milli) = opts.cpus_milli {
        if milli == 0 {
            return Err(Error::invalid("cpus: must be more than 0"));
        }
        cpu.set_period(Some(100_000));
        cpu.set_quota(Some(i64::try_from(milli.saturating_mul(100)).unwrap_or(i64::MAX)));
    }
    if let Some(limit) = opts.pids_limit {
        let mut pids = LinuxPids::default();
        pids.set_limit(i64::try_from(limit).map_err(|_| Error::invalid("pids limit: too large"))?);
        resources.set_pids(Some(pids));
    }
    linux_cpu(&mut cpu, &opts.linux)?;
    if cpu != LinuxCpu::default() {
        resources.set_cpu(Some(cpu));
    }
    let l = &opts.linux;
    if !l.unified.is_empty() {
        if !host.cgroup_v2 {
            return Err(Error::invalid(
                "unified: cgroup v2 settings, but this host runs cgroup v1 (/sys/fs/cgroup has no cgroup.controllers)",
            ));
        }
        for (key, value) in &l.unified {
            let plain = !key.is_empty()
                && key != "."
                && key != ".."
                && key.contains('.')
                && !key.contains(['/', '\0'])
                && !key.starts_with('.');
            if !plain {
                return Err(Error::invalid(format!(
                    "unified {key:?}: expected a cgroup file name like memory.high"
                )));
            }
            if value.contains('\0') {
                return Err(Error::invalid(format!("unified {key}: value with a NUL byte")));
            }
        }
        resources.set_unified(Some(l.unified.clone().into_iter().collect()));
    }
    Ok(())
}

/// `u`'s limits over `resources` (a container's spec's): checked as a create's would be;
/// what `u` leaves unset stays, and its `unified` files are merged over the spec's.
pub fn update(resources: &mut LinuxResources, u: &ResourceUpdate, host: &Host) -> Result<()> {
    let mut unified = resources.unified().clone().unwrap_or_default();
    unified.extend(u.unified.iter().map(|(k, v)| (k.clone(), v.clone())));
    let opts = RunOptions {
        memory: u.memory,
        cpus_milli: u.cpus_milli,
        pids_limit: u.pids_limit,
        linux: LinuxOptions {
            cpu_shares: u.cpu_shares,
            cpu_period: u.cpu_period,
            cpu_quota: u.cpu_quota,
            cpuset_cpus: u.cpuset_cpus.clone(),
            cpuset_mems: u.cpuset_mems.clone(),
            unified: if u.unified.is_empty() { Default::default() } else { unified.into_iter().collect() },
            ..LinuxOptions::default()
        },
        ..RunOptions::default()
    };
    limit(resources, &opts, host)
}

/// `l`'s CPU settings over `cpu`.
fn linux_cpu(cpu: &mut LinuxCpu, l: &LinuxOptions) -> Result<()> {
    if let Some(shares) = l.cpu_shares {
        // The kernel's (v1) range; runc maps it onto cpu.weight on v2.
        cpu.set_shares(Some(shares.clamp(2, 262_144)));
    }
    if let Some(period) = l.cpu_period {
        if !(1_000..=1_000_000).contains(&period) {
            return Err(Error::invalid(format!("cpu period {period}: expected 1000 to 1000000 µs")));
        }
        cpu.set_period(Some(period));
    }
    if let Some(quota) = l.cpu_quota {
        if quota != -1 && quota < 1_000 {
            return Err(Error::invalid(format!(
                "cpu quota {quota}: expected at least 1000 µs, or -1 for none"
            )));
        }
        cpu.set_quota(Some(quota));
    }
    if let Some(cpus) = &l.cpuset_cpus {
        cpu.set_cpus(Some(cpu_list("cpuset cpus", cpus)?));
    }
    if let Some(mems) = &l.cpuset_mems {
        cpu.set_mems(Some(cpu_list("cpuset mems", mems)?));
    }
    Ok(())
}

/// A kernel list (`0-2,4`), checked.
fn cpu_list(what: &str, s: &str) -> Result<String> {
    let bad = || Error::invalid(format!("{what} {s:?}: expected a list like 0-2,4"));
    let num = |n: &str| {
        if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        n.parse::<u32>().map_err(|_| bad())
    };
    for part in s.split(',') {
        match part.split_once('-') {
            None => {
                num(part)?;
            }
            Some((a, b)) => {
                if num(a)? > num(b)? {
                    return Err(bad());
                }
            }
        }
    }
    Ok(s.to_string())
}

/// The OOM score adjustment to set: `asked`, in range, raised to the runtime's own.
pub fn oom_score_adj(asked: Option<i32>, host: &Host) -> Result<Option<i32>> {
    let Some(adj) = asked else { return Ok(None) };
    if !(-1000..=1000).contains(&adj) {
        return Err(Error::invalid(format!("oom_score_adj {adj}: expected -1000 to 1000")));
    }
    Ok(Some(adj.max(host.oom_score_adj)))
}
