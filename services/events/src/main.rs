//! `berth-events`: the events service process. See the `berth_events` library.

fn main() -> std::process::ExitCode {
    berth_service_kit::main("events", berth_events::run)
}
