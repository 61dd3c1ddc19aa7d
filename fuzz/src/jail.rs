//! Layer apply under watch: each input is applied as a layer into a fresh directory deep
//! inside a private tree, and afterwards everything the layer could reach by escaping is
//! checked unchanged.
//!
//! The tree is `$TMPDIR/berth-fuzz-apply-<pid>/w/x/y/z/{root,sentinel}`: the layer goes into
//! `root`; `../sentinel` and every ancestor up to the base are where a `..` or symlink escape
//! would land. After each apply:
//! - every level holds exactly the one entry it was made with (plus `sentinel` next to
//!   `root`), each a real directory, and the sentinel is untouched (content, single link);
//! - `/` lists the same names as when the target started;
//! - no non-directory under `root` has more links than names under `root` (a hardlink to a
//!   file outside the root would show up as an extra link).
//!
//! `root` is removed after each input; the base stays for the life of the process (scripts/
//! fuzz.sh removes `berth-fuzz-apply-*` after a run).

use std::collections::HashMap;
use std::fs;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::LazyLock;

use berth_snapshot::layer::{self, Whiteouts};

/// Uncompressed bytes one input may expand to: small, so a compression bomb costs little.
const CAP: u64 = 8 << 20;
/// The directories between the base and the layer root.
const LEVELS: [&str; 4] = ["w", "x", "y", "z"];
const SENTINEL: &[u8] = b"berth fuzz sentinel: a layer must never change this file\n";

/// The watched tree of this process.
pub struct Jail {
    base: PathBuf,
    inner: PathBuf,
    top: Vec<String>,
}

static JAIL: LazyLock<Jail> = LazyLock::new(Jail::new);

fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("list {}: {e}", dir.display()))
        .map(|e| e.expect("a directory entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

impl Jail {
    fn new() -> Jail {
        let base = std::env::temp_dir().join(format!("berth-fuzz-apply-{}", std::process::id()));
        let _ = fs::remove_dir_all(&base);
        let inner = LEVELS.iter().fold(base.clone(), |p, l| p.join(l));
        fs::create_dir_all(&inner).expect("create the jail");
        fs::write(inner.join("sentinel"), SENTINEL).expect("write the sentinel");
        Jail { base, inner, top: listing(Path::new("/")) }
    }

    /// Applies `blob` into a fresh root with `mode`, checks, and removes the root.
    fn run(&self, blob: &[u8], mode: Whiteouts) {
        let root = self.inner.join("root");
        fs::create_dir(&root).expect("create the layer root");
        let _ = layer::apply(&root, blob, mode, CAP);
        self.check(&root);
        fs::remove_dir_all(&root).expect("remove the layer root");
    }

    fn check(&self, root: &Path) {
        let mut dir = self.base.clone();
        for level in LEVELS {
            assert_eq!(listing(&dir), [level], "{} changed", dir.display());
            dir.push(level);
            let m = fs::symlink_metadata(&dir).expect("stat a level");
            assert!(m.is_dir(), "{} is no longer a directory", dir.display());
        }
        assert_eq!(listing(&dir), ["root", "sentinel"], "{} changed", dir.display());
        let s = dir.join("sentinel");
        let m = fs::symlink_metadata(&s).expect("stat the sentinel");
        assert!(m.is_file() && m.nlink() == 1, "the sentinel was replaced or linked");
        assert_eq!(fs::read(&s).expect("read the sentinel"), SENTINEL, "the sentinel was written");
        assert!(fs::symlink_metadata(root).expect("stat the root").is_dir(), "the root is not a directory");
        assert_eq!(listing(Path::new("/")), self.top, "/ changed");
        let mut links: HashMap<(u64, u64), (u64, u64)> = HashMap::new();
        walk(root, &mut links);
        for ((_, ino), (nlink, seen)) in links {
            assert_eq!(nlink, seen, "inode {ino} has links outside the layer root");
        }
    }
}

/// Counts, for every non-directory under `dir`, its link count and the names seen.
fn walk(dir: &Path, links: &mut HashMap<(u64, u64), (u64, u64)>) {
    for e in fs::read_dir(dir).expect("list a layer directory") {
        let p = e.expect("a layer directory entry").path();
        let m = fs::symlink_metadata(&p).expect("stat a layer entry");
        if m.is_dir() {
            walk(&p, links);
        } else {
            links.entry((m.dev(), m.ino())).or_insert((m.nlink(), 0)).1 += 1;
        }
    }
}

/// Layer apply: the first byte picks the compression the rest is wrapped in (bits 0-1: none,
/// gzip, zstd, none) and the whiteout mode (bit 2: overlay, else delete); the rest is the
/// tar. Plain input that starts with a gzip or zstd magic is decompressed by apply itself.
pub fn layer_apply(data: &[u8]) {
    let Some((flags, tar)) = data.split_first() else { return };
    let blob = match flags & 3 {
        1 => {
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            gz.write_all(tar).expect("gzip into memory");
            gz.finish().expect("gzip into memory")
        }
        2 => zstd::encode_all(tar, 1).expect("zstd into memory"),
        _ => tar.to_vec(),
    };
    let mode = if flags & 4 != 0 { Whiteouts::Overlay } else { Whiteouts::Delete };
    JAIL.run(&blob, mode);
}
