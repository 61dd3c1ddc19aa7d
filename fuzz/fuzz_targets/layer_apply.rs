//! Tar layer apply (gzip, zstd or plain) into a throw-away root that nothing may escape.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| berth_fuzz::jail::layer_apply(data));
