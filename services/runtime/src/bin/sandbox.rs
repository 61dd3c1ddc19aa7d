//! `berth-sandbox`: holds a pod sandbox's namespaces. See `berth_runtime::pin`.

fn main() -> std::process::ExitCode {
    berth_runtime::pin::main()
}
