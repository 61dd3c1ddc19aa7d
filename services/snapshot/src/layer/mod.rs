//! Applying a layer: the uncompressed stream ([`stream`]), entry names ([`path`]), the
//! safe extractor ([`extract`]) with its file-system steps ([`fsops`]), metadata ([`meta`])
//! and whiteouts ([`whiteout`]).

pub mod extract;
pub mod fsops;
pub mod headers;
pub mod limits;
pub mod meta;
pub mod path;
pub mod stream;
pub mod whiteout;

use std::io::Read;
use std::os::fd::OwnedFd;
use std::path::Path;

use berth_ipc::snapshot::Applied;
use berth_ipc::{Error, Result};
use nix::fcntl::OFlag;
use nix::sys::stat::Mode;

pub use extract::Whiteouts;
pub use limits::{Limits, MAX_HEADER_BYTES};

/// Bytes in one chunk handed from the decompressing thread to the extractor.
const CHUNK: usize = 256 << 10;
/// Chunks in flight between them: memory stays at `CHUNK * DEPTH` whatever the layer.
const DEPTH: usize = 16;

/// Extracts the layer `blob` with `cap` as the byte limit and the default header bound.
pub fn apply<R: Read + Send>(root: &Path, blob: R, mode: Whiteouts, cap: u64) -> Result<Applied> {
    apply_limited(root, blob, mode, Limits::with_bytes(cap))
}

/// Extracts the layer `blob` (gzip, zstd or plain tar) into the directory `root` and returns
/// its diff_id. Refuses more than `limits.bytes` uncompressed bytes or bytes of file content
/// written (a sparse file counts at its full size, its holes stay holes), any extension
/// header over `limits.header_bytes` (checked before the tar parser reads it), more than
/// `limits.entries` entries, and more than `limits.memory_bytes` of remembered paths.
///
/// Decompression and hashing run on a second thread that hands bounded chunks to the
/// extractor, so inflating and writing overlap as they do in `gzip -dc | tar -x`.
pub fn apply_limited<R: Read + Send>(
    root: &Path,
    blob: R,
    mode: Whiteouts,
    limits: Limits,
) -> Result<Applied> {
    let cap = limits.bytes;
    let fd: OwnedFd =
        nix::fcntl::open(root, OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC, Mode::empty())
            .map_err(|e| {
                Error::internal_cause(
                    format_args!("snapshot dir {}", root.display()),
                    e.desc().to_lowercase(),
                )
            })?;
    let over_cap = || {
        Error::new(
            berth_ipc::Code::OutOfRange,
            format!("layer: uncompressed size over the cap of {cap} bytes"),
        )
    };
    std::thread::scope(|s| {
        let (tx, rx) = std::sync::mpsc::sync_channel(DEPTH);
        let producer = s.spawn(move || produce(blob, cap, tx));
        let mut reader = ChannelReader { rx, cur: Vec::new(), pos: 0 };
        let mut x = extract::Extractor::new(fd, mode, limits);
        let extracted = extract_all(&mut x, headers::HeaderGuard::new(&mut reader, limits.header_bytes))
            .and_then(|()| x.finish())
            .and_then(|()| {
                // Bytes after the tar end belong to the diff_id too.
                std::io::copy(&mut reader, &mut std::io::sink())
                    .map(drop)
                    .map_err(|e| Error::invalid(format!("layer: read after tar end: {e}")))
            });
        drop(reader);
        let produced =
            producer.join().map_err(|_| Error::internal("layer: decompression thread panicked"))?;
        match (extracted, produced) {
            (_, Err(Produced::OverCap)) => Err(over_cap()),
            (Err(e), _) => Err(e),
            (Ok(()), Err(Produced::Failed(e))) => Err(Error::invalid(format!("layer: {e}"))),
            (Ok(()), Ok((diff_id, size))) => Ok(Applied { diff_id, size }),
        }
    })
}

enum Produced {
    OverCap,
    Failed(std::io::Error),
}

/// The decompressing side: reads, hashes and counts the whole stream, sending it on in
/// chunks; stops early only when the extractor hung up (it failed) or on an error.
fn produce<R: Read>(
    blob: R,
    cap: u64,
    tx: std::sync::mpsc::SyncSender<std::io::Result<Vec<u8>>>,
) -> std::result::Result<(berth_ipc::digest::Digest, u64), Produced> {
    let mut u = stream::Uncompressed::new(blob, cap).map_err(Produced::Failed)?;
    let tally = u.tally();
    loop {
        let mut buf = vec![0u8; CHUNK];
        let mut n = 0;
        while n < CHUNK {
            match u.read(&mut buf[n..]) {
                Ok(0) => break,
                Ok(k) => n += k,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    let _ = tx.send(Err(std::io::Error::new(e.kind(), e.to_string())));
                    return Err(if tally.over_cap() { Produced::OverCap } else { Produced::Failed(e) });
                }
            }
        }
        if n == 0 {
            break;
        }
        buf.truncate(n);
        if tx.send(Ok(buf)).is_err() {
            return Err(Produced::Failed(std::io::Error::other("extractor stopped")));
        }
    }
    drop(tx);
    u.finish().map_err(Produced::Failed)
}

/// The extractor's side of the chunk channel.
struct ChannelReader {
    rx: std::sync::mpsc::Receiver<std::io::Result<Vec<u8>>>,
    cur: Vec<u8>,
    pos: usize,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.pos == self.cur.len() {
            match self.rx.recv() {
                Ok(Ok(chunk)) => {
                    self.cur = chunk;
                    self.pos = 0;
                }
                Ok(Err(e)) => return Err(e),
                Err(_) => return Ok(0),
            }
        }
        let n = buf.len().min(self.cur.len() - self.pos);
        buf[..n].copy_from_slice(&self.cur[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

fn extract_all<R: Read>(x: &mut extract::Extractor, r: R) -> Result<()> {
    let mut archive = tar::Archive::new(r);
    let entries = archive.entries().map_err(|e| Error::invalid(format!("layer: {e}")))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| Error::invalid(format!("layer: bad tar entry: {e}")))?;
        x.entry(&mut entry)?;
    }
    Ok(())
}
