//! The launcher service's request decoder: a `Request` frame payload as the server decodes it.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    berth_fuzz::request::<berth_ipc::launcher::Launcher>(data);
});
