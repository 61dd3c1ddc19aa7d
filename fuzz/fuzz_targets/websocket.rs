//! The WebSocket reader of the CRI streaming server.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| berth_fuzz::websocket(data));
