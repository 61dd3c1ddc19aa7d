//! `berth-snapshot`: the snapshot service process. See the `berth_snapshot` library.

fn main() -> std::process::ExitCode {
    berth_service_kit::main("snapshot", berth_snapshot::run)
}
