//! Reading a tar archive on a blocking thread and handing its entries to async code as a
//! bounded stream of messages: small JSON files whole (bounded), links as names, and regular
//! files as a begin/data/end sequence in chunks.

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
    let file = File::open(path).map_err(|e| Error::not_found(format!("archive {}: {e}", path.display())))?;
    let (tx, rx) = mpsc::channel(8);
    let shown = path.display().to_string();
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
        if SMALL.contains(&name.as_str()) {
            if size > MAX_JSON {
                return Err(std::io::Error::other(format!(
                    "{name}: {size} bytes, over the {MAX_JSON}-byte bound"
                )));
            }
            let mut data = Vec::with_capacity(size as usize);
            entry.read_to_end(&mut data)?;
            tx.blocking_send(Ok(Item::Small { name, data })).map_err(|_| closed())?;
            continue;
        }
        tx.blocking_send(Ok(Item::Begin { name, size })).map_err(|_| closed())?;
        loop {
            let mut buf = vec![0u8; CHUNK];
            let mut n = 0;
            while n < buf.len() {
                let r = entry.read(&mut buf[n..])?;
                if r == 0 {
                    break;
                }
                n += r;
            }
            if n == 0 {
                break;
            }
            buf.truncate(n);
            tx.blocking_send(Ok(Item::Data(buf))).map_err(|_| closed())?;
        }
        tx.blocking_send(Ok(Item::End)).map_err(|_| closed())?;
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
