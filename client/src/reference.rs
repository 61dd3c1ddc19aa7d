//! Image references with Docker's normalization: `alpine` → `docker.io/library/alpine:latest`,
//! `host:5000/x` keeps its host, `name@sha256:…` pins a digest.

use std::fmt;
use std::sync::LazyLock;

use berth_ipc::{Digest, Error, Result};
use regex::Regex;

/// The default registry's name in references.
pub const DOCKER_IO: &str = "docker.io";
/// Longest reference accepted.
pub const MAX_LEN: usize = 4096;

static COMPONENT: LazyLock<Option<Regex>> =
    LazyLock::new(|| Regex::new(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$").ok());
static TAG: LazyLock<Option<Regex>> =
    LazyLock::new(|| Regex::new(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$").ok());
static DOMAIN: LazyLock<Option<Regex>> = LazyLock::new(|| {
    Regex::new(r"^(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*|\[[0-9a-fA-F:]+\])(?::[0-9]{1,5})?$")
        .ok()
});

fn is(re: &LazyLock<Option<Regex>>, s: &str) -> bool {
    re.as_ref().is_some_and(|r| r.is_match(s))
}

/// A normalized reference.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Reference {
    /// Registry host (and port), `docker.io` for Docker Hub.
    pub domain: String,
    /// Repository path (`library/alpine`).
    pub path: String,
    /// Tag; `latest` when neither tag nor digest was given.
    pub tag: Option<String>,
    /// Pinned digest.
    pub digest: Option<Digest>,
}

/// `s` with what looks like URL user info (`user:password@` before the first `/`) masked, so
/// credentials typed into a reference are never printed.
fn redact(s: &str) -> String {
    match s.split_once('@') {
        Some((before, after)) if !before.contains('/') => format!("****@{after}"),
        _ => s.to_string(),
    }
}

impl Reference {
    /// Parses and normalizes `s`.
    pub fn parse(s: &str) -> Result<Reference> {
        let bad = |why: &str| {
            Error::invalid(format!("reference {:?}: {why}", redact(s).chars().take(100).collect::<String>()))
        };
        if s.is_empty() || s.len() > MAX_LEN {
            return Err(bad("empty or too long"));
        }
        let (rest, digest) = match s.split_once('@') {
            Some((r, d)) => (r, Some(Digest::parse(d).map_err(|e| bad(&e.message))?)),
            None => (s, None),
        };
        let (name, tag) = match rest.rfind(':') {
            Some(i) if !rest[i + 1..].contains('/') => (&rest[..i], Some(rest[i + 1..].to_string())),
            _ => (rest, None),
        };
        if let Some(t) = &tag
            && !is(&TAG, t)
        {
            return Err(bad("invalid tag"));
        }
        let (domain, path) = match name.split_once('/') {
            Some((first, rest)) if first.contains('.') || first.contains(':') || first == "localhost" => {
                (first.to_string(), rest.to_string())
            }
            Some(_) => (DOCKER_IO.to_string(), name.to_string()),
            None => (DOCKER_IO.to_string(), format!("library/{name}")),
        };
        let domain = if domain == "index.docker.io" { DOCKER_IO.to_string() } else { domain };
        if !is(&DOMAIN, &domain) {
            return Err(bad("invalid registry host"));
        }
        if path.is_empty() || !path.split('/').all(|c| is(&COMPONENT, c)) {
            return Err(bad("repository names are lowercase letters, digits and separators"));
        }
        let path = if domain == DOCKER_IO && !path.contains('/') { format!("library/{path}") } else { path };
        let tag = if tag.is_none() && digest.is_none() { Some("latest".to_string()) } else { tag };
        let r = Reference { domain, path, tag, digest };
        // Normalizing adds up to `docker.io/library/` and `:latest`: what is accepted must
        // still parse once normalized (found by fuzzing).
        if r.to_string().len() > MAX_LEN {
            return Err(bad("too long once normalized"));
        }
        Ok(r)
    }

    /// `domain/path`.
    pub fn repository(&self) -> String {
        format!("{}/{}", self.domain, self.path)
    }

    /// The host to talk to: Docker Hub's registry for `docker.io`.
    pub fn registry_host(&self) -> &str {
        if self.domain == DOCKER_IO { "registry-1.docker.io" } else { &self.domain }
    }

    /// What to ask the registry for: the digest if pinned, else the tag.
    pub fn object(&self) -> String {
        match (&self.digest, &self.tag) {
            (Some(d), _) => d.to_string(),
            (None, Some(t)) => t.clone(),
            (None, None) => "latest".to_string(),
        }
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.domain, self.path)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

/// Normalizes an image name given by a user (`busybox` → `docker.io/library/busybox:latest`).
pub fn normalize(s: &str) -> Result<String> {
    Reference::parse(s).map(|r| r.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_in_a_reference_are_not_printed() {
        let e = Reference::parse("user:s3cret@reg.example/a/b:1").expect_err("not a reference");
        assert!(!e.message.contains("s3cret") && e.message.contains("****@reg.example"), "{e:?}");
        let e = Reference::parse("reg.example/a/b@sha256:zz").expect_err("bad digest");
        assert!(e.message.contains("reg.example/a/b@sha256:zz"), "{e:?}");
    }

    #[test]
    fn docker_normalization() {
        assert_eq!(normalize("alpine").expect("ok"), "docker.io/library/alpine:latest");
        assert_eq!(normalize("user/app:1.0").expect("ok"), "docker.io/user/app:1.0");
        assert_eq!(normalize("localhost:5000/x").expect("ok"), "localhost:5000/x:latest");
        assert_eq!(normalize("127.0.0.1:5000/a/b:t").expect("ok"), "127.0.0.1:5000/a/b:t");
        assert_eq!(normalize("index.docker.io/busybox").expect("ok"), "docker.io/library/busybox:latest");
        let d = format!("sha256:{}", "a".repeat(64));
        assert_eq!(normalize(&format!("alpine@{d}")).expect("ok"), format!("docker.io/library/alpine@{d}"));
        let r = Reference::parse("host:5000/x:7").expect("ok");
        assert_eq!((r.domain.as_str(), r.path.as_str(), r.object()), ("host:5000", "x", "7".to_string()));
    }

    #[test]
    fn bad_references_are_refused() {
        for s in ["", "UPPER", "a//b", "a:bad tag", "x@sha256:12", "-a", "a/", "ho st/x"] {
            assert!(Reference::parse(s).is_err(), "{s}");
        }
    }
}
