//! The SPDY/3.1 frame codec of the CRI streaming server.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| berth_fuzz::spdy(data));
