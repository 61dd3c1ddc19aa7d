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
///
/// Symlinks are followed with the rootfs as `/` ([`resolve_in_root`]); the path they lead
/// to is then opened by the kernel inside the rootfs too (`openat2` with `RESOLVE_IN_ROOT`,
/// no magic links), `O_NOFOLLOW|O_NONBLOCK`, so neither a symlink swapped in meanwhile nor a
/// FIFO can lead or hold the open; and it must be a regular file of at
/// most [`MAX_FILE`] bytes: an image's FIFO would hang the create, and a device node would
/// be read on the host, outside the container's device cgroup.
pub fn read_in_root(rootfs: &Path, path: &str) -> Result<Option<String>> {
    use nix::fcntl::{OFlag, OpenHow, ResolveFlag};
    use std::io::Read;
    let inside = resolve_in_root(rootfs, path)?;
    let root = std::fs::File::open(rootfs)
        .map_err(|e| Error::internal_cause(format_args!("rootfs {}", rootfs.display()), e))?;
    // (openat2 refuses flags O_PATH ignores.)
    let open = |flags: OFlag| {
        let how = OpenHow::new()
            .flags(flags | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC)
            .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS);
        nix::fcntl::openat2(&root, inside.trim_start_matches('/'), how).map(std::fs::File::from)
    };
    // First a path-only handle, to look at what it is without opening it (a device on the
    // `nodev` spec mount would only say "permission denied"); then the file itself.
    let file = match open(OFlag::O_PATH) {
        Ok(f) => f,
        Err(nix::errno::Errno::ENOENT) => return Ok(None),
        Err(e) => return Err(Error::invalid(format!("image file {path}: {}", e.desc()))),
    };
    regular(path, &file)?;
    let file = open(OFlag::O_RDONLY | OFlag::O_NONBLOCK | OFlag::O_NOCTTY)
        .map_err(|e| Error::invalid(format!("image file {path}: {}", e.desc())))?;
    regular(path, &file)?;
    let mut text = String::new();
    file.take(MAX_FILE)
        .read_to_string(&mut text)
        .map_err(|e| Error::invalid(format!("image file {path}: {e}")))?;
    Ok(Some(text))
}

/// `file` must be a regular file of at most [`MAX_FILE`] bytes.
fn regular(path: &str, file: &std::fs::File) -> Result<()> {
    let meta = file.metadata().map_err(|e| Error::invalid(format!("image file {path}: {e}")))?;
    if !meta.file_type().is_file() {
        return Err(Error::invalid(format!(
            "image file {path}: not a regular file ({}); refused",
            kind(&meta.file_type())
        )));
    }
    if meta.len() > MAX_FILE {
        return Err(Error::invalid(format!(
            "image file {path}: {} bytes, more than the {MAX_FILE} read",
            meta.len()
        )));
    }
    Ok(())
}

/// A file type's name, for an error.
fn kind(t: &std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    match () {
        _ if t.is_dir() => "a directory",
        _ if t.is_fifo() => "a FIFO",
        _ if t.is_char_device() => "a character device",
        _ if t.is_block_device() => "a block device",
        _ if t.is_socket() => "a socket",
        _ if t.is_symlink() => "a symlink",
        _ => "not a regular file",
    }
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

    #[test]
    fn image_files_must_be_regular() {
        let dir = tempfile::tempdir().expect("tempdir");
        let r = dir.path();
        std::fs::create_dir_all(r.join("etc")).expect("mkdir");
        nix::unistd::mkfifo(&r.join("etc/passwd"), nix::sys::stat::Mode::from_bits_truncate(0o644))
            .expect("mkfifo");
        std::os::unix::fs::symlink("/etc/passwd", r.join("etc/group")).expect("symlink");
        std::fs::create_dir(r.join("etc/dir")).expect("dir");
        // A FIFO (also reached through a symlink) fails at once rather than hanging.
        let started = std::time::Instant::now();
        let err = read_in_root(r, "/etc/passwd").expect_err("fifo");
        assert!(err.message.contains("a FIFO"), "{}", err.message);
        let err = read_in_root(r, "/etc/group").expect_err("link to fifo");
        assert!(err.message.contains("a FIFO"), "{}", err.message);
        assert!(started.elapsed() < std::time::Duration::from_secs(2));
        let err = read_in_root(r, "/etc/dir").expect_err("dir");
        assert!(err.message.contains("a directory"), "{}", err.message);
        // Symlinks resolve inside the rootfs, never to the host's file.
        std::fs::remove_file(r.join("etc/passwd")).expect("rm");
        std::fs::write(r.join("etc/passwd"), "x:x:1:1::/:/bin/sh\n").expect("write");
        std::os::unix::fs::symlink("/etc/passwd", r.join("up")).expect("symlink");
        assert_eq!(read_in_root(r, "/up").expect("up").as_deref(), Some("x:x:1:1::/:/bin/sh\n"));
        assert_eq!(read_in_root(r, "/nothing").expect("missing"), None);
        let big = vec![b'a'; (MAX_FILE + 1) as usize];
        std::fs::write(r.join("etc/big"), big).expect("big");
        let err = read_in_root(r, "/etc/big").expect_err("big");
        assert!(err.message.contains("more than"), "{}", err.message);
    }
}
