//! What a network test changes on the host, put back on drop ([`HostNet`]), and the probes
//! network tests share: veths on a bridge, host-local's allocations, an HTTP GET.
//!
//! Traffic goes only to a test's own bridge subnets and 127.0.0.1.

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// Tests that change host-wide state (iptables, ip_forward) take this: one at a time in a
/// test binary.
pub static HOST: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// What a test changes on the host, put back on drop: its bridges removed, `ip_forward`
/// restored, every iptables rule and chain it added (to the filter and nat tables) deleted,
/// its CNI conf dir removed.
pub struct HostNet {
    /// The bridges the test's networks make.
    pub bridges: Vec<String>,
    forward: String,
    tables: Vec<(&'static str, String)>,
    /// The test's CNI conf dir.
    pub conf: tempfile::TempDir,
}

const TABLES: [&str; 2] = ["filter", "nat"];

fn iptables_save(table: &str) -> String {
    let out = Command::new("iptables-save").args(["-t", table]).output().expect("iptables-save");
    assert!(out.status.success(), "iptables-save -t {table}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `iptables-restore --noflush` inputs deleting from `table` what `after` has and `before`
/// had not: its rules (`-A` lines as `-D`, last first), then its chains — two transactions,
/// as nf_tables refuses to delete a chain in the batch that deletes the rule jumping to it.
fn undo(table: &str, before: &str, after: &str) -> [String; 2] {
    let chain = |l: &str| l.strip_prefix(':').and_then(|c| c.split_whitespace().next()).map(str::to_string);
    let old_rules: BTreeSet<&str> = before.lines().filter(|l| l.starts_with("-A ")).collect();
    let old_chains: BTreeSet<String> = before.lines().filter_map(chain).collect();
    let (mut rules, mut chains) = (format!("*{table}\n"), format!("*{table}\n"));
    for rule in after.lines().rev().filter(|l| l.starts_with("-A ") && !old_rules.contains(l)) {
        rules.push_str(&format!("-D {}\n", &rule[3..]));
    }
    for c in after.lines().filter_map(chain).filter(|c| !old_chains.contains(c)) {
        chains.push_str(&format!("-F {c}\n-X {c}\n"));
    }
    [rules + "COMMIT\n", chains + "COMMIT\n"]
}

impl HostNet {
    /// The host as it is now, for a test whose networks make `bridges`.
    pub fn new(bridges: &[&str]) -> HostNet {
        let forward = std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").expect("ip_forward");
        let conf = tempfile::Builder::new().prefix("berth-cni-").tempdir().expect("tmp");
        let tables = TABLES.iter().map(|t| (*t, iptables_save(t))).collect();
        HostNet { bridges: bridges.iter().map(|b| b.to_string()).collect(), forward, tables, conf }
    }

    /// The first bridge.
    pub fn bridge(&self) -> &str {
        &self.bridges[0]
    }
}

impl Drop for HostNet {
    fn drop(&mut self) {
        for bridge in &self.bridges {
            let _ = Command::new("ip").args(["link", "del", bridge]).output();
        }
        let _ = std::fs::write("/proc/sys/net/ipv4/ip_forward", self.forward.trim());
        for (table, before) in &self.tables {
            for script in undo(table, before, &iptables_save(table)) {
                let child = Command::new("iptables-restore")
                    .args(["-w", "--noflush"])
                    .stdin(std::process::Stdio::piped())
                    .spawn();
                if let Ok(mut child) = child {
                    if let Some(mut stdin) = child.stdin.take() {
                        let _ = stdin.write_all(script.as_bytes());
                    }
                    let _ = child.wait();
                }
            }
        }
    }
}

/// Whether the CNI plugins network tests use are installed.
pub fn have_plugins() -> bool {
    ["bridge", "host-local", "portmap", "firewall", "tuning"]
        .iter()
        .all(|p| Path::new("/usr/lib/cni").join(p).exists())
}

/// host-local's allocations of network `name` under `data_dir`: one file per address.
pub fn allocated(data_dir: &Path, name: &str) -> BTreeSet<String> {
    let Ok(entries) = std::fs::read_dir(data_dir.join(name)) else { return BTreeSet::new() };
    entries
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.parse::<std::net::IpAddr>().is_ok())
        .collect()
}

/// veths on `bridge`.
pub fn veths(bridge: &str) -> usize {
    let out = Command::new("ip").args(["-o", "link", "show", "master", bridge]).output().expect("ip link");
    String::from_utf8_lossy(&out.stdout).lines().count()
}

/// `GET /index.html` of `addr`, the whole answer.
pub fn http_get(addr: &str) -> std::io::Result<String> {
    let mut s = std::net::TcpStream::connect_timeout(&addr.parse().expect("addr"), Duration::from_secs(3))?;
    s.set_read_timeout(Some(Duration::from_secs(3)))?;
    s.write_all(b"GET /index.html HTTP/1.0\r\n\r\n")?;
    let mut body = String::new();
    s.read_to_string(&mut body)?;
    Ok(body)
}

/// [`http_get`] until the answer holds `want`, for up to 10 s.
pub fn retry_get(addr: &str, want: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match http_get(addr) {
            Ok(b) if b.contains(want) => return b,
            other => {
                assert!(Instant::now() < deadline, "no answer from {addr}: {other:?}");
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}
