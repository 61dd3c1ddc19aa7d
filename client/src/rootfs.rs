//! `images import --rootfs TAR NAME`: a single-layer image from a plain root filesystem
//! tarball (uncompressed, gzip or zstd), like `docker import`. The tarball becomes the layer
//! blob as it is; its diff_id is hashed from the decompressed stream in the same pass. The
//! config names the host platform and a default `PATH`, with no creation time, so importing
//! the same tarball twice gives the same image digest.

use std::fs::File;
use std::io::{self, Read, Seek, Write};
use std::path::Path;

use berth_ipc::content::store::ContentWriter;
use berth_ipc::{Digest, Error, Result};
use sha2::{Digest as _, Sha256};
use tokio::sync::mpsc;

use crate::Services;
use crate::image;
use crate::import::Imported;
use crate::oci::{self, Descriptor, Manifest, Platform};
use crate::reference::normalize;
use crate::session::{self, CHUNK, Session};

/// What the reading thread found.
struct Scanned {
    digest: Digest,
    diff_id: Digest,
    size: u64,
    media_type: &'static str,
}

enum Msg {
    Data(Vec<u8>),
    Done(Scanned),
}

/// Imports the rootfs tarball at `tar_path` as the single-layer image `name` in `ns`,
/// unpacked on overlayfs. The name is normalized (`busybox` → `docker.io/library/busybox:latest`).
pub async fn import_rootfs_tar(
    services: &Services,
    ns: &str,
    name: &str,
    tar_path: &Path,
) -> Result<Imported> {
    let name = normalize(name)?;
    let sess = Session::open(services, ns, "import").await?;
    let result = run(&sess, &name, tar_path).await;
    let closed = sess.close().await;
    let out = result?;
    closed?;
    Ok(out)
}

async fn run(sess: &Session, name: &str, path: &Path) -> Result<Imported> {
    let file = File::open(path).map_err(|e| Error::not_found(format!("rootfs {}: {e}", path.display())))?;
    let (tx, mut rx) = mpsc::channel::<io::Result<Msg>>(4);
    std::thread::spawn(move || {
        let r = scan(file, &tx);
        let _ = tx.blocking_send(r.map(Msg::Done));
    });
    let r = format!("rootfs-{}", Digest::of(path.display().to_string().as_bytes()));
    let mut w = sess.writer(&r, None).await?;
    let mut first = true;
    let scanned = loop {
        match rx.recv().await {
            Some(Ok(Msg::Data(d))) if first => {
                first = false;
                w.write_at(0, d).await?;
            }
            Some(Ok(Msg::Data(d))) => w.push(d).await?,
            Some(Ok(Msg::Done(s))) => break s,
            Some(Err(e)) => return Err(Error::invalid(format!("rootfs {}: {e}", path.display()))),
            None => return Err(Error::internal("rootfs reader stopped")),
        }
    };
    if first && w.offset() != 0 {
        w.write_at(0, Vec::new()).await?;
    }
    session::commit(w, scanned.size, scanned.digest).await?;
    sess.proved(scanned.digest);
    sess.protect(scanned.digest).await?;
    let platform = Platform::host();
    let mut config = serde_json::json!({
        "architecture": platform.architecture,
        "os": platform.os,
        "config": { "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"] },
        "rootfs": { "type": "layers", "diff_ids": [scanned.diff_id.to_string()] },
        "history": [{ "created_by": "berth images import --rootfs" }],
    });
    if let (Some(v), Some(obj)) = (&platform.variant, config.as_object_mut()) {
        obj.insert("variant".into(), v.clone().into());
    }
    let cbytes = serde_json::to_vec(&config).map_err(|e| Error::internal_cause("config", e))?;
    let cdigest = sess.put_bytes(&cbytes).await?;
    let m = Manifest {
        schema_version: 2,
        media_type: Some(oci::OCI_MANIFEST.to_string()),
        config: Descriptor::new(oci::OCI_CONFIG, cdigest, cbytes.len() as u64),
        layers: vec![Descriptor::new(scanned.media_type, scanned.digest, scanned.size)],
        annotations: Default::default(),
    };
    let mbytes = serde_json::to_vec(&m).map_err(|e| Error::internal_cause("manifest", e))?;
    let mdigest = sess.put_bytes(&mbytes).await?;
    let target = Descriptor::new(oci::OCI_MANIFEST, mdigest, mbytes.len() as u64);
    let resolved = image::resolve(sess, &target, &platform).await?;
    let chain_id = image::record_and_unpack(sess, &resolved, image::Layers::Unpack).await?;
    image::set_image(sess, name, &target).await?;
    Ok(Imported { name: name.to_string(), target, chain_id })
}

/// Reads the file once: forwards its bytes, hashes them, and hashes the decompressed stream.
fn scan(mut file: File, tx: &mpsc::Sender<io::Result<Msg>>) -> io::Result<Scanned> {
    let mut head = [0u8; 4];
    let n = file.read(&mut head)?;
    file.rewind()?;
    let media_type = oci::layer_type_by_magic(&head[..n], false);
    let mut tee = Tee { file, hash: Sha256::new(), size: 0, buf: Vec::with_capacity(CHUNK), tx };
    let mut plain = HashWriter(Sha256::new());
    let diff_id = match media_type {
        oci::OCI_LAYER_GZIP => {
            let mut dec = flate2::read::MultiGzDecoder::new(io::BufReader::new(&mut tee));
            io::copy(&mut dec, &mut plain)?;
            drop(dec);
            io::copy(&mut tee, &mut io::sink())?;
            Some(plain.0.finalize())
        }
        oci::OCI_LAYER_ZSTD => {
            let mut dec = zstd::stream::read::Decoder::new(&mut tee)?;
            io::copy(&mut dec, &mut plain)?;
            drop(dec);
            io::copy(&mut tee, &mut io::sink())?;
            Some(plain.0.finalize())
        }
        _ => {
            io::copy(&mut tee, &mut io::sink())?;
            None
        }
    };
    tee.flush_buf()?;
    let digest = Digest::from_sha256(tee.hash.finalize().into());
    let diff_id = diff_id.map_or(digest, |d| Digest::from_sha256(d.into()));
    Ok(Scanned { digest, diff_id, size: tee.size, media_type })
}

struct Tee<'a> {
    file: File,
    hash: Sha256,
    size: u64,
    buf: Vec<u8>,
    tx: &'a mpsc::Sender<io::Result<Msg>>,
}

impl Tee<'_> {
    fn flush_buf(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let data = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK));
        self.tx.blocking_send(Ok(Msg::Data(data))).map_err(|_| io::Error::other("import cancelled"))
    }
}

impl Read for Tee<'_> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let n = self.file.read(out)?;
        self.hash.update(&out[..n]);
        self.size += n as u64;
        self.buf.extend_from_slice(&out[..n]);
        if self.buf.len() >= CHUNK {
            self.flush_buf()?;
        }
        Ok(n)
    }
}

struct HashWriter(Sha256);

impl Write for HashWriter {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        self.0.update(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
