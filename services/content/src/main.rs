//! `berth-content`: the content service process. See the `berth_content` library.

fn main() -> std::process::ExitCode {
    berth_service_kit::main("content", berth_content::run)
}
