//! `berth-metadata`: the metadata service process. See the `berth_metadata` library.

fn main() -> std::process::ExitCode {
    berth_service_kit::main("metadata", berth_metadata::run)
}
