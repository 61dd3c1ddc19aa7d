//! Checks on the execution part of an image config (`config.User`, `WorkingDir`,
//! `Volumes`) when an image comes in, so that an image whose config could only fail later
//! (or mislead a runtime: a uid that wraps, a path that climbs out with `..`) is refused at
//! pull or import with an error naming the config, before any image record exists. The
//! runtime checks again, inside the rootfs, when a container is made.

use std::collections::BTreeMap;

use berth_ipc::{Error, Result};
use serde::Deserialize;

/// The longest `User` accepted (user and group names are at most 32 bytes on Linux).
pub const MAX_USER: usize = 256;
/// The longest path accepted.
pub const MAX_PATH: usize = 4096;

/// The execution section of a config, as far as it is checked.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Exec {
    /// `USER`.
    #[serde(default)]
    pub user: Option<String>,
    /// `WORKDIR`.
    #[serde(default)]
    pub working_dir: Option<String>,
    /// `VOLUME`s, by path.
    #[serde(default)]
    pub volumes: Option<BTreeMap<String, serde_json::Value>>,
}

/// Checks `exec`; `what` names the config in errors.
pub fn check(exec: &Exec, what: &str) -> Result<()> {
    if let Some(u) = &exec.user {
        check_user(u).map_err(|why| Error::invalid(format!("{what}: User {:?}: {why}", short(u))))?;
    }
    if let Some(w) = &exec.working_dir {
        check_path(w).map_err(|why| Error::invalid(format!("{what}: WorkingDir {:?}: {why}", short(w))))?;
    }
    for v in exec.volumes.iter().flat_map(BTreeMap::keys) {
        check_path(v).map_err(|why| Error::invalid(format!("{what}: volume {:?}: {why}", short(v))))?;
    }
    Ok(())
}

fn short(s: &str) -> String {
    s.chars().take(64).collect()
}

fn check_user(u: &str) -> std::result::Result<(), &'static str> {
    if u.len() > MAX_USER {
        return Err("too long");
    }
    if u.chars().any(char::is_control) {
        return Err("control character");
    }
    if u.is_empty() {
        return Ok(());
    }
    let parts: Vec<&str> = u.split(':').collect();
    if parts.len() > 2 {
        return Err("expected user[:group]");
    }
    for p in parts {
        if p.is_empty() {
            return Err("empty user or group");
        }
        if p.starts_with('-') {
            return Err("negative or option-like id");
        }
        if p.bytes().all(|b| b.is_ascii_digit()) {
            // (uid_t)-1 means "unchanged" to the kernel: not an id either.
            match p.parse::<u32>() {
                Ok(id) if id < u32::MAX => {}
                _ => return Err("id out of range"),
            }
        }
    }
    Ok(())
}

fn check_path(p: &str) -> std::result::Result<(), &'static str> {
    if p.len() > MAX_PATH {
        return Err("too long");
    }
    if p.chars().any(char::is_control) {
        return Err("control character");
    }
    if p.split('/').any(|c| c == "..") {
        return Err("climbs with ..");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users() {
        for ok in ["", "0", "1000:1000", "nginx", "web:web", "4294967294"] {
            assert!(check_user(ok).is_ok(), "{ok}");
        }
        for bad in ["0:0:0", "-1", "4294967296", "4294967295", ":0", "0:", "a\nb", &"u".repeat(300)] {
            assert!(check_user(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn paths() {
        assert!(check_path("/srv/work").is_ok());
        assert!(check_path("/..foo/x..").is_ok());
        for bad in ["/../../etc", "a/../..", "/x\0"] {
            assert!(check_path(bad).is_err(), "{bad}");
        }
    }
}
