//! The line the CLI prints when a command fails: `berth: what failed: why (code)`.
//!
//! Errors from a service keep their [`berth_ipc::Error`] inside the `anyhow` chain (see
//! `cmd::namespaces::wire`), so the line can name the wire code — whether retrying may help
//! (`unavailable`), the request is wrong (`invalid argument`), or the service failed
//! (`internal`, the cause's text then follows the object it names).

/// The failure line for `e`, without the `berth: ` prefix: the whole chain, outer context
/// first, then the wire code in parentheses when a service answered and the message does
/// not already say it.
pub fn line(e: &anyhow::Error) -> String {
    let text = format!("{e:#}");
    match e.chain().find_map(|c| c.downcast_ref::<berth_ipc::Error>()) {
        Some(wire) if !text.contains(wire.code.as_str()) => format!("{text} ({})", wire.code),
        _ => text,
    }
}

/// [`line`] for one item's wire error in a command over several (`rm A B C`).
pub fn wire_line(e: berth_ipc::Error) -> String {
    line(&anyhow::Error::new(e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_ipc::Error;

    #[test]
    fn a_service_error_names_its_code_once() {
        let e = anyhow::Error::new(Error::unavailable("metadata service at /run/x.sock: refused"));
        assert_eq!(
            line(&e.context("pull a:b")),
            "pull a:b: metadata service at /run/x.sock: refused (unavailable)"
        );
        let e = anyhow::Error::new(Error::not_found("image default/a:b: not found"));
        assert_eq!(line(&e), "image default/a:b: not found");
        let e = anyhow::Error::new(Error::internal("snapshot task: panicked"));
        assert_eq!(line(&e), "snapshot task: panicked (internal)");
        let e = anyhow::Error::new(Error::internal_cause("mount /x on /y", "device busy"));
        assert_eq!(line(&e.context("run web")), "run web: mount /x on /y: device busy (internal)");
        assert_eq!(
            wire_line(Error::precondition("namespace x: not empty")),
            "namespace x: not empty (failed precondition)"
        );
    }

    #[test]
    fn wire_keeps_the_code_through_context() {
        let e = crate::cmd::namespaces::wire(Error::invalid("label \"a b\": bad key")).context("lease l1");
        assert_eq!(line(&e), "lease l1: label \"a b\": bad key (invalid argument)");
    }

    #[test]
    fn a_local_error_is_printed_as_it_is() {
        let e = anyhow::anyhow!("--since: not a time");
        assert_eq!(line(&e), "--since: not a time");
    }
}
