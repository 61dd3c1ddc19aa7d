//! Manifest, index and config parsing, media-type sniffing, platforms.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| berth_fuzz::oci(data));
