//! `images export FILE REF…`: an OCI image layout tar (`oci-layout`, `index.json`,
//! `blobs/sha256/…`) that skopeo (`oci-archive:`), containerd and `images import` read. Each
//! image is an `index.json` entry annotated with its name; every blob of its tree present in
//! content is written, read from the blob file's fd the content service passes.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::path::Path;

use berth_ipc::content::proxy::ContentClient;
use berth_ipc::content::store::ContentStore;
use berth_ipc::metadata::{ByName, GetImage};
use berth_ipc::{Code, Digest, Error, Result};

use crate::Services;
use crate::image::get_json;
use crate::oci::{self, Descriptor, Index};
use crate::reference::Reference;

/// Writes images `names` of namespace `ns` to `out`.
pub async fn export(services: &Services, ns: &str, names: &[String], out: &Path) -> Result<()> {
    let content = ContentClient::new(services.content.clone());
    let mut entries = Vec::new();
    let mut blobs: BTreeSet<Digest> = BTreeSet::new();
    for name in names {
        let image =
            services.metadata.call(GetImage(ByName { namespace: ns.into(), name: name.clone() })).await?;
        let t = &image.target;
        let mut root = Descriptor::new(&t.media_type, t.digest, t.size);
        collect(&content, &root, &mut blobs).await?;
        root.annotations.insert("io.containerd.image.name".into(), name.clone());
        let tag = Reference::parse(name).ok().and_then(|r| r.tag).unwrap_or_else(|| name.clone());
        root.annotations.insert("org.opencontainers.image.ref.name".into(), tag);
        entries.push(root);
    }
    let index = Index {
        schema_version: 2,
        media_type: Some(oci::OCI_INDEX.into()),
        manifests: entries,
        annotations: BTreeMap::new(),
    };
    let index = serde_json::to_vec(&index).map_err(|e| Error::internal_cause("index.json", e))?;
    let mut files = Vec::new();
    for d in blobs {
        files.push((d, content.read_fd(&d).await?));
    }
    let out = out.to_path_buf();
    tokio::task::spawn_blocking(move || write_tar(&out, &index, files))
        .await
        .map_err(|e| Error::internal_cause("export", e))?
}

async fn collect(content: &ContentClient, d: &Descriptor, out: &mut BTreeSet<Digest>) -> Result<()> {
    let bytes = get_json(content, &d.digest).await?;
    out.insert(d.digest);
    let what = format!("blob {}", d.digest);
    let mt = oci::sniff(&bytes, &d.media_type, &what)?;
    if oci::is_index(&mt) {
        for child in oci::parse_index(&bytes, &what)?.manifests {
            match content.info(&child.digest).await {
                Ok(_) => Box::pin(collect(content, &child, out)).await?,
                Err(e) if e.is(Code::NotFound) => {}
                Err(e) => return Err(e),
            }
        }
    } else {
        let m = oci::parse_manifest(&bytes, &what)?;
        out.insert(m.config.digest);
        for l in m.layers {
            content.info(&l.digest).await.map_err(|e| e.context(format!("image layer {}", l.digest)))?;
            out.insert(l.digest);
        }
    }
    Ok(())
}

fn write_tar(
    out: &Path,
    index: &[u8],
    files: Vec<(Digest, berth_ipc::content::readfd::BlobFd)>,
) -> Result<()> {
    let io = |e: std::io::Error| Error::internal_cause(format_args!("export {}", out.display()), e);
    let f = File::create(out).map_err(io)?;
    let mut tar = tar::Builder::new(std::io::BufWriter::with_capacity(1 << 20, f));
    let add = |tar: &mut tar::Builder<_>, name: &str, size: u64, data: &mut dyn std::io::Read| {
        let mut h = tar::Header::new_ustar();
        h.set_size(size);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        tar.append_data(&mut h, name, data)
    };
    let layout = br#"{"imageLayoutVersion":"1.0.0"}"#;
    add(&mut tar, "oci-layout", layout.len() as u64, &mut &layout[..]).map_err(io)?;
    for (d, mut fd) in files {
        add(&mut tar, &format!("blobs/sha256/{}", d.hex()), fd.size, &mut fd.file).map_err(io)?;
    }
    add(&mut tar, "index.json", index.len() as u64, &mut &index[..]).map_err(io)?;
    let w = tar.into_inner().map_err(io)?;
    let f = w.into_inner().map_err(|e| io(e.into_error()))?;
    f.sync_all().map_err(io)
}
