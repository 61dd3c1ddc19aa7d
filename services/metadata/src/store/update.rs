//! Field-path updates shared by every record: `labels` replaces the whole set,
//! `labels.<key>` sets one label from the update or removes it when the update lacks it.
//! A label key may itself contain dots: everything after the first `labels.` is the key.

use berth_ipc::metadata::Labels;
use berth_ipc::names;
use berth_ipc::{Error, Result};

/// A field path split at its first dot: `labels.a.b` → (`labels`, `Some("a.b")`).
pub fn split(path: &str) -> (&str, Option<&str>) {
    match path.split_once('.') {
        Some((head, tail)) => (head, Some(tail)),
        None => (path, None),
    }
}

/// Applies a `labels` or `labels.<key>` path; `Ok(false)` if `path` is about another field.
pub fn labels(path: &str, current: &mut Labels, update: &Labels) -> Result<bool> {
    match split(path) {
        ("labels", None) => {
            names::validate_labels(update)?;
            *current = update.clone();
            Ok(true)
        }
        ("labels", Some(key)) => {
            match update.get(key) {
                Some(v) => {
                    names::validate_label(key, v)?;
                    current.insert(key.to_string(), v.clone());
                }
                None => {
                    current.remove(key);
                }
            }
            Ok(true)
        }
        _ => Ok(false),
    }
}

/// Applies paths that may only name labels (namespaces, content and snapshot records);
/// no paths means replace the labels.
pub fn labels_only(what: &str, paths: &[String], current: &mut Labels, update: &Labels) -> Result<()> {
    if paths.is_empty() {
        return labels("labels", current, update).map(|_| ());
    }
    for path in paths {
        if !labels(path, current, update)? {
            return Err(unknown(what, path));
        }
    }
    Ok(())
}

/// Applies an `extensions` (the whole map) or `extensions.<name>` (one entry, removed when
/// absent from the update) path; false for any other path.
pub fn extensions(
    path: &str,
    current: &mut std::collections::BTreeMap<String, Vec<u8>>,
    update: &std::collections::BTreeMap<String, Vec<u8>>,
) -> bool {
    match split(path) {
        ("extensions", None) => *current = update.clone(),
        ("extensions", Some(name)) => match update.get(name) {
            Some(v) => {
                current.insert(name.to_string(), v.clone());
            }
            None => {
                current.remove(name);
            }
        },
        _ => return false,
    }
    true
}

/// `InvalidArgument` for a path the object does not have.
pub fn unknown(what: &str, path: &str) -> Error {
    Error::invalid(format!("{what}: cannot update field {path:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn l(pairs: &[(&str, &str)]) -> Labels {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn label_paths() {
        let mut cur = l(&[("a", "1"), ("b.c", "2")]);
        let upd = l(&[("a", "9"), ("x", "3")]);
        labels_only("image", &["labels.a".into(), "labels.b.c".into()], &mut cur, &upd).expect("ok");
        assert_eq!(cur, l(&[("a", "9")]));
        labels_only("image", &[], &mut cur, &upd).expect("ok");
        assert_eq!(cur, upd);
        let err = labels_only("namespace a", &["name".into()], &mut cur, &upd).expect_err("unknown");
        assert_eq!(err.message, "namespace a: cannot update field \"name\"");
    }
}
