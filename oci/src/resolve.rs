//! Image resolution: from an image's root descriptor through index → platform manifest →
//! config, choosing the index entry for a platform, and the layer chain the config names.
//! Pull, import, unpack, `images mount`, `images check` and the runtime's container create
//! all go through here, so they all pick the same manifest of an index.

use berth_ipc::content::proxy::ContentClient;
use berth_ipc::content::store::ContentStore;
use berth_ipc::{Code, Digest, Error, Result};

pub use berth_ipc::digest::chain_ids;

use crate::document::{self, Config, Descriptor, Index, Manifest};
use crate::media::{MAX_JSON, is_index, is_manifest};
use crate::platform::{Only, Platform};

/// How many entries an index may list.
pub const MAX_INDEX_ENTRIES: usize = 256;

/// A platform manifest with its config.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// The manifest's descriptor.
    pub desc: Descriptor,
    /// The manifest.
    pub manifest: Manifest,
    /// The config, as far as distribution reads it.
    pub config: Config,
    /// The config's bytes, for readers that want more of it (the runtime's process defaults).
    pub config_json: Vec<u8>,
}

impl Resolved {
    /// The chainID of the top layer: the parent of a container's or a view's snapshot.
    pub fn top_chain_id(&self) -> Option<Digest> {
        chain_ids(&self.config.rootfs.diff_ids).last().copied()
    }
}

/// Picks the entry of `index` for `platform`: of the manifests whose platform a host of
/// `platform` runs ([`Only`]), the most preferred (the platform itself before what it
/// falls back to: `arm/v7` before `arm/v6`, `amd64` before `386`), the first listed among
/// equals. An entry that names no platform counts as the platform itself (containerd ranks
/// it last; berth has always taken it, in pull, import and the runtime alike).
pub fn choose<'a>(index: &'a Index, platform: &Platform, what: &str) -> Result<&'a Descriptor> {
    if index.manifests.len() > MAX_INDEX_ENTRIES {
        return Err(Error::invalid(format!(
            "{what}: {} entries, over the limit of {MAX_INDEX_ENTRIES}",
            index.manifests.len()
        )));
    }
    let only = Only::new(platform);
    let rank = |d: &Descriptor| d.platform.as_ref().map_or(Some(0), |p| only.rank(p));
    index
        .manifests
        .iter()
        .enumerate()
        .filter(|(_, d)| is_manifest(&d.media_type))
        .filter_map(|(i, d)| rank(d).map(|r| ((r, i), d)))
        .min_by_key(|(key, _)| *key)
        .map(|(_, d)| d)
        .ok_or_else(|| Error::not_found(format!("{what}: no manifest for platform {platform}")))
}

/// Checks that the config promises as many layers as the manifest has.
pub fn check_layers(m: &Manifest, c: &Config, what: &str) -> Result<()> {
    if c.rootfs.diff_ids.len() != m.layers.len() {
        return Err(Error::new(
            Code::DataLoss,
            format!(
                "{what}: config lists {} diff_ids for {} layers",
                c.rootfs.diff_ids.len(),
                m.layers.len()
            ),
        ));
    }
    Ok(())
}

/// Checks a JSON document's size against [`MAX_JSON`] before it is read.
pub fn check_size(size: u64, what: &str) -> Result<()> {
    if size > MAX_JSON {
        return Err(Error::invalid(format!("{what}: {size} bytes, over the {MAX_JSON}-byte bound")));
    }
    Ok(())
}

/// A small blob's bytes from content, refusing blobs over [`MAX_JSON`] and bytes that do
/// not hash to `digest`.
pub async fn get_json(content: &ContentClient, digest: &Digest) -> Result<Vec<u8>> {
    let info = content.info(digest).await?;
    check_size(info.size, &format!("blob {digest}"))?;
    let data = content.read(digest, 0, None).await?;
    if Digest::of(&data) != *digest {
        return Err(Error::new(Code::DataLoss, format!("blob {digest}: bytes do not match the digest")));
    }
    Ok(data)
}

/// What a root descriptor's media type says it is, for error messages.
pub fn kind(mt: &str) -> &'static str {
    if is_index(mt) { "index" } else { "manifest" }
}

/// Parses the manifest `desc` names from its bytes, refusing anything else.
pub fn parse_manifest_of(desc: &Descriptor, bytes: &[u8]) -> Result<Manifest> {
    let what = format!("manifest {}", desc.digest);
    let mt = document::sniff(bytes, &desc.media_type, &what)?;
    if !is_manifest(&mt) {
        return Err(Error::invalid(format!("{what}: expected a manifest, found {mt}")));
    }
    document::parse_manifest(bytes, &what)
}

/// Completes a resolution from a manifest's and its config's bytes.
pub fn resolved(desc: Descriptor, manifest: Manifest, config_json: Vec<u8>) -> Result<Resolved> {
    let config = document::parse_config(&config_json, &format!("config {}", manifest.config.digest))?;
    check_layers(&manifest, &config, &format!("manifest {}", desc.digest))?;
    Ok(Resolved { desc, manifest, config, config_json })
}

/// Reads the tree under `root` from content without recording anything: the platform
/// manifest and config, and the index on the way if there was one.
pub async fn load(
    content: &ContentClient,
    root: &Descriptor,
    platform: &Platform,
) -> Result<(Resolved, Option<Index>)> {
    let bytes = get_json(content, &root.digest).await?;
    let what = format!("{} {}", kind(&root.media_type), root.digest);
    let mt = document::sniff(&bytes, &root.media_type, &what)?;
    let (desc, index) = if is_index(&mt) {
        let index = document::parse_index(&bytes, &what)?;
        let child = choose(&index, platform, &what)?.clone();
        (child, Some(index))
    } else {
        (root.clone(), None)
    };
    let bytes = if desc.digest == root.digest { bytes } else { get_json(content, &desc.digest).await? };
    let manifest = parse_manifest_of(&desc, &bytes)?;
    let config_json = get_json(content, &manifest.config.digest).await?;
    Ok((resolved(desc, manifest, config_json)?, index))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index(platforms: &[&str]) -> Index {
        let manifests = platforms
            .iter()
            .map(|p| {
                let mut d = Descriptor::new(crate::OCI_MANIFEST, Digest::of(p.as_bytes()), 1);
                d.platform = Some(Platform::parse(p).expect("platform"));
                d
            })
            .collect();
        Index { schema_version: 2, media_type: None, manifests, annotations: Default::default() }
    }

    fn pick(i: &Index, p: &str) -> String {
        let d = choose(i, &Platform::parse(p).expect("platform"), "index").expect("choose");
        d.platform.as_ref().map(|p| p.to_string()).unwrap_or_default()
    }

    /// The runtime used to match on the architecture only and took `linux/arm/v6` for an
    /// arm v7 host where pull had unpacked `linux/arm/v7`; both now call [`choose`].
    #[test]
    fn the_platform_choice_honours_variants() {
        let i = index(&["linux/arm/v6", "linux/arm/v7", "linux/arm64/v7", "linux/arm64/v8", "linux/amd64"]);
        assert_eq!(pick(&i, "linux/arm/v7"), "linux/arm/v7");
        assert_eq!(pick(&i, "linux/arm/v6"), "linux/arm/v6");
        // arm64's `v8` is its default: an arm64 request matches `arm64` and `arm64/v8`, not
        // `arm64/v7` (before containerd's rules, any arm64 variant: the first listed).
        assert_eq!(pick(&i, "linux/arm64/v8"), "linux/arm64/v8");
        assert_eq!(pick(&i, "linux/arm64"), "linux/arm64/v8");
        assert_eq!(pick(&i, "linux/amd64"), "linux/amd64");
        let e = choose(&i, &Platform::parse("linux/s390x").expect("platform"), "index 1").expect_err("none");
        assert!(e.message.contains("index 1: no manifest for platform linux/s390x"), "{}", e.message);
    }

    #[test]
    fn the_most_preferred_platform_wins_over_the_first_listed() {
        let i = index(&["linux/386", "linux/arm/v5", "linux/arm/v6", "linux/arm/v7", "linux/amd64"]);
        assert_eq!(pick(&i, "linux/arm/v7"), "linux/arm/v7");
        assert_eq!(pick(&i, "linux/arm/v8"), "linux/arm/v7", "the nearest older variant");
        assert_eq!(pick(&i, "linux/arm64"), "linux/arm/v7", "arm64 runs 32-bit arm last");
        assert_eq!(pick(&i, "linux/amd64"), "linux/amd64", "386 only as a fallback");
        assert_eq!(pick(&index(&["linux/386", "linux/arm/v6"]), "linux/amd64"), "linux/386");
        assert_eq!(pick(&index(&["linux/arm/v5", "linux/arm/v6"]), "linux/arm"), "linux/arm/v6");
        let v7 = index(&["linux/arm/v7"]);
        assert!(
            choose(&v7, &Platform::parse("linux/arm/v6").expect("p"), "i").is_err(),
            "v6 does not run v7"
        );
    }

    #[test]
    fn an_entry_without_a_platform_counts_as_the_platform_itself() {
        let mut i = index(&["linux/arm/v6", "linux/amd64"]);
        i.manifests[1].platform = None;
        assert_eq!(pick(&i, "linux/arm/v7"), "", "before a fallback");
        let i = index(&["linux/arm/v7", "linux/arm/v6"]);
        let mut j = i.clone();
        j.manifests.insert(0, Descriptor::new(crate::OCI_MANIFEST, Digest::of(b"none"), 1));
        assert_eq!(pick(&j, "linux/arm/v7"), "", "the first listed among equals");
        assert_eq!(pick(&i, "linux/armhf"), "linux/arm/v7", "aliases are normalized");
    }

    #[test]
    fn an_oversized_index_or_document_is_refused() {
        let i = index(&vec!["linux/amd64"; MAX_INDEX_ENTRIES + 1]);
        assert!(choose(&i, &Platform::host(), "i").is_err());
        assert!(check_size(MAX_JSON, "d").is_ok());
        let e = check_size(MAX_JSON + 1, "config x").expect_err("over");
        assert!(e.message.starts_with("config x:"), "{}", e.message);
    }
}
