//! Reading a tar archive (or an OCI layout directory, as `skopeo copy … oci:DIR:TAG` writes
//! it) on a blocking thread and handing its entries to async code as a bounded stream of
//! messages: small JSON files whole (bounded), links as names, and regular files as a
//! begin/data/end sequence in chunks. A directory's symlinks are not followed (skipped).

use std::fs::File;
use std::io::Read;
use std::path::Path;

use berth_ipc::{Error, Result};
use tokio::sync::mpsc;

use crate::oci::MAX_JSON;
use crate::session::CHUNK;

/// One thing found in the archive.
pub enum Item {
    /// A small file read whole (`index.json`, `manifest.json`, `oci-layout`).
    Small {
        /// Its normalized name.
        name: String,
        /// Its bytes.
        data: Vec<u8>,
    },
    /// A symlink or hardlink: `name` is `target`'s content.
    Link {
        /// Its normalized name.
        name: String,
        /// What it resolves to, normalized relative to the archive root.
        target: String,
    },
    /// A regular file starts.
    Begin {
        /// Its normalized name.
        name: String,
        /// Its size.
        size: u64,
    },
    /// Bytes of the current regular file.
    Data(Vec<u8>),
    /// The current regular file ended.
    End,
}

/// Names read whole rather than streamed.
const SMALL: [&str; 4] = ["index.json", "manifest.json", "oci-layout", "repositories"];

/// `./a/b` → `a/b`; rejects `..`.
pub fn clean(name: &str) -> Option<String> {
    let mut parts: Vec<&str> = Vec::new();
    for p in name.split('/') {
        match p {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            p => parts.push(p),
        }
    }
    Some(parts.join("/"))
}

/// Streams `path`'s entries; the thread stops when the receiver goes away.
pub fn read(path: &Path) -> Result<mpsc::Receiver<Result<Item>>> {
    let (tx, rx) = mpsc::channel(8);
    let shown = path.display().to_string();
    if path.is_dir() {
        let dir = path.to_path_buf();
        std::thread::spawn(move || {
            if let Err(e) = walk_dir(&dir, &tx) {
                let _ = tx.blocking_send(Err(Error::invalid(format!("layout directory {shown}: {e}"))));
            }
        });
        return Ok(rx);
    }
    let file = File::open(path).map_err(|e| Error::not_found(format!("archive {}: {e}", path.display())))?;
    std::thread::spawn(move || {
        if let Err(e) = walk(file, &tx) {
            let _ = tx.blocking_send(Err(Error::invalid(format!("archive {shown}: {e}"))));
        }
    });
    Ok(rx)
}

fn walk(file: File, tx: &mpsc::Sender<Result<Item>>) -> std::io::Result<()> {
    let closed = || std::io::Error::other("receiver gone");
    let mut ar = tar::Archive::new(std::io::BufReader::with_capacity(1 << 20, file));
    for entry in ar.entries()? {
        let mut entry = entry?;
        let raw = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let Some(name) = clean(&raw) else {
            return Err(std::io::Error::other(format!("member {raw:?} leaves the archive")));
        };
        let kind = entry.header().entry_type();
        if kind.is_symlink() || kind.is_hard_link() {
            let Some(link) = entry.link_name_bytes() else { continue };
            let link = String::from_utf8_lossy(&link).into_owned();
            let target = if kind.is_symlink() {
                let dir = name.rsplit_once('/').map_or("", |(d, _)| d);
                clean(&format!("{dir}/{link}"))
            } else {
                clean(&link)
            };
            if let Some(target) = target {
                tx.blocking_send(Ok(Item::Link { name, target })).map_err(|_| closed())?;
            }
            continue;
        }
        if !kind.is_file() {
            continue;
        }
        let size = entry.size();
        send_file(name, size, &mut entry, tx)?;
    }
    Ok(())
}

/// Sends one regular file: whole if it is one of the small names, else in chunks.
fn send_file(
    name: String,
    size: u64,
    file: &mut impl Read,
    tx: &mpsc::Sender<Result<Item>>,
) -> std::io::Result<()> {
    let closed = || std::io::Error::other("receiver gone");
    if SMALL.contains(&name.as_str()) {
        if size > MAX_JSON {
            return Err(std::io::Error::other(format!(
                "{name}: {size} bytes, over the {MAX_JSON}-byte bound"
            )));
        }
        let mut data = Vec::with_capacity(size as usize);
        file.take(MAX_JSON + 1).read_to_end(&mut data)?;
        return tx.blocking_send(Ok(Item::Small { name, data })).map_err(|_| closed());
    }
    tx.blocking_send(Ok(Item::Begin { name, size })).map_err(|_| closed())?;
    let mut sent = 0u64;
    loop {
        let mut buf = vec![0u8; CHUNK];
        let mut n = 0;
        while n < buf.len() {
            let r = file.read(&mut buf[n..])?;
            if r == 0 {
                break;
            }
            n += r;
        }
        if n == 0 || sent >= size {
            break;
        }
        buf.truncate(n.min(usize::try_from(size - sent).unwrap_or(usize::MAX)));
        sent += buf.len() as u64;
        tx.blocking_send(Ok(Item::Data(buf))).map_err(|_| closed())?;
    }
    tx.blocking_send(Ok(Item::End)).map_err(|_| closed())
}

/// Most entries a layout directory may have (files and directories).
const MAX_DIR_ENTRIES: usize = 100_000;

/// Sends the regular files under `root` (an OCI layout directory), named relative to it.
fn walk_dir(root: &Path, tx: &mpsc::Sender<Result<Item>>) -> std::io::Result<()> {
    if !root.join("oci-layout").is_file() || !root.join("index.json").is_file() {
        return Err(std::io::Error::other(
            "not an OCI layout (it needs oci-layout and index.json, as `skopeo copy … oci:DIR:TAG` writes)",
        ));
    }
    let mut stack = vec![(root.to_path_buf(), String::new())];
    let mut seen = 0;
    while let Some((dir, prefix)) = stack.pop() {
        let mut entries: Vec<_> = std::fs::read_dir(&dir)?.collect::<std::io::Result<_>>()?;
        entries.sort_by_key(std::fs::DirEntry::file_name);
        for e in entries {
            seen += 1;
            if seen > MAX_DIR_ENTRIES {
                return Err(std::io::Error::other(format!("over {MAX_DIR_ENTRIES} entries")));
            }
            let name = format!("{prefix}{}", e.file_name().to_string_lossy());
            let meta = e.path().symlink_metadata()?;
            if meta.is_dir() {
                stack.push((e.path(), format!("{name}/")));
            } else if meta.is_file() {
                let mut f = File::open(e.path())?;
                send_file(name, meta.len(), &mut f, tx)?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn names_are_cleaned() {
        assert_eq!(super::clean("./blobs/sha256/x").as_deref(), Some("blobs/sha256/x"));
        assert_eq!(super::clean("a/../b").as_deref(), Some("b"));
        assert_eq!(super::clean("../b"), None);
    }
}
