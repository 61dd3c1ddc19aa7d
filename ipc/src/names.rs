//! Validation of the names every service accepts: identifiers (namespaces, container ids,
//! lease ids, snapshotter names) by containerd's rule, labels by size, and the free-form
//! names (image references, snapshot keys) that only need to be non-empty, bounded and free
//! of control characters.
//!
//! Each check returns an `InvalidArgument` [`Error`] whose message names the object and
//! what is wrong with it, so a service can pass it to its client unchanged.

use std::collections::BTreeMap;

use crate::error::{Error, Result};

/// The longest identifier accepted (containerd's limit).
pub const MAX_IDENTIFIER_LEN: usize = 76;

/// The most bytes a label's key and value may take together (containerd's limit).
pub const MAX_LABEL_LEN: usize = 4096;

/// The longest free-form name (image reference, snapshot key) accepted.
pub const MAX_NAME_LEN: usize = 4096;

/// Checks an identifier against containerd's rule `^[A-Za-z0-9]+(?:[._-][A-Za-z0-9]+)*$`,
/// at most [`MAX_IDENTIFIER_LEN`] characters. `what` names the kind of object in the error
/// (`namespace`, `container id`, …).
pub fn validate_identifier(what: &str, id: &str) -> Result<()> {
    if id.is_empty() {
        return Err(Error::invalid(format!("{what}: must not be empty")));
    }
    if id.len() > MAX_IDENTIFIER_LEN {
        return Err(Error::invalid(format!(
            "{what} {}…: longer than {MAX_IDENTIFIER_LEN} characters",
            shorten(id)
        )));
    }
    let mut after_separator = true; // the first character must be alphanumeric
    for (pos, c) in id.char_indices() {
        let ok = if c.is_ascii_alphanumeric() {
            after_separator = false;
            true
        } else if matches!(c, '.' | '_' | '-') && !after_separator {
            after_separator = true;
            true
        } else {
            false
        };
        if !ok {
            return Err(Error::invalid(format!(
                "{what} {id:?}: character {c:?} at position {pos} is not allowed \
                 (letters, digits, and single '.', '_' or '-' between them)"
            )));
        }
    }
    if after_separator {
        return Err(Error::invalid(format!("{what} {id:?}: must end with a letter or digit")));
    }
    Ok(())
}

/// Checks a namespace name (an identifier).
pub fn validate_namespace(ns: &str) -> Result<()> {
    validate_identifier("namespace", ns)
}

/// Checks one label: a non-empty key, no NUL in key or value, key + value at most
/// [`MAX_LABEL_LEN`] bytes.
pub fn validate_label(key: &str, value: &str) -> Result<()> {
    if key.is_empty() {
        return Err(Error::invalid("label: key must not be empty"));
    }
    let len = key.len() + value.len();
    if len > MAX_LABEL_LEN {
        return Err(Error::invalid(format!(
            "label {}: key and value take {len} bytes, more than {MAX_LABEL_LEN}",
            shorten(key)
        )));
    }
    if key.contains('\0') || value.contains('\0') {
        return Err(Error::invalid(format!("label {}: contains a NUL byte", shorten(key))));
    }
    Ok(())
}

/// Checks every label of a set.
pub fn validate_labels(labels: &BTreeMap<String, String>) -> Result<()> {
    labels.iter().try_for_each(|(k, v)| validate_label(k, v))
}

/// Label key prefixes berth and containerd's garbage collector give a meaning to
/// (`containerd.io/gc.root`, `containerd.io/gc.ref.…`, `berth.io/unpack`…).
pub const RESERVED_LABEL_PREFIXES: [&str; 2] = ["containerd.io/", "berth.io/"];

/// Reserved labels a client may set nonetheless: `berth.io/rm-on-exit`
/// ([`crate::runtime::LABEL_RM_ON_EXIT`], what `berth run --rm -d` sets), and
/// `berth.io/sandbox` ([`crate::runtime::LABEL_SANDBOX`], which the runtime service sets on a
/// sandbox's containers and refuses from a client unless it names the same sandbox), and
/// `berth.io/sandbox-owner` ([`crate::runtime::LABEL_SANDBOX_OWNER`], which the runtime
/// service sets on a container's own sandbox and refuses from a client).
pub const USER_SETTABLE_LABELS: [&str; 3] =
    [crate::runtime::LABEL_RM_ON_EXIT, crate::runtime::LABEL_SANDBOX, crate::runtime::LABEL_SANDBOX_OWNER];

/// Checks labels a user sets on a container: [`validate_labels`], and no key in the space
/// of [`RESERVED_LABEL_PREFIXES`], which only berth itself sets (but for
/// [`USER_SETTABLE_LABELS`]).
pub fn validate_user_labels(labels: &BTreeMap<String, String>) -> Result<()> {
    validate_labels(labels)?;
    let reserved = |k: &str| {
        RESERVED_LABEL_PREFIXES.iter().any(|p| k.starts_with(p)) && !USER_SETTABLE_LABELS.contains(&k)
    };
    match labels.keys().find(|k| reserved(k)) {
        Some(k) => Err(Error::invalid(format!("label {}: reserved for berth itself", shorten(k)))),
        None => Ok(()),
    }
}

/// Checks a free-form name such as an image reference or a snapshot key: non-empty, at
/// most [`MAX_NAME_LEN`] bytes, no control characters.
pub fn validate_name(what: &str, name: &str) -> Result<()> {
    if name.is_empty() {
        return Err(Error::invalid(format!("{what}: must not be empty")));
    }
    if name.len() > MAX_NAME_LEN {
        return Err(Error::invalid(format!("{what} {}…: longer than {MAX_NAME_LEN} bytes", shorten(name))));
    }
    if let Some((pos, c)) = name.char_indices().find(|(_, c)| c.is_control()) {
        return Err(Error::invalid(format!("{what} {name:?}: control character {c:?} at position {pos}")));
    }
    Ok(())
}

/// The first 32 characters of `s`, for error messages about over-long input.
fn shorten(s: &str) -> &str {
    match s.char_indices().nth(32) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Code;

    #[test]
    fn identifiers_accepted() {
        for id in ["a", "default", "k8s.io", "a-b_c.d", "A1", &"x".repeat(76)] {
            assert!(validate_identifier("namespace", id).is_ok(), "{id}");
        }
    }

    #[test]
    fn identifiers_refused() {
        for id in ["", "-a", "a-", "a..b", "a/b", "a b", ".", "é", &"x".repeat(77), "a-_b"] {
            let err = validate_identifier("namespace", id).expect_err(id);
            assert_eq!(err.code, Code::InvalidArgument, "{id}");
        }
    }

    #[test]
    fn identifier_error_names_position() {
        let err = validate_identifier("container id", "ab/c").expect_err("slash");
        assert_eq!(
            err.message,
            "container id \"ab/c\": character '/' at position 2 is not allowed \
             (letters, digits, and single '.', '_' or '-' between them)"
        );
        let err = validate_identifier("namespace", "ab-").expect_err("trailing dash");
        assert_eq!(err.message, "namespace \"ab-\": must end with a letter or digit");
    }

    #[test]
    fn label_limits() {
        assert!(validate_label("k", &"v".repeat(4095)).is_ok());
        let err = validate_label("k", &"v".repeat(4096)).expect_err("too long");
        assert_eq!(err.message, "label k: key and value take 4097 bytes, more than 4096");
        assert!(validate_label("", "v").is_err());
        assert!(validate_label("k", "a\0b").is_err());
    }

    #[test]
    fn names() {
        assert!(validate_name("image", "docker.io/library/alpine:latest").is_ok());
        assert!(validate_name("image", "").is_err());
        assert!(validate_name("image", "a\nb").is_err());
        assert!(validate_name("image", &"a".repeat(4097)).is_err());
    }
}
