//! How each record exposes its fields to containerd-style filters
//! ([`berth_ipc::filter`]).

use std::borrow::Cow;

use berth_ipc::filter::{Adaptor, label_field};
use berth_ipc::metadata::{Container, ContentRecord, Image, Lease, Sandbox, SnapshotRecord};

/// Fields: `name`, `target.digest`, `target.mediatype`, `target.size`, `labels.<k>`.
pub struct ImageFields<'a>(pub &'a Image);
/// Fields: `id`, `image`, `runtime.name`, `snapshotter`, `snapshot_key`, `labels.<k>`.
pub struct ContainerFields<'a>(pub &'a Container);
/// Fields: `id`, `runtime.name`, `labels.<k>`.
pub struct SandboxFields<'a>(pub &'a Sandbox);
/// Fields: `digest`, `size`, `labels.<k>`.
pub struct ContentFields<'a>(pub &'a ContentRecord);
/// Fields: `key`, `parent`, `snapshotter`, `labels.<k>`.
pub struct SnapshotFields<'a>(pub &'a SnapshotRecord);
/// Fields: `id`, `labels.<k>`.
pub struct LeaseFields<'a>(pub &'a Lease);

fn s(v: &str) -> Option<Cow<'_, str>> {
    Some(Cow::Borrowed(v))
}

fn path_strs(path: &[String]) -> Option<(&str, &[String])> {
    path.split_first().map(|(h, rest)| (h.as_str(), rest))
}

impl Adaptor for ImageFields<'_> {
    fn field(&self, path: &[String]) -> Option<Cow<'_, str>> {
        let img = self.0;
        match path_strs(path)? {
            ("name", []) => s(&img.name),
            ("labels", rest) => label_field(&img.labels, rest),
            ("target", [f]) => match f.as_str() {
                "digest" => Some(Cow::Owned(img.target.digest.to_string())),
                "mediatype" | "media_type" => s(&img.target.media_type),
                "size" => Some(Cow::Owned(img.target.size.to_string())),
                _ => None,
            },
            _ => None,
        }
    }
}

impl Adaptor for ContainerFields<'_> {
    fn field(&self, path: &[String]) -> Option<Cow<'_, str>> {
        let c = self.0;
        match path_strs(path)? {
            ("id", []) => s(&c.id),
            ("image", []) => s(&c.image),
            ("runtime", [f]) if f == "name" => s(&c.runtime.name),
            ("snapshotter", []) => s(&c.snapshotter),
            ("snapshot_key" | "snapshotkey", []) => s(&c.snapshot_key),
            ("labels", rest) => label_field(&c.labels, rest),
            _ => None,
        }
    }
}

impl Adaptor for SandboxFields<'_> {
    fn field(&self, path: &[String]) -> Option<Cow<'_, str>> {
        let x = self.0;
        match path_strs(path)? {
            ("id", []) => s(&x.id),
            ("runtime", [f]) if f == "name" => s(&x.runtime.name),
            ("labels", rest) => label_field(&x.labels, rest),
            _ => None,
        }
    }
}

impl Adaptor for ContentFields<'_> {
    fn field(&self, path: &[String]) -> Option<Cow<'_, str>> {
        let r = self.0;
        match path_strs(path)? {
            ("digest", []) => Some(Cow::Owned(r.digest.to_string())),
            ("size", []) => Some(Cow::Owned(r.size.to_string())),
            ("labels", rest) => label_field(&r.labels, rest),
            _ => None,
        }
    }
}

impl Adaptor for SnapshotFields<'_> {
    fn field(&self, path: &[String]) -> Option<Cow<'_, str>> {
        let r = self.0;
        match path_strs(path)? {
            ("key" | "name", []) => s(&r.key),
            ("parent", []) => r.parent.as_deref().map(Cow::Borrowed),
            ("snapshotter", []) => s(&r.snapshotter),
            ("labels", rest) => label_field(&r.labels, rest),
            _ => None,
        }
    }
}

impl Adaptor for LeaseFields<'_> {
    fn field(&self, path: &[String]) -> Option<Cow<'_, str>> {
        let l = self.0;
        match path_strs(path)? {
            ("id", []) => s(&l.id),
            ("labels", rest) => label_field(&l.labels, rest),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use berth_ipc::digest::Digest;
    use berth_ipc::filter::Filters;
    use berth_ipc::metadata::Descriptor;

    use super::*;

    fn image() -> Image {
        Image {
            name: "docker.io/library/alpine:3".into(),
            target: Descriptor {
                media_type: "application/vnd.oci.image.index.v1+json".into(),
                digest: Digest::of(b"x"),
                size: 10,
            },
            labels: [("a.b/c".to_string(), "yes".to_string())].into(),
            created: 0,
            updated: 0,
        }
    }

    fn passes(filter: &str, img: &Image) -> bool {
        Filters::parse(&[filter]).expect("parses").matches(&ImageFields(img))
    }

    #[test]
    fn image_fields() {
        let img = image();
        assert!(passes("name==docker.io/library/alpine:3", &img));
        assert!(passes("name~=alpine", &img));
        assert!(!passes("name==alpine", &img));
        assert!(passes(&format!("target.digest=={}", Digest::of(b"x")), &img));
        assert!(passes("target.mediatype~=index", &img));
        assert!(passes("labels.\"a.b/c\"==yes", &img));
        assert!(passes("labels.\"a.b/c\"", &img));
        assert!(!passes("labels.other", &img));
        assert!(passes("name~=alpine,labels.\"a.b/c\"!=no", &img));
    }
}
