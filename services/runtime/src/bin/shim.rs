//! `berth-shim`: the per-container shim. See `berth_runtime::shim`.

fn main() -> std::process::ExitCode {
    berth_runtime::shim::main()
}
