//! The `--user` / `USER` string: `uid`, `uid:gid`, `name`, `name:group`, `uid:group`,
//! `name:gid`. Numbers are decimal u32 with no wraparound (`4294967295`, the kernel's "no
//! id", is refused); a numeric string is never looked up as a name; names are looked up in
//! the image's `/etc/passwd` and `/etc/group`.

use std::path::Path;

use berth_ipc::{Error, Result};

use super::path::read_in_root;

/// Who the process runs as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// User id.
    pub uid: u32,
    /// Primary group id.
    pub gid: u32,
    /// Supplementary groups from `/etc/group`.
    pub additional_gids: Vec<u32>,
}

/// A decimal id: `Ok(None)` when `s` is not all digits (a name), an error when it is a
/// number out of range.
fn parse_id(what: &str, s: &str) -> Result<Option<u32>> {
    if s.is_empty() {
        return Err(Error::invalid(format!("user: empty {what}")));
    }
    if s.starts_with('-') || s.starts_with('+') {
        return Err(Error::invalid(format!("user: {what} {s:?}: negative or signed ids are refused")));
    }
    if !s.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(None);
    }
    match s.parse::<u32>() {
        Ok(u32::MAX) | Err(_) => {
            Err(Error::invalid(format!("user: {what} {s:?}: out of range (0 to 4294967294)")))
        }
        Ok(n) => Ok(Some(n)),
    }
}

fn valid_name(s: &str) -> bool {
    let mut bytes = s.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b'$'))
        && s.len() <= 256
}

/// One line of `/etc/passwd` or `/etc/group`: name, id, (gid or member list).
struct Entry<'a> {
    name: &'a str,
    id: u32,
    third: &'a str,
}

fn entries(text: &str) -> impl Iterator<Item = Entry<'_>> {
    text.lines().filter_map(|line| {
        let f: Vec<&str> = line.split(':').collect();
        if f.len() < 4 || f[0].starts_with('#') {
            return None;
        }
        let id = f[2].parse::<u32>().ok()?;
        Some(Entry { name: f[0], id, third: f[3] })
    })
}

/// Resolves `spec` against the rootfs at `rootfs`.
pub fn resolve(spec: &str, rootfs: &Path) -> Result<User> {
    let mut parts = spec.splitn(3, ':');
    let user = parts.next().unwrap_or_default();
    let group = parts.next();
    if parts.next().is_some() {
        return Err(Error::invalid(format!("user {spec:?}: expected user[:group]")));
    }
    let passwd = read_in_root(rootfs, "/etc/passwd")?;
    let (uid, name, mut gid) = match parse_id("uid", user)? {
        Some(uid) => {
            let found =
                passwd.as_deref().and_then(|p| entries(p).find(|e| e.id == uid).map(|e| e.third.to_string()));
            let gid = found.and_then(|g| g.parse::<u32>().ok()).unwrap_or(0);
            let name =
                passwd.as_deref().and_then(|p| entries(p).find(|e| e.id == uid).map(|e| e.name.to_string()));
            (uid, name, gid)
        }
        None => {
            if !valid_name(user) {
                return Err(Error::invalid(format!("user {spec:?}: {user:?} is not a valid user name")));
            }
            let passwd =
                passwd.ok_or_else(|| Error::invalid(format!("user {user:?}: image has no /etc/passwd")))?;
            let e = entries(&passwd).find(|e| e.name == user).ok_or_else(|| {
                Error::invalid(format!("user {user:?}: not found in the image's /etc/passwd"))
            })?;
            let gid = parse_id("gid", e.third)?.unwrap_or(0);
            (e.id, Some(user.to_string()), gid)
        }
    };
    let groups = read_in_root(rootfs, "/etc/group")?;
    if let Some(group) = group {
        gid = match parse_id("gid", group)? {
            Some(gid) => gid,
            None => {
                if !valid_name(group) {
                    return Err(Error::invalid(format!(
                        "user {spec:?}: {group:?} is not a valid group name"
                    )));
                }
                let text = groups
                    .as_deref()
                    .ok_or_else(|| Error::invalid(format!("group {group:?}: image has no /etc/group")))?;
                entries(text).find(|e| e.name == group).map(|e| e.id).ok_or_else(|| {
                    Error::invalid(format!("group {group:?}: not found in the image's /etc/group"))
                })?
            }
        };
    }
    let mut additional_gids = Vec::new();
    if let (Some(name), Some(text), None) = (&name, &groups, group) {
        for e in entries(text) {
            if e.id != gid && e.third.split(',').any(|m| m == name) {
                additional_gids.push(e.id);
            }
        }
    }
    Ok(User { uid, gid, additional_gids })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rootfs() -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(dir.path().join("etc")).expect("etc");
        std::fs::write(
            dir.path().join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\nwww:x:33:34::/var/www:/bin/sh\n1000:x:7:7::/:/bin/sh\n",
        )
        .expect("passwd");
        std::fs::write(dir.path().join("etc/group"), "root:x:0:\ndata:x:34:\nwheel:x:10:www\n")
            .expect("group");
        dir
    }

    #[test]
    fn numbers_and_names() {
        let r = rootfs();
        assert_eq!(resolve("0", r.path()).expect("0"), User { uid: 0, gid: 0, additional_gids: vec![] });
        assert_eq!(
            resolve("www", r.path()).expect("www"),
            User { uid: 33, gid: 34, additional_gids: vec![10] }
        );
        assert_eq!(resolve("33", r.path()).expect("33").gid, 34);
        assert_eq!(
            resolve("www:wheel", r.path()).expect("www:wheel"),
            User { uid: 33, gid: 10, additional_gids: vec![] }
        );
        assert_eq!(resolve("5:6", r.path()).expect("5:6"), User { uid: 5, gid: 6, additional_gids: vec![] });
        assert_eq!(resolve("4294967294", r.path()).expect("max").uid, 4294967294);
    }

    #[test]
    fn numeric_strings_are_never_names() {
        // `1000` is a user *name* in this passwd with uid 7; the number wins.
        let r = rootfs();
        assert_eq!(resolve("1000", r.path()).expect("1000").uid, 1000);
    }

    #[test]
    fn refused() {
        let r = rootfs();
        for bad in [
            "4294967295",
            "4294967296",
            "99999999999999999999",
            "-1",
            "+1",
            "",
            ":",
            "0:",
            "a:b:c",
            "nobody",
            "www:nogroup",
            "bad name",
            "0:-1",
        ] {
            let err = resolve(bad, r.path()).expect_err(bad);
            assert!(err.is(berth_ipc::Code::InvalidArgument), "{bad}: {err:?}");
        }
        let err = resolve("4294967295", r.path()).expect_err("max");
        assert!(err.message.contains("out of range"), "{}", err.message);
    }

    #[test]
    fn names_need_passwd() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert_eq!(resolve("12:13", dir.path()).expect("numeric").uid, 12);
        let err = resolve("www", dir.path()).expect_err("no passwd");
        assert!(err.message.contains("no /etc/passwd"), "{}", err.message);
    }
}
