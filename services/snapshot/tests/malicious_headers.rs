//! Extension headers from a stranger: a GNU long name, long link or PAX header declaring
//! a huge body is refused before the tar parser reads it into memory. Alone in its file
//! (its own process), so the peak-memory figures are this test's.

mod common;

use berth_ipc::Code;
use berth_snapshot::BackendKind;
use common::Env;

fn vm_rss_kib() -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").expect("status");
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

/// A tar whose first header is an extension of `kind` declaring a `size`-byte body of `a`s,
/// gzip'd as repeated members so the blob stays small.
fn huge_extension(kind: tar::EntryType, size: u64) -> Vec<u8> {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_path("././@LongLink").expect("path");
    h.set_size(size);
    h.set_mode(0o644);
    h.set_cksum();
    let mut blob = common::gzip(h.as_bytes());
    let mib = common::gzip(&vec![b'a'; 1 << 20]);
    for _ in 0..size >> 20 {
        blob.extend_from_slice(&mib);
    }
    blob.extend(common::gzip(&[0u8; 1024]));
    blob
}

fn vm_hwm_kib() -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").expect("status");
    s.lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM")
}

#[test]
fn long_name_and_pax_bodies_are_refused_before_they_are_read() {
    for kind in [tar::EntryType::GNULongName, tar::EntryType::GNULongLink, tar::EntryType::XHeader] {
        let blob = huge_extension(kind, 256 << 20);
        assert!(blob.len() < 4 << 20, "the layer is small: {}", blob.len());
        let env = Env::new(BackendKind::Overlay);
        let (rss, hwm) = (vm_rss_kib(), vm_hwm_kib());
        let err = env.apply(&blob).expect_err("256 MiB extension header");
        let (rss2, hwm2) = (vm_rss_kib(), vm_hwm_kib());
        eprintln!("{kind:?}: VmRSS {rss} -> {rss2} KiB, VmHWM {hwm} -> {hwm2} KiB");
        assert_eq!(err.code, Code::InvalidArgument, "{err}");
        assert!(err.message.contains("over the limit of 1048576 bytes (max_header_bytes)"), "{err}");
        assert!(hwm2 < hwm + 64 * 1024, "{kind:?}: peak memory grew from {hwm} KiB to {hwm2} KiB");
    }
}
