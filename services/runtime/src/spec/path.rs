//! Paths of the image resolved inside its rootfs, as the container will see them: symlinks
//! are followed with the rootfs as `/`, a `..` that would climb above it is refused, and a
//! path that lands in the kernel's filesystems (`/proc`, `/sys`, `/dev`) is refused too, so a
//! `WORKDIR` cannot point the process at a leaked fd (`/proc/self/fd/…`).

use std::path::{Component, Path, PathBuf};

use berth_ipc::{Error, Result};

/// Symlinks followed before giving up, like the kernel's `ELOOP`.
const MAX_LINKS: usize = 40;
/// Largest file read by [`read_in_root`].
const MAX_FILE: u64 = 4 << 20;

/// The path `path` (absolute, container view) resolves to inside `rootfs`, with every
/// symlink followed. Missing components are kept as they are (the runtime creates them).
pub fn resolve_in_root(rootfs: &Path, path: &str) -> Result<String> {
    if !path.starts_with('/') {
        return Err(Error::invalid(format!("path {path:?}: must be absolute")));
    }
    let mut pending: Vec<String> = Vec::new();
    push_components(&mut pending, path);
    let mut resolved: Vec<String> = Vec::new();
    let mut links = 0;
    while let Some(part) = pending.pop() {
        if part == ".." {
            if resolved.pop().is_none() {
                return Err(Error::invalid(format!("path {path:?}: escapes the rootfs")));
            }
            continue;
        }
        let candidate = rootfs.join(resolved.join("/")).join(&part);
        match std::fs::symlink_metadata(&candidate) {
            Ok(meta) if meta.file_type().is_symlink() => {
                links += 1;
                if links > MAX_LINKS {
                    return Err(Error::invalid(format!("path {path:?}: too many symlinks")));
                }
                let target = std::fs::read_link(&candidate)
                    .map_err(|e| Error::invalid(format!("path {path:?}: {e}")))?;
                let target = target.to_string_lossy().into_owned();
                if target.starts_with('/') {
                    resolved.clear();
                }
                push_components(&mut pending, &target);
            }
            _ => resolved.push(part),
        }
    }
    let out = format!("/{}", resolved.join("/"));
    if let Some(first) = resolved.first()
        && matches!(first.as_str(), "proc" | "sys" | "dev")
    {
        return Err(Error::invalid(format!("path {path:?}: resolves into /{first} ({out})")));
    }
    Ok(out)
}

/// Pushes `path`'s components in reverse so that popping yields them in order.
fn push_components(stack: &mut Vec<String>, path: &str) {
    let parts: Vec<String> = Path::new(path)
        .components()
        .filter_map(|c| match c {
            Component::Normal(s) => Some(s.to_string_lossy().into_owned()),
            Component::ParentDir => Some("..".to_string()),
            _ => None,
        })
        .collect();
    stack.extend(parts.into_iter().rev());
}

/// The host path of a container path inside `rootfs`, resolved with [`resolve_in_root`].
pub fn host_path(rootfs: &Path, path: &str) -> Result<PathBuf> {
    let inside = resolve_in_root(rootfs, path)?;
    Ok(rootfs.join(inside.trim_start_matches('/')))
}

/// The text of a small file of the image (`/etc/passwd`), `None` if it does not exist.
pub fn read_in_root(rootfs: &Path, path: &str) -> Result<Option<String>> {
    use std::io::Read;
    let host = host_path(rootfs, path)?;
    let file = match std::fs::File::open(&host) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::invalid(format!("{path}: {e}"))),
    };
    let mut text = String::new();
    file.take(MAX_FILE).read_to_string(&mut text).map_err(|e| Error::invalid(format!("{path}: {e}")))?;
    Ok(Some(text))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn symlinks_stay_inside() {
        let dir = tempfile::tempdir().expect("tempdir");
        let r = dir.path();
        std::fs::create_dir_all(r.join("srv/app")).expect("mkdir");
        symlink("/srv/app", r.join("work")).expect("symlink");
        symlink("../srv", r.join("srv/rel")).expect("symlink");
        symlink("/proc/self/fd/7", r.join("leak")).expect("symlink");
        symlink("../../../../../etc", r.join("srv/out")).expect("symlink");
        symlink("loop", r.join("loop")).expect("symlink");
        assert_eq!(resolve_in_root(r, "/work").expect("work"), "/srv/app");
        assert_eq!(resolve_in_root(r, "/work/sub/./x").expect("sub"), "/srv/app/sub/x");
        assert_eq!(resolve_in_root(r, "/srv/rel/app").expect("rel"), "/srv/app");
        assert_eq!(resolve_in_root(r, "/").expect("root"), "/");
        for bad in ["/leak", "/proc/self/cwd", "/srv/out", "/..", "relative", "/loop"] {
            let err = resolve_in_root(r, bad).expect_err(bad);
            assert!(err.is(berth_ipc::Code::InvalidArgument), "{bad}: {err:?}");
        }
        assert!(resolve_in_root(r, "/leak").expect_err("leak").message.contains("/proc"));
        assert!(resolve_in_root(r, "/srv/out").expect_err("out").message.contains("escapes"));
    }
}
