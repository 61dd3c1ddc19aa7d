//! Layers from a stranger: every case of issue 6 built entry by entry, each checked to end
//! as stated with nothing outside the snapshot root touched (a canary directory outside is
//! checked unchanged after every case).

mod common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};

use berth_ipc::Code;
use berth_snapshot::BackendKind;
use common::{Canary, Env, Layer};

const BOTH: [BackendKind; 2] = [BackendKind::Overlay, BackendKind::Native];

fn abs(c: &Canary) -> Vec<u8> {
    c.dir.path().to_str().expect("utf8").as_bytes().to_vec()
}

#[test]
fn symlink_to_etc_then_file_below_stays_inside() {
    for kind in BOTH {
        let env = Env::new(kind);
        let name = format!("berth-test-{}", std::process::id());
        let layer = Layer::new().symlink("etc", b"/etc").file(&format!("etc/{name}"), b"pwned").tar();
        let r = env.apply(&layer);
        assert!(!std::path::Path::new("/etc").join(&name).exists(), "host /etc written");
        if r.is_ok() {
            assert!(env.fs().join("etc").symlink_metadata().is_ok());
        }
        // A link to /etc beside a real etc: the file lands in the snapshot's own etc.
        // (A name the host lacks stands in for passwd, so a bug cannot damage the host.)
        let env = Env::new(kind);
        let layer = Layer::new()
            .dir("etc")
            .symlink("hostetc", b"/etc")
            .file(&format!("hostetc/{name}"), b"inside")
            .tar();
        env.apply(&layer).expect("resolved inside the root");
        assert_eq!(std::fs::read(env.fs().join("etc").join(&name)).expect("inside"), b"inside");
        assert!(!std::path::Path::new("/etc").join(&name).exists(), "host /etc written");
        // Same with a symlink to the canary's directory.
        let canary = Canary::new();
        let env = Env::new(kind);
        let layer = Layer::new()
            .symlink("etc", &abs(&canary))
            .file("etc/canary", b"pwned")
            .file("etc/new", b"x")
            .tar();
        let r = env.apply(&layer);
        canary.check();
        if r.is_ok() {
            assert!(env.fs().join("etc").symlink_metadata().expect("link").file_type().is_symlink());
        }
    }
}

#[test]
fn symlink_chain_resolves_inside_or_is_refused() {
    for kind in BOTH {
        let env = Env::new(kind);
        let layer = Layer::new().symlink("a", b"/b").symlink("b", b"../../..").file("a/x", b"inside").tar();
        match env.apply(&layer) {
            Ok(_) => assert_eq!(std::fs::read(env.fs().join("x")).expect("x inside the root"), b"inside"),
            Err(e) => assert_eq!(e.code, Code::InvalidArgument, "{e}"),
        }
        // Nothing above the root, at any level.
        let mut p = env.fs();
        while p.pop() {
            assert!(!p.join("x").exists() || p == std::path::Path::new("/"), "x written at {}", p.display());
            if p == env.root.path() {
                break;
            }
        }
    }
}

#[test]
fn hardlinks_leaving_the_root_are_refused() {
    for kind in BOTH {
        let canary = Canary::new();
        for target in
            [b"../../outside".to_vec(), [abs(&canary), b"/canary".to_vec()].concat(), b"/etc/passwd".to_vec()]
        {
            let env = Env::new(kind);
            let err = env.apply(&Layer::new().hardlink("h", &target).tar()).expect_err("refused");
            assert_eq!(err.code, Code::InvalidArgument, "{err}");
            assert!(env.fs().join("h").symlink_metadata().is_err(), "link made");
        }
        assert_eq!(std::fs::metadata(canary.file()).expect("canary").nlink(), 1);
        canary.check();
    }
}

#[test]
fn hardlink_to_symlink_then_setuid_leaves_host_file_alone() {
    for kind in BOTH {
        let canary = Canary::new();
        let env = Env::new(kind);
        let target = [abs(&canary), b"/canary".to_vec()].concat();
        let layer = Layer::new()
            .symlink("s", &target)
            .hardlink_mode("h", b"s", 0o4777)
            .dir_mode("s2", 0o4777)
            .hardlink_mode("h2", b"s", 0o6777)
            .file_mode(b"h", b"replaced", 0o4755)
            .tar();
        let r = env.apply(&layer);
        canary.check();
        if r.is_ok() {
            let h = env.fs().join("h");
            assert_eq!(std::fs::read(&h).expect("h"), b"replaced");
            assert_eq!(h.metadata().expect("h").permissions().mode() & 0o7777, 0o4755);
            assert!(env.fs().join("h2").symlink_metadata().expect("h2").file_type().is_symlink());
        }
    }
}

#[test]
fn directory_replaced_by_symlink_cannot_redirect_later_entries() {
    for kind in BOTH {
        let canary = Canary::new();
        let env = Env::new(kind);
        let name = format!("berth-test-{}", std::process::id());
        let layer = Layer::new()
            .dir("d")
            .file("d/a", b"a")
            .symlink("d", &abs(&canary))
            .file("d/canary", b"pwned")
            .file("d/b", b"b")
            .dir("e")
            .file("e/a", b"a")
            .symlink("e", b"/")
            .file(&format!("e/{name}"), b"pwned")
            .tar();
        let _ = env.apply(&layer);
        canary.check();
        assert!(!std::path::Path::new("/").join(&name).exists(), "host root written");
    }
}

#[test]
fn bad_names_are_refused_before_any_write() {
    let canary = Canary::new();
    let too_long = "a/".repeat(2100).into_bytes();
    let long_component = vec![b'c'; 300];
    let cases = ["dotdot", "absolute", "inner dotdot", "empty", "nul", "over-long", "long component"];
    for kind in BOTH {
        for what in cases {
            let env = Env::new(kind);
            let bytes = cases_bytes(what, &canary, &too_long, &long_component);
            let err = env.apply(&bytes).expect_err(what);
            assert_eq!(err.code, Code::InvalidArgument, "{what}: {err}");
            let left: Vec<_> = std::fs::read_dir(env.fs()).expect("fs").collect();
            assert!(left.is_empty(), "{what}: something was written");
            assert!(!env.root.path().join("snapshots").join("x").exists());
        }
    }
    canary.check();
}

/// The layers of `bad_names_are_refused_before_any_write`, rebuilt per backend.
fn cases_bytes(what: &str, canary: &Canary, too_long: &[u8], long_component: &[u8]) -> Vec<u8> {
    match what {
        "dotdot" => Layer::new().file_mode(b"../x", b"x", 0o644),
        "absolute" => Layer::new().file_mode(&[abs(canary), b"/canary".to_vec()].concat(), b"pwned", 0o644),
        "inner dotdot" => Layer::new().file_mode(b"a/../../x", b"x", 0o644),
        "empty" => Layer::new().file_mode(b"", b"x", 0o644),
        "nul" => Layer::new().pax(&[("path", b"a\0b")]).file_mode(b"placeholder", b"x", 0o644),
        "over-long" => Layer::new().long_name(too_long).file_mode(b"placeholder", b"x", 0o644),
        _ => Layer::new().long_name(long_component).file_mode(b"placeholder", b"x", 0o644),
    }
    .tar()
}

#[test]
fn bad_whiteouts_are_refused() {
    for kind in BOTH {
        for name in [".wh..", ".wh...", "dir/.wh..", ".wh."] {
            let env = Env::new(kind);
            let layer = Layer::new().dir("dir").file_mode(name.as_bytes(), b"", 0).tar();
            let err = env.apply(&layer).expect_err(name);
            assert_eq!(err.code, Code::InvalidArgument, "{name}: {err}");
            assert!(env.fs().join("dir").is_dir(), "{name}: the root or dir was removed");
        }
    }
}

#[test]
fn whiteout_of_a_symlink_removes_only_the_link() {
    for kind in BOTH {
        let canary = Canary::new();
        let env = Env::new(kind);
        env.apply(&Layer::new().symlink("link", &abs(&canary)).tar()).expect("layer 1");
        env.apply(&Layer::new().file_mode(b".wh.link", b"", 0).tar()).expect("layer 2");
        canary.check();
        let m = env.fs().join("link").symlink_metadata();
        match kind {
            BackendKind::Native => assert!(m.is_err(), "link kept"),
            BackendKind::Overlay => {
                let m = m.expect("overlay whiteout");
                assert!(std::os::unix::fs::FileTypeExt::is_char_device(&m.file_type()));
                assert_eq!(m.rdev(), 0);
            }
        }
    }
}

#[test]
fn opaque_marker_after_same_layer_files_keeps_them() {
    for kind in BOTH {
        let env = Env::new(kind);
        env.apply(&Layer::new().dir("d").file("d/old", b"old").tar()).expect("layer 1");
        let layer = Layer::new().dir("d").file("d/keep", b"keep").dir("d/sub").file("d/sub/f", b"f");
        env.apply(&layer.file_mode(b"d/.wh..wh..opq", b"", 0).tar()).expect("layer 2");
        assert_eq!(std::fs::read(env.fs().join("d/keep")).expect("kept"), b"keep");
        assert_eq!(std::fs::read(env.fs().join("d/sub/f")).expect("kept"), b"f");
        match kind {
            BackendKind::Native => assert!(!env.fs().join("d/old").exists(), "lower file survived"),
            BackendKind::Overlay => {
                assert!(berth_snapshot::layer::whiteout::is_opaque(&env.fs().join("d")), "opaque xattr");
            }
        }
    }
}

#[test]
fn diff_id_covers_trailing_bytes() {
    use sha2::Digest as _;
    let env = Env::new(BackendKind::Overlay);
    let tar = Layer::new().file("a", b"a").tar();
    let applied = env.apply(&tar).expect("apply");
    assert_eq!(applied.diff_id.as_bytes()[..], sha2::Sha256::digest(&tar)[..]);
    let mut tail = tar.clone();
    tail.extend_from_slice(b"trailing garbage");
    let env = Env::new(BackendKind::Overlay);
    let applied2 = env.apply(&common::gzip(&tail)).expect("apply with trailer");
    assert_ne!(applied2.diff_id, applied.diff_id, "trailing bytes must change the diff_id");
    assert_eq!(applied2.diff_id.as_bytes()[..], sha2::Sha256::digest(&tail)[..]);
    assert_eq!(applied2.size, tail.len() as u64);
}

fn vm_rss_kib() -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").expect("status");
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

#[test]
fn gzip_bomb_stops_at_the_cap_with_flat_memory() {
    // 1 GiB of zeros as one file: a header member, 1024 members of 1 MiB of zeros, an end.
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Regular);
    h.set_path("bomb").expect("path");
    h.set_size(1 << 30);
    h.set_mode(0o644);
    h.set_cksum();
    let mut blob = common::gzip(h.as_bytes());
    let mib = common::gzip(&vec![0u8; 1 << 20]);
    for _ in 0..1024 {
        blob.extend_from_slice(&mib);
    }
    blob.extend(common::gzip(&[0u8; 1024]));
    assert!(blob.len() < 16 << 20, "the bomb is small: {}", blob.len());
    let env = Env::with_cap(BackendKind::Overlay, 8 << 20);
    let before = vm_rss_kib();
    let err = env.apply(&blob).expect_err("over the cap");
    let after = vm_rss_kib();
    assert_eq!(err.code, Code::OutOfRange, "{err}");
    assert!(after < before + 32 * 1024, "memory grew from {before} KiB to {after} KiB");
}

/// An octal numeric field of 12 bytes.
fn octal12(v: u64) -> [u8; 12] {
    let mut f = [0u8; 12];
    f[..11].copy_from_slice(format!("{v:011o}").as_bytes());
    f
}

/// A one-entry tar: a GNU sparse file of `real` bytes whose only data is 512 bytes of `x`
/// at its end.
fn sparse_tar(real: u64) -> Vec<u8> {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::GNUSparse);
    h.set_path("sparse").expect("path");
    h.set_size(512);
    h.set_mode(0o644);
    let g = h.as_gnu_mut().expect("gnu header");
    g.realsize = octal12(real);
    g.sparse[0].offset = octal12(real - 512);
    g.sparse[0].numbytes = octal12(512);
    h.set_cksum();
    let mut t = h.as_bytes().to_vec();
    t.extend_from_slice(&[b'x'; 512]);
    t.extend_from_slice(&[0u8; 1024]);
    t
}

#[test]
fn sparse_entry_cannot_expand_past_the_cap() {
    let blob = common::gzip(&sparse_tar(1 << 30));
    assert!(blob.len() < 200, "the layer is tiny: {}", blob.len());
    let env = Env::with_cap(BackendKind::Overlay, 1 << 20);
    let err = env.apply(&blob).expect_err("1 GiB sparse file under a 1 MiB cap");
    assert_eq!(err.code, Code::OutOfRange, "{err}");
    assert!(err.message.contains("\"sparse\"") && err.message.contains("max_layer_bytes"), "{err}");
    let written = std::fs::symlink_metadata(env.fs().join("sparse")).map(|m| m.blocks() * 512).unwrap_or(0);
    assert!(written <= 2 << 20, "{written} bytes on disk for a refused layer");
}

#[test]
fn sparse_entry_under_the_cap_keeps_its_holes() {
    let env = Env::with_cap(BackendKind::Native, 128 << 20);
    env.apply(&common::gzip(&sparse_tar(64 << 20))).expect("apply");
    let p = env.fs().join("sparse");
    let m = std::fs::symlink_metadata(&p).expect("stat");
    assert_eq!(m.len(), 64 << 20);
    assert!(m.blocks() * 512 < 1 << 20, "holes were written out: {} blocks", m.blocks());
    let f = std::fs::File::open(&p).expect("open");
    let mut head = vec![1u8; 4096];
    std::os::unix::fs::FileExt::read_exact_at(&f, &mut head, 0).expect("read head");
    assert!(head.iter().all(|b| *b == 0), "the hole reads as zeros");
    let mut end = vec![0u8; 512];
    std::os::unix::fs::FileExt::read_exact_at(&f, &mut end, (64 << 20) - 512).expect("read end");
    assert!(end.iter().all(|b| *b == b'x'), "the data block is at the end");
}

#[test]
fn entries_and_remembered_paths_are_bounded_per_layer() {
    let mut layer = Layer::new();
    for i in 0..200 {
        layer = layer.file(&format!("d{}/{}", i % 10, "n".repeat(60) + &i.to_string()), b"x");
    }
    let blob = layer.gzip();

    let mut env = Env::new(BackendKind::Overlay);
    env.backend.limits.entries = 150;
    let err = env.apply(&blob).expect_err("200 entries over 150");
    assert_eq!(err.code, Code::OutOfRange, "{err}");
    assert!(err.message.contains("more than 150 entries (max_layer_entries)"), "{err}");

    let mut env = Env::new(BackendKind::Overlay);
    env.backend.limits.memory_bytes = 8 << 10;
    let err = env.apply(&blob).expect_err("200 long paths over 8 KiB");
    assert_eq!(err.code, Code::OutOfRange, "{err}");
    assert!(err.message.contains("more than 8192 bytes (max_layer_memory_bytes)"), "{err}");

    let env = Env::new(BackendKind::Overlay);
    env.apply(&blob).expect("the same layer under the default limits");
}
