//! Applying a layer: the uncompressed stream ([`stream`]), entry names ([`path`]), the
//! safe extractor ([`extract`]) with its file-system steps ([`fsops`]), metadata ([`meta`])
//! and whiteouts ([`whiteout`]).

pub mod extract;
pub mod fsops;
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

/// Extracts the layer `blob` (gzip, zstd or plain tar) into the directory `root` and returns
/// its diff_id. Refuses more than `cap` uncompressed bytes.
pub fn apply<R: Read>(root: &Path, blob: R, mode: Whiteouts, cap: u64) -> Result<Applied> {
    let fd: OwnedFd =
        nix::fcntl::open(root, OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC, Mode::empty())
            .map_err(|e| {
                Error::internal(format!("snapshot dir {}: {}", root.display(), e.desc().to_lowercase()))
            })?;
    let stream = stream::Uncompressed::new(blob, cap).map_err(|e| Error::invalid(format!("layer: {e}")))?;
    let tally = stream.tally();
    let mut buffered = std::io::BufReader::with_capacity(256 << 10, stream);
    let mut x = extract::Extractor::new(fd, mode);
    let result = extract_all(&mut x, &mut buffered);
    let over = |e: Error| {
        if tally.over_cap() {
            Error::new(
                berth_ipc::Code::OutOfRange,
                format!("layer: uncompressed size over the cap of {cap} bytes"),
            )
        } else {
            e
        }
    };
    result.map_err(over)?;
    x.finish()?;
    // Bytes after the tar end belong to the diff_id too.
    std::io::copy(&mut buffered, &mut std::io::sink())
        .map_err(|e| over(Error::invalid(format!("layer: read after tar end: {e}"))))?;
    let stream = buffered.into_inner();
    let (diff_id, size) = stream.finish().map_err(|e| over(Error::invalid(format!("layer: {e}"))))?;
    Ok(Applied { diff_id, size })
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
