//! Tiny layers that declare huge things, imported through the CLI: a GNU sparse file of
//! 1 GiB in a 2 KiB layer, and a GNU long name declaring 32 MiB. Each is refused with an
//! error naming the layer's digest and the setting; the sparse one writes nothing near its
//! size, and the long name does not raise the snapshot service's peak memory (VmHWM).

use berth_ipc::Digest;
use berth_system_tests::Berth;
use berth_system_tests::hostile::{RawImage, assert_clean};

/// An octal numeric field of 12 bytes.
fn octal12(v: u64) -> [u8; 12] {
    let mut f = [0u8; 12];
    f[..11].copy_from_slice(format!("{v:011o}").as_bytes());
    f
}

/// A GNU sparse file of `real` bytes whose only data is 512 bytes at its end.
fn sparse_layer(real: u64) -> Vec<u8> {
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

/// A GNU long name of `size` bytes for a one-byte file.
fn long_name_layer(size: usize) -> Vec<u8> {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::GNULongName);
    h.set_path("././@LongLink").expect("path");
    h.set_size(size as u64);
    h.set_cksum();
    let mut t = h.as_bytes().to_vec();
    t.resize(512 + size.div_ceil(512) * 512, b'a');
    let mut f = tar::Header::new_gnu();
    f.set_entry_type(tar::EntryType::Regular);
    f.set_path("f").expect("path");
    f.set_size(1);
    f.set_cksum();
    t.extend_from_slice(f.as_bytes());
    t.extend_from_slice(b"x");
    t.resize(t.len() + 511 + 1024, 0);
    t
}

fn vm_hwm_kib(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    s.lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM")
}

fn import(berth: &Berth, ns: &str, name: &str, layer: Vec<u8>) -> String {
    let img = RawImage::new(vec![layer.clone()], serde_json::json!({"Cmd": ["/x"]}), serde_json::json!({}));
    let archive = berth.dir.path().join(format!("{ns}.tar"));
    img.layout_tar(name, &[], &archive);
    let out = berth.cli(&["-n", ns, "images", "import", archive.to_str().expect("utf8")]);
    let _ = std::fs::remove_file(&archive);
    assert!(!out.status.success(), "{ns}: accepted");
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    println!("{ns}: {err}");
    assert!(err.contains(&Digest::of(&layer).to_string()), "{ns}: the error does not name the layer: {err}");
    assert_clean(berth, ns, name, &[layer]);
    err
}

#[test]
fn tiny_layers_cannot_fill_disk_or_memory() {
    let mut berth = Berth::start_with("[snapshot]\nmax_layer_bytes = 67108864\n");

    let err = import(&berth, "sparse", "docker.io/hostile/sparse:v1", sparse_layer(1 << 30));
    assert!(err.contains("over the layer's cap of 67108864 bytes (max_layer_bytes)"), "{err}");
    let du = std::process::Command::new("du").args(["-sk"]).arg(&berth.root).output().expect("du");
    let kib: u64 = String::from_utf8_lossy(&du.stdout)
        .split_whitespace()
        .next()
        .and_then(|v| v.parse().ok())
        .expect("du output");
    assert!(kib < 64 << 10, "berth's root holds {kib} KiB after a refused 2 KiB layer");

    let pid = berth.status("snapshot").pid.expect("snapshot pid");
    let before = vm_hwm_kib(pid);
    let err = import(&berth, "longname", "docker.io/hostile/longname:v1", long_name_layer(32 << 20));
    let after = vm_hwm_kib(pid);
    println!("snapshot service VmHWM {before} -> {after} KiB");
    assert!(err.contains("over the limit of 1048576 bytes (max_header_bytes)"), "{err}");
    assert_eq!(berth.status("snapshot").pid, Some(pid), "the snapshot service restarted");
    assert!(after < before + 16 * 1024, "peak memory grew from {before} KiB to {after} KiB");
}
