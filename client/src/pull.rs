//! `images pull`: resolve a reference on its registry, fetch the index (if any), the platform
//! manifest, its config and its layers into content — layers in parallel, streamed, resumed
//! from the ingest's offset with an HTTP range, verified by digest and size — while the
//! snapshot service unpacks each layer from its ingest as the bytes land; then record and
//! create the image record last, all under one lease.

use std::collections::BTreeMap;
use std::sync::Arc;

use berth_ipc::content::store::{ContentStore, ContentWriter};
use berth_ipc::snapshot::{Layer, Unpack, UnpackFollow};
use berth_ipc::{Code, Digest, Error, Result};
use tokio::sync::Semaphore;

use crate::Services;
use crate::image::{self, Resolved, choose};
use crate::import::Imported;
use crate::oci::{self, Descriptor, Platform};
use crate::progress::{Progress, State};
use crate::pull_docs;
use crate::reference::Reference;
use crate::registry::{Registry, RegistryOptions};
use crate::session::{CHUNK, Session, chain_ids};

/// How to pull.
#[derive(Clone)]
pub struct PullOptions {
    /// Registry access.
    pub registry: RegistryOptions,
    /// Platform; the host's when `None`.
    pub platform: Option<Platform>,
    /// Store and record only.
    pub no_unpack: bool,
    /// Fetch every platform of an index (only the chosen one is unpacked).
    pub all_platforms: bool,
    /// Snapshotter; `overlayfs` when `None`.
    pub snapshotter: Option<String>,
    /// Layers fetched at once.
    pub parallel: usize,
    /// Progress sink.
    pub progress: Arc<dyn Progress>,
}

impl Default for PullOptions {
    fn default() -> Self {
        PullOptions {
            registry: RegistryOptions::default(),
            platform: None,
            no_unpack: false,
            all_platforms: false,
            snapshotter: None,
            parallel: 4,
            progress: Arc::new(crate::progress::Silent),
        }
    }
}

/// Pulls `reference` into namespace `ns`; the image is named by the normalized reference.
pub async fn pull(services: &Services, ns: &str, reference: &str, opts: &PullOptions) -> Result<Imported> {
    let r = Reference::parse(reference)?;
    let reg = Arc::new(Registry::new(&r, &opts.registry, false)?);
    let mut sess = Session::open(services, ns, "pull").await?;
    if let Some(s) = &opts.snapshotter {
        sess.snapshotter = s.clone();
    }
    let sess = Arc::new(sess);
    let result = run(&sess, &reg, &r, opts).await;
    let closed = sess.close().await;
    let out = result?;
    closed?;
    Ok(out)
}

async fn run(
    sess: &Arc<Session>,
    reg: &Arc<Registry>,
    r: &Reference,
    opts: &PullOptions,
) -> Result<Imported> {
    let platform = opts.platform.clone().unwrap_or_else(Platform::host);
    opts.progress.step(&format!("resolving {r}"));
    let root = pull_docs::fetch_root(sess, reg, r).await?;
    let mdesc = match &root.index {
        Some(index) => choose(index, &platform, &format!("{r}"))?.clone(),
        None => root.desc.clone(),
    };
    let resolved = pull_docs::fetch_platform(sess, reg, &mdesc, &root).await?;
    let (manifest, cfg) = (&resolved.manifest, &resolved.config);

    let layers: Vec<Layer> = manifest
        .layers
        .iter()
        .zip(&cfg.rootfs.diff_ids)
        .map(|(l, d)| Layer { digest: l.digest, media_type: l.media_type.clone(), diff_id: *d })
        .collect();
    let sizes: BTreeMap<Digest, u64> = manifest.layers.iter().map(|l| (l.digest, l.size)).collect();
    let unpacker = if opts.no_unpack {
        None
    } else {
        let chain = chain_ids(&cfg.rootfs.diff_ids);
        for (i, c) in chain.iter().enumerate() {
            sess.record_snapshot(c.to_string(), i.checked_sub(1).map(|p| chain[p].to_string())).await?;
        }
        Some(tokio::spawn(unpack_as_they_come(sess.clone(), layers, sizes, opts.progress.clone())))
    };
    let sem = Arc::new(Semaphore::new(opts.parallel.max(1)));
    let mut tasks = tokio::task::JoinSet::new();
    let unpacking = unpacker.is_some();
    for l in &manifest.layers {
        opts.progress.update(&l.digest, State::Waiting, 0, l.size);
        let (sess, reg, sem, l, p) =
            (sess.clone(), reg.clone(), sem.clone(), l.clone(), opts.progress.clone());
        tasks.spawn(async move {
            let _slot = sem.acquire_owned().await.map_err(|_| Error::internal("pull: semaphore closed"))?;
            fetch_layer(&sess, &reg, &l, &*p).await?;
            if unpacking {
                // Its last bytes are still being extracted (the rest already are).
                p.update(&l.digest, State::Unpacking, l.size, l.size);
            }
            Ok(())
        });
    }
    let fetched = async {
        while let Some(done) = tasks.join_next().await {
            match done {
                Ok(Ok(())) => {}
                Ok(Err(e)) => return Err(e),
                Err(e) => return Err(Error::internal_cause("pull task", e)),
            }
        }
        Ok(())
    }
    .await;
    // A failed download is the better error than what unpacking its bytes ran into.
    if let Err(e) = fetched {
        if let Some(u) = &unpacker {
            u.abort();
        }
        return Err(e);
    }
    if let Some(u) = unpacker {
        u.await.map_err(|e| Error::internal_cause("unpack task", e))??;
    }
    if opts.all_platforms
        && let Some(index) = &root.index
    {
        let mut seen = std::collections::BTreeSet::from([mdesc.digest]);
        for child in index.manifests.iter().filter(|c| oci::is_manifest(&c.media_type)) {
            if seen.insert(child.digest) {
                let other = fetch_other(sess, reg, child, &root, opts).await?;
                image::record_and_unpack(sess, &other, image::Layers::Stored).await?;
            }
        }
    }
    if let Some(index) = &root.index {
        sess.record(root.desc.digest, root.desc.size, image::index_labels(index)).await?;
    }
    let chain_id = image::record_and_unpack(
        sess,
        &resolved,
        if opts.no_unpack { image::Layers::Stored } else { image::Layers::Unpacked },
    )
    .await?;
    let name = r.to_string();
    image::set_image(sess, &name, &root.desc).await?;
    Ok(Imported { name, target: root.desc, chain_id })
}

/// Unpacks the layers while they download: the snapshot service reads each one from its
/// ingest in content as the bytes land (`UnpackFollow`), extracting layers side by side and
/// committing them in order once their diff_ids check out.
async fn unpack_as_they_come(
    sess: Arc<Session>,
    layers: Vec<Layer>,
    sizes: BTreeMap<Digest, u64>,
    p: Arc<dyn Progress>,
) -> Result<()> {
    let req = Unpack {
        snapshotter: sess.snapshotter.clone(),
        layers: layers.clone(),
        labels: BTreeMap::new(),
        namespace: sess.namespace.clone(),
    };
    let done = sess.services.snapshot.call(UnpackFollow(req)).await?;
    for l in &layers {
        let size = sizes.get(&l.digest).copied().unwrap_or(0);
        p.update(&l.digest, State::Unpacked, size, size);
    }
    if done.extracted > 0 {
        p.step(&format!("unpacked {} of {} layers", done.extracted, layers.len()));
    }
    Ok(())
}

/// Fetches another platform's manifest, config and layers (not unpacked), checked as the
/// chosen platform's are.
async fn fetch_other(
    sess: &Arc<Session>,
    reg: &Arc<Registry>,
    child: &Descriptor,
    root: &pull_docs::Root,
    opts: &PullOptions,
) -> Result<Resolved> {
    let other = pull_docs::fetch_platform(sess, reg, child, root).await?;
    let sem = Arc::new(Semaphore::new(opts.parallel.max(1)));
    let mut tasks = tokio::task::JoinSet::new();
    for l in other.manifest.layers.clone() {
        let (sess, reg, sem, p) = (sess.clone(), reg.clone(), sem.clone(), opts.progress.clone());
        tasks.spawn(async move {
            let _slot = sem.acquire_owned().await.map_err(|_| Error::internal("pull: semaphore closed"))?;
            fetch_layer(&sess, &reg, &l, &*p).await
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.map_err(|e| Error::internal_cause("pull task", e))??;
    }
    Ok(other)
}

/// Fetches one layer into content, resuming an earlier ingest of it.
async fn fetch_layer(sess: &Session, reg: &Registry, l: &Descriptor, p: &dyn Progress) -> Result<()> {
    // Lease first, look second, so GC cannot take the blob in between.
    sess.protect(l.digest).await?;
    match sess.has_blob(&l.digest).await? {
        Some(size) if size == l.size => {
            p.update(&l.digest, State::Exists, l.size, l.size);
            return Ok(());
        }
        _ => {}
    }
    let r = format!("pull-{}", l.digest);
    let mut w = sess.writer(&r, Some((l.digest, l.size))).await?;
    let mut attempts = 0;
    loop {
        // An ingest cut off between its last byte and its commit holds every byte: asking
        // the registry for `bytes=SIZE-` would only get 416. The commit verifies the digest.
        if w.offset() == l.size {
            break;
        }
        let offset = if w.offset() > l.size { 0 } else { w.offset() };
        let result = stream_into(reg, l, &mut w, offset, p).await;
        match result {
            Ok(()) => break,
            Err(e) if e.is(Code::Unavailable) && attempts < 3 => {
                attempts += 1;
                w.flush().await?;
            }
            Err(e) => return Err(e),
        }
    }
    w.flush().await?;
    match w.commit(Some(l.size), Some(l.digest)).await {
        Ok(_) => {}
        Err(e) if e.is(Code::AlreadyExists) => {}
        Err(e) => {
            let _ = sess.content.abort(&r).await;
            let code = if e.is(Code::FailedPrecondition) { Code::DataLoss } else { e.code };
            return Err(Error::new(code, format!("layer {}: {}", l.digest, e.message)));
        }
    }
    sess.proved(l.digest);
    p.update(&l.digest, State::Done, l.size, l.size);
    Ok(())
}

async fn stream_into(
    reg: &Registry,
    l: &Descriptor,
    w: &mut berth_ipc::content::proxy::RemoteWriter,
    offset: u64,
    p: &dyn Progress,
) -> Result<()> {
    let (mut resp, start) = reg.get_blob(&l.digest, offset).await?;
    let mut pos = start;
    let mut restart = start == 0 && w.offset() != 0;
    let mut buf: Vec<u8> = Vec::with_capacity(CHUNK);
    let what = format!("layer {}", l.digest);
    p.update(&l.digest, State::Downloading, pos, l.size);
    loop {
        let chunk = resp
            .chunk()
            .await
            .map_err(|e| Error::unavailable(format!("{what}: {}", crate::watchdog::describe(&e))))?;
        let end = chunk.is_none();
        if let Some(c) = chunk {
            if pos + (buf.len() + c.len()) as u64 > l.size {
                return Err(Error::new(
                    Code::DataLoss,
                    format!("{what}: registry sent more than {} bytes", l.size),
                ));
            }
            buf.extend_from_slice(&c);
        }
        if buf.len() >= CHUNK || (end && !buf.is_empty()) {
            let data = std::mem::replace(&mut buf, Vec::with_capacity(CHUNK));
            let n = data.len() as u64;
            if restart {
                w.write_at(0, data).await?;
                restart = false;
            } else {
                w.push(data).await?;
            }
            pos += n;
            p.update(&l.digest, State::Downloading, pos, l.size);
        }
        if end {
            break;
        }
    }
    if pos != l.size {
        return Err(Error::unavailable(format!("{what}: connection ended at {pos} of {} bytes", l.size)));
    }
    Ok(())
}
