//! `images import`: an OCI image layout tar (`index.json`, `blobs/sha256/…`, as skopeo's
//! `oci-archive:` writes) or a docker-archive (`manifest.json`, as `docker save` writes) into
//! content, recorded and unpacked, image records last. Every blob is streamed from the tar
//! into content under the session's lease; blobs named by digest are verified by the content
//! service, others are hashed on the way. JSON inside the archive is size-bounded.

use std::collections::HashMap;
use std::path::Path;

use berth_ipc::content::proxy::RemoteWriter;
use berth_ipc::content::store::ContentWriter;
use berth_ipc::{Digest, Error, Result};
use serde::Deserialize;
use sha2::{Digest as _, Sha256};

use crate::Services;
use crate::archive::{self, Item};
use crate::image::{self, MAX_INDEX_ENTRIES};
use crate::oci::{self, Descriptor, Manifest, Platform};
use crate::reference::normalize;
pub use crate::rootfs::import_rootfs_tar;
use crate::session::{self, Session};

/// How to import.
#[derive(Debug, Clone, Default)]
pub struct ImportOptions {
    /// Name the (single) image this, instead of the name the archive gives.
    pub name: Option<String>,
    /// The repository an image the archive names only by a bare tag is imported under
    /// (`BASE:TAG`), as `ctr images import --base-name`.
    pub base_name: Option<String>,
    /// Platform to unpack; the host's when `None`.
    pub platform: Option<Platform>,
    /// Store and record only; do not unpack.
    pub no_unpack: bool,
    /// Snapshotter; `overlayfs` when `None`.
    pub snapshotter: Option<String>,
}

/// An image an import created or retargeted.
#[derive(Debug, Clone)]
pub struct Imported {
    /// The image's (normalized) name.
    pub name: String,
    /// Its root descriptor.
    pub target: Descriptor,
    /// The chainID of its unpacked top layer, if unpacked.
    pub chain_id: Option<Digest>,
}

/// A stored archive file.
#[derive(Debug, Clone)]
struct Blob {
    digest: Digest,
    size: u64,
    head: Vec<u8>,
}

/// Imports the OCI layout tar or docker-archive at `path` into namespace `ns`.
pub async fn import_archive(
    services: &Services,
    ns: &str,
    path: &Path,
    opts: &ImportOptions,
) -> Result<Vec<Imported>> {
    let mut sess = Session::open(services, ns, "import").await?;
    if let Some(s) = &opts.snapshotter {
        sess.snapshotter = s.clone();
    }
    let result = run(&sess, path, opts).await;
    let closed = sess.close().await;
    let out = result?;
    closed?;
    Ok(out)
}

async fn run(sess: &Session, path: &Path, opts: &ImportOptions) -> Result<Vec<Imported>> {
    let (files, smalls) = ingest_all(sess, path).await?;
    let platform = opts.platform.clone().unwrap_or_else(Platform::host);
    let roots = if let Some(index) = smalls.get("index.json") {
        oci_roots(index, opts)?
    } else if let Some(manifest) = smalls.get("manifest.json") {
        docker_roots(sess, manifest, &files, opts).await?
    } else {
        return Err(Error::invalid(format!(
            "archive {}: neither index.json nor manifest.json: not an OCI layout or docker-archive",
            path.display()
        )));
    };
    let mut out = Vec::new();
    for (names, desc) in roots {
        let chain_id = if opts.no_unpack {
            image::record_tree(sess, &desc).await?;
            None
        } else {
            let resolved = image::resolve(sess, &desc, &platform).await?;
            image::record_and_unpack(sess, &resolved, image::Layers::Unpack).await?
        };
        for name in names {
            image::set_image(sess, &name, &desc).await?;
            out.push(Imported { name, target: desc.clone(), chain_id });
        }
    }
    Ok(out)
}

/// Streams every regular file of the archive into content.
async fn ingest_all(
    sess: &Session,
    path: &Path,
) -> Result<(HashMap<String, Blob>, HashMap<String, Vec<u8>>)> {
    let mut rx = archive::read(path)?;
    let salt = Digest::of(path.display().to_string().as_bytes());
    let mut files: HashMap<String, Blob> = HashMap::new();
    let mut smalls = HashMap::new();
    let mut links = Vec::new();
    let mut current: Option<(String, Ingest)> = None;
    while let Some(item) = rx.recv().await {
        match item? {
            Item::Small { name, data } => {
                if smalls.insert(name.clone(), data).is_some() {
                    return Err(Error::invalid(format!("archive {}: {name} appears twice", path.display())));
                }
            }
            Item::Link { name, target } => links.push((name, target)),
            Item::Begin { name, size } => {
                let ing = Ingest::start(sess, &salt, &name, size).await?;
                current = Some((name, ing));
            }
            Item::Data(d) => {
                if let Some((_, ing)) = current.as_mut() {
                    ing.write(d).await?;
                }
            }
            Item::End => {
                if let Some((name, ing)) = current.take()
                    && let Some(b) = ing.finish().await?
                {
                    sess.proved(b.digest);
                    files.insert(name, b);
                }
            }
        }
    }
    for _ in 0..4 {
        for (name, target) in &links {
            if let Some(b) = files.get(target).cloned() {
                files.insert(name.clone(), b);
            }
        }
    }
    Ok((files, smalls))
}

/// One file being stored.
struct Ingest {
    writer: Option<RemoteWriter>,
    hasher: Option<Sha256>,
    known: Option<Digest>,
    size: u64,
    written: u64,
    head: Vec<u8>,
    skip: bool,
}

impl Ingest {
    async fn start(sess: &Session, salt: &Digest, name: &str, size: u64) -> Result<Ingest> {
        let known =
            name.strip_prefix("blobs/sha256/").and_then(|h| Digest::parse(&format!("sha256:{h}")).ok());
        let legacy = name.ends_with("/json") || name.ends_with("/VERSION");
        let mut ing =
            Ingest { writer: None, hasher: None, known, size, written: 0, head: Vec::new(), skip: legacy };
        if legacy {
            return Ok(ing);
        }
        match known {
            // Lease first, look second, so GC cannot take the blob in between.
            Some(d)
                if {
                    sess.protect(d).await?;
                    sess.has_blob(&d).await?.is_some()
                } =>
            {
                ing.skip = true
            }
            Some(d) => ing.writer = Some(sess.writer(&format!("import-{d}"), Some((d, size))).await?),
            None => {
                let r = Digest::of(format!("{salt}\0{name}").as_bytes());
                ing.writer = Some(sess.writer(&format!("import-{r}"), None).await?);
                ing.hasher = Some(Sha256::new());
            }
        }
        Ok(ing)
    }

    async fn write(&mut self, data: Vec<u8>) -> Result<()> {
        if self.head.len() < 8 {
            self.head.extend(data.iter().take(8 - self.head.len()));
        }
        let first = self.written == 0;
        self.written += data.len() as u64;
        if let Some(h) = self.hasher.as_mut() {
            h.update(&data);
        }
        match self.writer.as_mut() {
            Some(w) if first => w.write_at(0, data).await.map(drop),
            Some(w) => w.push(data).await,
            None => Ok(()),
        }
    }

    async fn finish(self) -> Result<Option<Blob>> {
        let digest = match (self.known, self.hasher) {
            (_, Some(h)) => Digest::from_sha256(h.finalize().into()),
            (Some(d), None) => d,
            (None, None) => return Ok(None),
        };
        if self.skip && self.known.is_none() {
            return Ok(None);
        }
        if let Some(mut w) = self.writer {
            if self.written == 0 && w.offset() != 0 {
                w.write_at(0, Vec::new()).await?;
            }
            session::commit(w, self.size, digest).await?;
        }
        Ok(Some(Blob { digest, size: self.size, head: self.head }))
    }
}

/// The images an OCI layout's `index.json` names: (names, root descriptor).
fn oci_roots(index: &[u8], opts: &ImportOptions) -> Result<Vec<(Vec<String>, Descriptor)>> {
    let index = oci::parse_index(index, "index.json")?;
    if index.manifests.len() > MAX_INDEX_ENTRIES {
        return Err(Error::invalid(format!("index.json: {} entries, over the limit", index.manifests.len())));
    }
    if opts.name.is_some() && index.manifests.len() != 1 {
        return Err(Error::invalid("index.json: --name needs an archive of exactly one image"));
    }
    let mut out = Vec::new();
    for d in &index.manifests {
        let name = entry_name(d, opts)?;
        if !(oci::is_index(&d.media_type) || oci::is_manifest(&d.media_type)) {
            return Err(Error::invalid(format!(
                "index.json: entry {} has media type {:?}",
                d.digest, d.media_type
            )));
        }
        if let Some((_, other)) = out.iter().find(|(n, _): &&(Vec<String>, Descriptor)| n[0] == name)
            && other.digest != d.digest
        {
            return Err(Error::invalid(format!(
                "index.json: {name} names both {} and {}",
                other.digest, d.digest
            )));
        }
        out.push((vec![name], d.clone()));
    }
    Ok(out)
}

const REF_NAME: &str = "org.opencontainers.image.ref.name";

/// An index entry's image name: `--name`, else `io.containerd.image.name`, else a full
/// reference in `ref.name`, else a bare tag in `ref.name` under `--base-name`.
fn entry_name(d: &Descriptor, opts: &ImportOptions) -> Result<String> {
    let ctr = d.annotations.get("io.containerd.image.name");
    match (&opts.name, ctr, d.annotations.get(REF_NAME)) {
        (Some(n), _, _) | (None, Some(n), _) => normalize(n),
        (None, None, Some(r)) if r.contains('/') || r.contains(':') || r.contains('@') => normalize(r),
        (None, None, Some(tag)) => match &opts.base_name {
            Some(base) => normalize(&format!("{base}:{tag}")).map_err(|e| {
                Error::invalid(format!(
                    "index.json: entry {}: --base-name {base:?} with tag {tag:?}: {}",
                    d.digest, e.message
                ))
            }),
            None => Err(Error::invalid(format!(
                "index.json: entry {} is named only by the tag {tag:?}: pass --base-name REPO to import it as REPO:{tag}, or --name",
                d.digest
            ))),
        },
        (None, None, None) => Err(Error::invalid(format!(
            "index.json: entry {} has no image name: pass --name to import it under",
            d.digest
        ))),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DockerEntry {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    layers: Vec<String>,
}

/// The images a docker-archive's `manifest.json` names; writes a schema 2 manifest for each.
async fn docker_roots(
    sess: &Session,
    manifest: &[u8],
    files: &HashMap<String, Blob>,
    opts: &ImportOptions,
) -> Result<Vec<(Vec<String>, Descriptor)>> {
    let entries: Vec<DockerEntry> =
        serde_json::from_slice(manifest).map_err(|e| Error::invalid(format!("manifest.json: {e}")))?;
    let tags: usize = entries.iter().map(|e| e.repo_tags.as_ref().map_or(0, Vec::len)).sum();
    if entries.len() > MAX_INDEX_ENTRIES || tags > MAX_INDEX_ENTRIES {
        return Err(Error::invalid(format!(
            "manifest.json: {} images, {tags} tags, over the limit of {MAX_INDEX_ENTRIES}",
            entries.len()
        )));
    }
    if opts.name.is_some() && entries.len() != 1 {
        return Err(Error::invalid("manifest.json: --name needs an archive of exactly one image"));
    }
    let find = |n: &str| {
        archive::clean(n)
            .and_then(|n| files.get(&n))
            .ok_or_else(|| Error::invalid(format!("manifest.json: {n:?} is not in the archive")))
    };
    let mut out = Vec::new();
    for e in entries {
        let c = find(&e.config)?;
        let mut layers = Vec::new();
        for l in &e.layers {
            let b = find(l)?;
            layers.push(Descriptor::new(oci::layer_type_by_magic(&b.head, true), b.digest, b.size));
        }
        let m = Manifest {
            schema_version: 2,
            media_type: Some(oci::DOCKER_MANIFEST.to_string()),
            config: Descriptor::new(oci::DOCKER_CONFIG, c.digest, c.size),
            layers,
            annotations: Default::default(),
        };
        let bytes = serde_json::to_vec(&m).map_err(|e| Error::internal_cause("manifest", e))?;
        let digest = sess.put_bytes(&bytes).await?;
        let names = match (&opts.name, e.repo_tags) {
            (Some(n), _) => vec![normalize(n)?],
            (None, Some(tags)) if !tags.is_empty() => {
                tags.iter().map(|t| normalize(t)).collect::<Result<_>>()?
            }
            _ => {
                return Err(Error::invalid(
                    "manifest.json: an image has no RepoTags: pass --name NAME to import it under",
                ));
            }
        };
        out.push((names, Descriptor::new(oci::DOCKER_MANIFEST, digest, bytes.len() as u64)));
    }
    Ok(out)
}
