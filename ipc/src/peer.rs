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
        let member = Peer { gid: 4242, ..stranger.clone() };
        assert!(policy.allows(&member));
        let me = Peer { uid: nix::unistd::geteuid().as_raw(), ..stranger.clone() };
        assert!(AccessPolicy { group: None }.allows(&me), "the service's own user is allowed");
    }

    #[test]
    fn no_group_configured_refuses_everyone_else() {
        let policy = AccessPolicy { group: None };
        let stranger =
            Peer { uid: 65534, gid: 4242, pid: Some(std::process::id() as i32), ..Peer::default() };
        if nix::unistd::geteuid().as_raw() != 65534 {
            assert!(!policy.allows(&stranger));
        }
    }

    #[test]
    fn supplementary_groups_read_from_proc() {
        let pid = std::process::id() as i32;
        let groups = supplementary_groups(pid).expect("own /proc status");
        let dead = supplementary_groups(i32::MAX);
        assert!(dead.is_err(), "no such process");
        // A peer whose primary gid differs but whose process carries the group.
        if let Some(&group) = groups.first() {
            let policy = AccessPolicy { group: Some(group) };
            let peer = Peer { uid: 65534, gid: 65534, pid: Some(pid), ..Peer::default() };
            assert!(policy.allows(&peer), "member of {group} through supplementary groups");
            let gone = Peer { pid: Some(i32::MAX), ..peer };
            if group != 65534 && nix::unistd::geteuid().as_raw() != 65534 {
                assert!(!policy.allows(&gone), "a vanished process proves no membership");
            }
        } else {
            println!("skip: this process has no supplementary groups to test membership with");
        }
    }
}
