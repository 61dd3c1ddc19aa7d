//! Namespaces in the key index. The service keeps one key space per backend, and every
//! snapshot's key in it is `<namespace>/<key>`: namespaces are identifiers, which cannot
//! contain `/`, so the split at the first `/` is unambiguous (`a` + `b-c` and `a-b` + `c`
//! are `a/b-c` and `a-b/c`). Requests name a namespace and a key; the service scopes the
//! key (and the parent: a parent is always in the same namespace) before the backend sees
//! it, and strips the namespace from what it answers. A namespace can therefore only ever
//! reach its own snapshots.

use berth_ipc::snapshot::Info;
use berth_ipc::{Error, Result};

/// The namespace that snapshots recorded before namespaces existed are moved into.
pub const LEGACY_NAMESPACE: &str = "default";

/// The index key of `key` in namespace `ns`.
pub fn scoped(ns: &str, key: &str) -> Result<String> {
    berth_ipc::names::validate_namespace(ns)
        .map_err(|e| Error::invalid(format!("snapshot {key}: {}", e.message)))?;
    if key.is_empty() {
        return Err(Error::invalid(format!("snapshot key in namespace {ns}: empty")));
    }
    Ok(format!("{ns}/{key}"))
}

/// [`scoped`] of an optional parent.
pub fn scoped_opt(ns: &str, key: Option<&str>) -> Result<Option<String>> {
    key.map(|k| scoped(ns, k)).transpose()
}

/// `(namespace, key)` of an index key.
pub fn split(full: &str) -> (&str, &str) {
    full.split_once('/').unwrap_or(("", full))
}

/// The key of `full` as namespace `ns` sees it, if it is `ns`'s.
pub fn strip<'a>(ns: &str, full: &'a str) -> Option<&'a str> {
    full.strip_prefix(ns).and_then(|rest| rest.strip_prefix('/'))
}

/// `info` (named by index keys) as its namespace sees it.
pub fn local(mut info: Info) -> Info {
    info.name = split(&info.name).1.to_string();
    info.parent = info.parent.map(|p| split(&p).1.to_string());
    info
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_of_namespaces_sharing_a_dash_do_not_collide() {
        let a = scoped("a", "b-c").expect("a");
        let b = scoped("a-b", "c").expect("a-b");
        assert_ne!(a, b);
        assert_eq!(split(&a), ("a", "b-c"));
        assert_eq!(split(&b), ("a-b", "c"));
        assert_eq!(strip("a", &b), None);
        assert_eq!(strip("a-b", &b), Some("c"));
        assert_eq!(split(&scoped("ns", "x/y").expect("slash")), ("ns", "x/y"));
    }

    #[test]
    fn bad_namespaces_are_refused_by_name() {
        let e = scoped("a/b", "k").expect_err("slash");
        assert_eq!(e.code, berth_ipc::Code::InvalidArgument);
        assert!(e.message.contains("snapshot k"), "{e}");
        assert!(scoped("", "k").is_err());
        assert!(scoped("ns", "").is_err());
    }
}
