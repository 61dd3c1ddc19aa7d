//! Names inside a layer: every entry name (and hardlink target) is split into components and
//! checked before anything touches the disk. Absolute names, `..` anywhere, empty names, NUL
//! bytes and over-long names or components are refused; `.` components are dropped, so
//! `./etc/passwd` and `etc/passwd` are the same entry.

use berth_ipc::{Error, Result};

/// Longest entry name accepted, in bytes (Linux `PATH_MAX`).
pub const MAX_PATH: usize = 4096;
/// Longest component accepted, in bytes (Linux `NAME_MAX`).
pub const MAX_COMPONENT: usize = 255;

/// A checked entry name: its components, none empty, `.` or `..`. No components means the
/// layer's root itself (`./`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryPath {
    comps: Vec<Vec<u8>>,
}

/// Shows a raw name in an error, shortened and lossy.
pub fn show(raw: &[u8]) -> String {
    let s = String::from_utf8_lossy(&raw[..raw.len().min(128)]).replace('\0', "\\0");
    if raw.len() > 128 { format!("{s}…") } else { s }
}

impl EntryPath {
    /// Checks `raw`, a name as it stands in the archive.
    pub fn parse(raw: &[u8]) -> Result<EntryPath> {
        let bad = |why: &str| Error::invalid(format!("layer entry {:?}: {why}", show(raw)));
        if raw.is_empty() {
            return Err(bad("empty name"));
        }
        if raw.contains(&0) {
            return Err(bad("NUL byte in name"));
        }
        if raw.len() > MAX_PATH {
            return Err(bad("name too long"));
        }
        if raw[0] == b'/' {
            return Err(bad("absolute name"));
        }
        let mut comps = Vec::new();
        for c in raw.split(|b| *b == b'/') {
            match c {
                b"" | b"." => {}
                b".." => return Err(bad("name leaves the layer root")),
                c if c.len() > MAX_COMPONENT => return Err(bad("component too long")),
                c => comps.push(c.to_vec()),
            }
        }
        Ok(EntryPath { comps })
    }

    /// The components.
    pub fn components(&self) -> &[Vec<u8>] {
        &self.comps
    }

    /// Whether this is the layer's root.
    pub fn is_root(&self) -> bool {
        self.comps.is_empty()
    }

    /// The parent's components and the last component; `None` for the root.
    pub fn split_last(&self) -> Option<(&[Vec<u8>], &[u8])> {
        self.comps.split_last().map(|(last, parent)| (parent, last.as_slice()))
    }

    /// The components joined with `/`.
    pub fn joined(&self) -> Vec<u8> {
        join(&self.comps)
    }
}

/// Joins components with `/`.
pub fn join(comps: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::with_capacity(comps.iter().map(|c| c.len() + 1).sum());
    for (i, c) in comps.iter().enumerate() {
        if i > 0 {
            out.push(b'/');
        }
        out.extend_from_slice(c);
    }
    out
}

/// Whether `path` is `prefix` or lies under it (component-wise).
pub fn is_under(path: &[u8], prefix: &[u8]) -> bool {
    prefix.is_empty()
        || (path.starts_with(prefix) && (path.len() == prefix.len() || path[prefix.len()] == b'/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn comps(raw: &str) -> Vec<String> {
        let p = EntryPath::parse(raw.as_bytes()).expect("valid");
        p.components().iter().map(|c| String::from_utf8_lossy(c).into_owned()).collect()
    }

    #[test]
    fn dots_and_slashes_are_normalized() {
        assert_eq!(comps("./etc//passwd"), ["etc", "passwd"]);
        assert_eq!(comps("usr/lib/"), ["usr", "lib"]);
        assert!(EntryPath::parse(b"./").expect("root").is_root());
    }

    #[test]
    fn escapes_and_junk_are_refused() {
        for raw in [&b"../x"[..], b"/abs", b"a/../../x", b"a/..", b"", b"a\0b"] {
            let err = EntryPath::parse(raw).expect_err("refused");
            assert_eq!(err.code, berth_ipc::Code::InvalidArgument, "{raw:?}");
        }
        assert!(EntryPath::parse(&vec![b'a'; 256]).is_err());
        assert!(EntryPath::parse(&b"a/".repeat(2100)).is_err());
        let err = EntryPath::parse(b"/abs").expect_err("refused");
        assert_eq!(err.message, "layer entry \"/abs\": absolute name");
    }

    #[test]
    fn under_is_component_wise() {
        assert!(is_under(b"a/b", b"a"));
        assert!(is_under(b"a", b"a"));
        assert!(!is_under(b"ab", b"a"));
        assert!(is_under(b"x", b""));
    }
}
