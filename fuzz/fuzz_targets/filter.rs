//! The containerd-style filter parser and matcher.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| berth_fuzz::filter(data));
