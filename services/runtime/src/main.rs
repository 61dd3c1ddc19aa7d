//! `berth-runtime`: the runtime service process. See the `berth_runtime` library.

fn main() -> std::process::ExitCode {
    berth_service_kit::main("runtime", berth_runtime::run)
}
