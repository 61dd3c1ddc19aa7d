//! Who is on the other end of a socket, and whether they may talk to us.

use std::io;

/// The credentials of a connected peer (SO_PEERCRED), plus the name it gave in `Hello`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Peer {
    /// Effective user id.
    pub uid: u32,
    /// Effective group id.
    pub gid: u32,
    /// Process id, when the kernel reported one.
    pub pid: Option<i32>,
    /// The `client_name` of its `Hello`.
    pub client_name: String,
}

/// Who may connect: root, the service's own user, and members of one group.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AccessPolicy {
    /// The group whose members may connect (the `berth` group), if any.
    pub group: Option<u32>,
}

impl AccessPolicy {
    /// Whether `peer` may use the service.
    pub fn allows(&self, peer: &Peer) -> bool {
        if peer.uid == 0 || peer.uid == nix::unistd::geteuid().as_raw() {
            return true;
        }
        let Some(group) = self.group else { return false };
        if peer.gid == group {
            return true;
        }
        match peer.pid {
            Some(pid) => supplementary_groups(pid).map(|g| g.contains(&group)).unwrap_or(false),
            None => false,
        }
    }
}

/// The supplementary groups of a live process, from `/proc/<pid>/status`.
fn supplementary_groups(pid: i32) -> io::Result<Vec<u32>> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    Ok(status
        .lines()
        .find_map(|l| l.strip_prefix("Groups:"))
        .map(|rest| rest.split_whitespace().filter_map(|g| g.parse().ok()).collect())
        .unwrap_or_default())
}

/// Reads the peer credentials of a connected Unix stream.
pub fn peer_of(stream: &tokio::net::UnixStream) -> io::Result<Peer> {
    let cred = stream.peer_cred()?;
    Ok(Peer { uid: cred.uid(), gid: cred.gid(), pid: cred.pid(), client_name: String::new() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_allowed_stranger_refused() {
        let policy = AccessPolicy { group: Some(4242) };
        assert!(policy.allows(&Peer { uid: 0, gid: 0, pid: None, client_name: String::new() }));
        let stranger = Peer { uid: 65534, gid: 65534, pid: None, client_name: String::new() };
        if nix::unistd::geteuid().as_raw() != 65534 {
            assert!(!policy.allows(&stranger));
        }
        let member = Peer { gid: 4242, ..stranger };
        assert!(policy.allows(&member));
    }
}
