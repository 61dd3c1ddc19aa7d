//! The frame decoder: one header, then a byte stream read frame by frame.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| berth_fuzz::frame(data));
