//! `berth-cri`: the CRI service process. See the `berth_cri` library.

fn main() -> std::process::ExitCode {
    berth_service_kit::main("cri", berth_cri::run)
}
