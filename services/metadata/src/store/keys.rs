//! Building and reading the keys of the schema drawn in the crate doc. Parts are joined
//! with a NUL byte, which no validated name, key or digest can contain, so a prefix scan of
//! one level never reaches into another.

use berth_ipc::digest::Digest;
use berth_ipc::metadata::LeaseResource;

/// The separator between key parts.
pub const SEP: u8 = 0;

/// The format version key.
pub const VERSION: &[u8] = b"\0version";

/// Kinds of object under a namespace (`o/<ns>/<kind>/…`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `i`: images by name.
    Image,
    /// `c`: containers by id.
    Container,
    /// `b`: content records by digest.
    Content,
    /// `s`: snapshot records by snapshotter and key.
    Snapshot,
    /// `l`: leases by id.
    Lease,
    /// `r`: lease resources by lease id and resource.
    LeaseResource,
    /// `x`: pod sandboxes by id.
    Sandbox,
}

impl Kind {
    fn tag(self) -> &'static [u8] {
        match self {
            Kind::Image => b"i",
            Kind::Container => b"c",
            Kind::Content => b"b",
            Kind::Snapshot => b"s",
            Kind::Lease => b"l",
            Kind::LeaseResource => b"r",
            Kind::Sandbox => b"x",
        }
    }
}

fn join(parts: &[&[u8]]) -> Vec<u8> {
    let mut key = Vec::with_capacity(parts.iter().map(|p| p.len() + 1).sum());
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            key.push(SEP);
        }
        key.extend_from_slice(part);
    }
    key
}

/// Prefix of `parts` with a trailing separator, for scanning one level.
fn prefix(parts: &[&[u8]]) -> Vec<u8> {
    let mut key = join(parts);
    key.push(SEP);
    key
}

/// `n/<ns>`: a namespace record.
pub fn namespace(ns: &str) -> Vec<u8> {
    join(&[b"n", ns.as_bytes()])
}

/// Prefix of every namespace record.
pub fn namespaces() -> Vec<u8> {
    prefix(&[b"n"])
}

/// Prefix of everything a namespace holds.
pub fn namespace_objects(ns: &str) -> Vec<u8> {
    prefix(&[b"o", ns.as_bytes()])
}

/// `o/<ns>/<kind>/<name>`: one object.
pub fn object(ns: &str, kind: Kind, name: &str) -> Vec<u8> {
    join(&[b"o", ns.as_bytes(), kind.tag(), name.as_bytes()])
}

/// Prefix of every object of `kind` in `ns`.
pub fn objects(ns: &str, kind: Kind) -> Vec<u8> {
    prefix(&[b"o", ns.as_bytes(), kind.tag()])
}

/// `o/<ns>/b/<digest>`: a content record.
pub fn content(ns: &str, digest: &Digest) -> Vec<u8> {
    object(ns, Kind::Content, &digest.to_string())
}

/// `o/<ns>/s/<snapshotter>/<key>`: a snapshot record.
pub fn snapshot(ns: &str, snapshotter: &str, key: &str) -> Vec<u8> {
    join(&[b"o", ns.as_bytes(), Kind::Snapshot.tag(), snapshotter.as_bytes(), key.as_bytes()])
}

/// Prefix of one snapshotter's records in `ns`.
pub fn snapshots(ns: &str, snapshotter: &str) -> Vec<u8> {
    prefix(&[b"o", ns.as_bytes(), Kind::Snapshot.tag(), snapshotter.as_bytes()])
}

/// `o/<ns>/r/<lease>/<resource>`: one resource of a lease.
pub fn lease_resource(ns: &str, lease: &str, res: &LeaseResource) -> Vec<u8> {
    let mut key = prefix(&[b"o", ns.as_bytes(), Kind::LeaseResource.tag(), lease.as_bytes()]);
    key.extend_from_slice(&resource(res));
    key
}

/// Prefix of one lease's resources.
pub fn lease_resources(ns: &str, lease: &str) -> Vec<u8> {
    prefix(&[b"o", ns.as_bytes(), Kind::LeaseResource.tag(), lease.as_bytes()])
}

/// A lease resource as key parts: `b/<digest>`, `i/<ref>`, `s/<snapshotter>/<key>`.
fn resource(res: &LeaseResource) -> Vec<u8> {
    match res {
        LeaseResource::Content(d) => join(&[b"b", d.to_string().as_bytes()]),
        LeaseResource::Ingest(r) => join(&[b"i", r.as_bytes()]),
        LeaseResource::Snapshot { snapshotter, key } => join(&[b"s", snapshotter.as_bytes(), key.as_bytes()]),
    }
}

/// Reads a lease resource back from the tail of its key (after the lease prefix).
pub fn parse_resource(tail: &[u8]) -> Option<LeaseResource> {
    let mut parts = tail.splitn(3, |b| *b == SEP);
    let tag = parts.next()?;
    let a = std::str::from_utf8(parts.next()?).ok()?;
    match tag {
        b"b" => Digest::parse(a).ok().map(LeaseResource::Content),
        b"i" => Some(LeaseResource::Ingest(a.to_string())),
        b"s" => {
            let key = std::str::from_utf8(parts.next()?).ok()?;
            Some(LeaseResource::Snapshot { snapshotter: a.to_string(), key: key.to_string() })
        }
        _ => None,
    }
}

/// `k/b/<digest>`: the blob has had a record in some namespace (see `gc`).
pub fn known_content(digest: &Digest) -> Vec<u8> {
    join(&[b"k", b"b", digest.to_string().as_bytes()])
}

/// Prefix of every known blob.
pub fn known_contents() -> Vec<u8> {
    prefix(&[b"k", b"b"])
}

/// `k/s/<snapshotter>/<namespace>/<key>` (`key` is the snapshot service's index key
/// `<namespace>/<key>`): the snapshot has had a record in that namespace.
pub fn known_snapshot(snapshotter: &str, key: &str) -> Vec<u8> {
    join(&[b"k", b"s", snapshotter.as_bytes(), key.as_bytes()])
}

/// Prefix of every known snapshot (`<snapshotter>/<key>` follows).
pub fn known_snapshots_all() -> Vec<u8> {
    prefix(&[b"k", b"s"])
}

/// The last part of a key, as a string.
pub fn last_part(key: &[u8]) -> Option<&str> {
    let start = key.iter().rposition(|b| *b == SEP).map_or(0, |i| i + 1);
    std::str::from_utf8(&key[start..]).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout() {
        assert_eq!(namespace("a"), b"n\0a");
        assert_eq!(object("a", Kind::Image, "x/y:1"), b"o\0a\0i\0x/y:1");
        assert!(object("a", Kind::Image, "x").starts_with(&objects("a", Kind::Image)));
        assert!(!object("ab", Kind::Image, "x").starts_with(&namespace_objects("a")));
        assert_eq!(snapshot("a", "overlayfs", "k/1"), b"o\0a\0s\0overlayfs\0k/1");
    }

    #[test]
    fn resources_round_trip() {
        let d = Digest::of(b"x");
        for res in [
            LeaseResource::Content(d),
            LeaseResource::Ingest("ref-1".into()),
            LeaseResource::Snapshot { snapshotter: "native".into(), key: "a/b".into() },
        ] {
            let key = lease_resource("ns", "l1", &res);
            let tail = &key[lease_resources("ns", "l1").len()..];
            assert_eq!(parse_resource(tail), Some(res));
        }
    }
}
