//! What a layer says is what lands on disk: device nodes, fifos, setuid files, owners,
//! hardlink pairs, xattrs (minus overlayfs' own), mtimes, and a 10,000-entry directory,
//! on both backends.

mod common;

use std::os::unix::fs::{FileTypeExt, MetadataExt};

use berth_snapshot::BackendKind;
use common::{Env, Layer};
use tar::EntryType;

#[test]
fn special_files_owners_modes_links_and_xattrs_are_kept() {
    for kind in [BackendKind::Overlay, BackendKind::Native] {
        let env = Env::new(kind);
        let layer = Layer::new()
            .dir("dev")
            .node("dev/null", EntryType::Char, 1, 3, 0o666)
            .node("dev/loop9", EntryType::Block, 7, 9, 0o660)
            .node("fifo", EntryType::Fifo, 0, 0, 0o640)
            .file_owned("suid", b"#!/bin/sh\n", 0o4755, 1000, 1001)
            .file_owned("sgid-sticky", b"x", 0o3775, 0, 50)
            .file("pair1", b"same inode")
            .hardlink("pair2", b"pair1")
            .pax(&[("SCHILY.xattr.user.berth", b"hello"), ("SCHILY.xattr.trusted.overlay.opaque", b"y")])
            .file("xattr", b"x")
            .pax(&[("mtime", b"1234567890.5")])
            .file("mtime", b"m")
            .tar();
        env.apply(&layer).expect("apply");
        let fs = env.fs();
        let st = |p: &str| fs.join(p).symlink_metadata().expect(p);

        let null = st("dev/null");
        assert!(null.file_type().is_char_device());
        assert_eq!((nix::sys::stat::major(null.rdev()), nix::sys::stat::minor(null.rdev())), (1, 3));
        assert_eq!(null.mode() & 0o7777, 0o666);
        let blk = st("dev/loop9");
        assert!(blk.file_type().is_block_device());
        assert_eq!((nix::sys::stat::major(blk.rdev()), nix::sys::stat::minor(blk.rdev())), (7, 9));
        let fifo = st("fifo");
        assert!(fifo.file_type().is_fifo());
        assert_eq!(fifo.mode() & 0o7777, 0o640);

        let suid = st("suid");
        assert_eq!(suid.mode() & 0o7777, 0o4755, "setuid kept after chown");
        assert_eq!((suid.uid(), suid.gid()), (1000, 1001));
        assert_eq!(suid.mtime(), 1_600_000_000);
        let sg = st("sgid-sticky");
        assert_eq!(sg.mode() & 0o7777, 0o3775);
        assert_eq!(sg.gid(), 50);

        let (p1, p2) = (st("pair1"), st("pair2"));
        assert_eq!(p1.ino(), p2.ino(), "hardlink pair shares an inode");
        assert_eq!(p1.nlink(), 2);

        let xattrs = berth_snapshot::tarwrite::read_xattrs(&fs.join("xattr")).expect("xattrs");
        assert_eq!(xattrs, vec![(b"user.berth".to_vec(), b"hello".to_vec())]);
        assert!(
            !berth_snapshot::layer::whiteout::is_opaque(&fs.join("xattr")),
            "trusted.overlay.* from the archive kept"
        );

        let m = st("mtime");
        assert_eq!((m.mtime(), m.mtime_nsec()), (1_234_567_890, 500_000_000));
        assert_eq!(st("dev").mtime(), 1_600_000_000, "directory mtime set after its children");
    }
}

#[test]
fn ten_thousand_entry_directory_is_kept_whole() {
    let env = Env::new(BackendKind::Overlay);
    let mut layer = Layer::new().dir("big");
    for i in 0..10_000 {
        layer = layer.file(&format!("big/f{i:05}"), format!("{i}").as_bytes());
    }
    env.apply(&layer.tar()).expect("apply");
    let names: Vec<_> = std::fs::read_dir(env.fs().join("big")).expect("big").collect();
    assert_eq!(names.len(), 10_000);
    assert_eq!(std::fs::read(env.fs().join("big/f09999")).expect("last"), b"9999");
}

#[test]
fn zstd_and_plain_layers_apply_like_gzip() {
    let tar = Layer::new().dir("d").file("d/f", b"content").tar();
    let mut ids = Vec::new();
    for blob in [tar.clone(), common::gzip(&tar), zstd::encode_all(&tar[..], 3).expect("zstd")] {
        let env = Env::new(BackendKind::Overlay);
        let a = env.apply(&blob).expect("apply");
        assert_eq!(std::fs::read(env.fs().join("d/f")).expect("f"), b"content");
        ids.push(a.diff_id);
    }
    assert!(ids.windows(2).all(|w| w[0] == w[1]), "diff_id is of the uncompressed stream");
}
