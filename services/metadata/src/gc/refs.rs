//! containerd's garbage-collection labels, kept under their names so images and tools
//! that set them work unchanged.
//!
//! - `containerd.io/gc.root` (any value): the record is a root.
//! - `containerd.io/gc.ref.content` and `containerd.io/gc.ref.content.<anything>`: the
//!   value is a digest the record references.
//! - `containerd.io/gc.ref.snapshot.<snapshotter>` and
//!   `containerd.io/gc.ref.snapshot.<snapshotter>/<anything>`: the value is a snapshot key
//!   of that snapshotter.

use berth_ipc::digest::Digest;
use berth_ipc::metadata::Labels;

/// Marks a record as a root.
pub const GC_ROOT: &str = "containerd.io/gc.root";
/// References a blob.
pub const GC_REF_CONTENT: &str = "containerd.io/gc.ref.content";
/// References a snapshot: followed by `.<snapshotter>`.
pub const GC_REF_SNAPSHOT: &str = "containerd.io/gc.ref.snapshot.";

/// A node of the reference graph inside one namespace.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Node {
    /// A blob.
    Content(Digest),
    /// A snapshot of a snapshotter.
    Snapshot(String, String),
}

/// Whether the labels make their record a root.
pub fn is_root(labels: &Labels) -> bool {
    labels.contains_key(GC_ROOT)
}

/// The references the labels hold. Values that do not parse (a bad digest) are skipped:
/// a label cannot make GC fail.
pub fn references(labels: &Labels) -> impl Iterator<Item = Node> + '_ {
    labels.iter().filter_map(|(k, v)| {
        if let Some(rest) = k.strip_prefix(GC_REF_CONTENT) {
            if rest.is_empty() || rest.starts_with('.') {
                return Digest::parse(v).ok().map(Node::Content);
            }
            return None;
        }
        let rest = k.strip_prefix(GC_REF_SNAPSHOT)?;
        let snapshotter = rest.split('/').next().unwrap_or_default();
        (!snapshotter.is_empty() && !v.is_empty()).then(|| Node::Snapshot(snapshotter.to_string(), v.clone()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_containerd_labels() {
        let d1 = Digest::of(b"1");
        let d2 = Digest::of(b"2");
        let labels: Labels = [
            ("containerd.io/gc.ref.content".to_string(), d1.to_string()),
            ("containerd.io/gc.ref.content.l.0".to_string(), d2.to_string()),
            ("containerd.io/gc.ref.contentx".to_string(), d2.to_string()),
            ("containerd.io/gc.ref.content.bad".to_string(), "nope".to_string()),
            ("containerd.io/gc.ref.snapshot.overlayfs".to_string(), "k1".to_string()),
            ("containerd.io/gc.ref.snapshot.native/2".to_string(), "k2".to_string()),
            ("other".to_string(), "x".to_string()),
        ]
        .into();
        let mut refs: Vec<Node> = references(&labels).collect();
        refs.sort();
        let mut want = vec![
            Node::Content(d1),
            Node::Content(d2),
            Node::Snapshot("overlayfs".into(), "k1".into()),
            Node::Snapshot("native".into(), "k2".into()),
        ];
        want.sort();
        assert_eq!(refs, want);
        assert!(!is_root(&labels));
    }
}
