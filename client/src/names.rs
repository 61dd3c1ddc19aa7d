//! The one normalization of image names a user types: every command that takes an image
//! name (images rm/tag/label/check/export/push/mount/unpack, `images ls` name filters, run,
//! containers create, commit, import `--name`/`--base-name`) resolves it here, so `mytiny`
//! means `docker.io/library/mytiny:latest` everywhere.

use berth_ipc::metadata::{ByName, GetImage};

use crate::Services;
use crate::reference::normalize;

/// The stored name `name` stands for in namespace `ns`: its normalized form
/// (`busybox` → `docker.io/library/busybox:latest`), unless an image has exactly the name
/// as typed (a record from before names were normalized everywhere, or a name that is not
/// a reference at all), which is then kept.
pub async fn image_name(services: &Services, ns: &str, name: &str) -> String {
    let Ok(normalized) = normalize(name) else { return name.to_string() };
    if normalized == name {
        return normalized;
    }
    let get = GetImage(ByName { namespace: ns.to_string(), name: name.to_string() });
    if services.metadata.call(get).await.is_ok() {
        return name.to_string();
    }
    normalized
}

/// `filter` with the value of a `name==…`/`name!=…` term normalized, so `images ls
/// name==busybox` finds `docker.io/library/busybox:latest`; other terms are kept.
pub fn normalize_filter(filter: &str) -> String {
    filter
        .split(',')
        .map(|term| {
            for op in ["==", "!="] {
                if let Some(v) = term.strip_prefix(&format!("name{op}")) {
                    let (quoted, raw) = match v.strip_prefix('"').and_then(|v| v.strip_suffix('"')) {
                        Some(inner) => (true, inner),
                        None => (false, v),
                    };
                    if let Ok(n) = normalize(raw) {
                        return if quoted { format!("name{op}\"{n}\"") } else { format!("name{op}{n}") };
                    }
                }
            }
            term.to_string()
        })
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_filters_are_normalized() {
        assert_eq!(normalize_filter("name==mytiny"), "name==docker.io/library/mytiny:latest");
        assert_eq!(
            normalize_filter("name!=\"a:1\",labels.x==y"),
            "name!=\"docker.io/library/a:1\",labels.x==y"
        );
        assert_eq!(normalize_filter("name~=tiny"), "name~=tiny");
    }
}
