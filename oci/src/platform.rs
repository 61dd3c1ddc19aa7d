//! Platforms (`os/arch[/variant]`), normalized and matched as containerd's `platforms`
//! package does:
//!
//! 1. **Normalize** ([`Platform::normalize`]): lowercase; `macos` → `darwin`; arch aliases
//!    `x86_64`/`x86-64` → `amd64` (its `v1` is plain `amd64`), `aarch64` → `arm64` (its
//!    `8`/`v8`/`v8.0` is plain `arm64`, `9`/`9.0`/`v9.0` is `v9`), `i386` → `386` (no
//!    variant), `armhf` → `arm/v7`, `armel` → `arm/v6`; `arm` without a variant is `arm/v7`,
//!    and `arm/5`…`arm/8` are `v5`…`v8`.
//! 2. **Match** ([`Platform::matches`]): two platforms match when they are equal once
//!    normalized, so an `arm64` request matches `arm64` and `arm64/v8` entries, not
//!    `arm64/v7`.
//! 3. **Only** ([`Only`]): what a host of a platform can run, most preferred first (containerd's
//!    `platforms.Only`, what its pull uses by default and for `--platform`): `amd64/vN` also
//!    runs `amd64/v(N-1)`… `amd64`, then `386`; `arm/vN` runs `arm/v(N-1)`… `arm/v5`;
//!    `arm64/v8.x` runs `arm64/v8.(x-1)`… `arm64`, `arm64/v9.x` runs `arm64/v9.(x-1)`…
//!    `arm64/v9` then `arm64/v8.(x+5)`… `arm64` (as containerd's table); every `arm64` runs
//!    `arm/v8`… `arm/v5` last. An `arm64` variant containerd's table does not know matches
//!    itself only (containerd's `Only` then matches nothing at all).
//!
//! Parsing ([`Platform::parse`]) normalizes the architecture as containerd's `Parse` does,
//! keeping the spelled form of the default variants (`linux/arm`, `linux/arm64/v8`).

use berth_ipc::{Error, Result};
use serde::{Deserialize, Serialize};

/// An OS/architecture pair, with an optional variant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Platform {
    /// `linux`, …
    #[serde(default)]
    pub os: String,
    /// `amd64`, `arm64`, …
    #[serde(default)]
    pub architecture: String,
    /// `v7`, `v8`, …
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

/// The OS of a platform that names none (berth runs on Linux only).
const DEFAULT_OS: &str = "linux";

/// `arch` and `variant` (`""`: none) normalized (rule 1 of the module doc).
fn normalize_arch(arch: &str, variant: &str) -> (String, String) {
    let (arch, variant) = (arch.to_ascii_lowercase(), variant.to_ascii_lowercase());
    let (arch, variant) = match (arch.as_str(), variant.as_str()) {
        ("i386", _) => ("386", ""),
        ("x86_64" | "x86-64" | "amd64", "v1") => ("amd64", ""),
        ("x86_64" | "x86-64" | "amd64", v) => ("amd64", v),
        ("aarch64" | "arm64", "8" | "v8" | "v8.0") => ("arm64", ""),
        ("aarch64" | "arm64", "9" | "9.0" | "v9.0") => ("arm64", "v9"),
        ("aarch64" | "arm64", v) => ("arm64", v),
        ("armhf", _) => ("arm", "v7"),
        ("armel", _) => ("arm", "v6"),
        ("arm", "" | "7") => ("arm", "v7"),
        ("arm", n @ ("5" | "6" | "8")) => return ("arm".into(), format!("v{n}")),
        (a, v) => (a, v),
    };
    (arch.to_string(), variant.to_string())
}

/// `""` as no variant.
fn variant(v: String) -> Option<String> {
    (!v.is_empty()).then_some(v)
}

impl Platform {
    /// The platform this process runs on.
    pub fn host() -> Platform {
        let (arch, variant) = match std::env::consts::ARCH {
            "x86_64" => ("amd64", None),
            "aarch64" => ("arm64", Some("v8")),
            "arm" => ("arm", Some("v7")),
            "x86" => ("386", None),
            "powerpc64" => ("ppc64le", None),
            other => (other, None),
        };
        Platform { os: DEFAULT_OS.into(), architecture: arch.into(), variant: variant.map(Into::into) }
    }

    /// Parses `os/arch[/variant]`, each part letters, digits, `_`, `.` or `-` after a
    /// letter or digit. The architecture is normalized as containerd's `Parse` does: its
    /// aliases resolved, but `linux/arm` kept without its default `v7` and `linux/arm64/v8`
    /// with its `v8`.
    pub fn parse(s: &str) -> Result<Platform> {
        let ok = |p: &str| {
            p.starts_with(|c: char| c.is_ascii_alphanumeric())
                && p.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
        };
        let os = |os: &str| match os.to_ascii_lowercase().as_str() {
            "macos" => "darwin".to_string(),
            other => other.to_string(),
        };
        match s.split('/').collect::<Vec<_>>().as_slice() {
            [o, arch] if ok(o) && ok(arch) => {
                let (architecture, v) = normalize_arch(arch, "");
                let v = if architecture == "arm" && v == "v7" { String::new() } else { v };
                Ok(Platform { os: os(o), architecture, variant: variant(v) })
            }
            [o, arch, v] if ok(o) && ok(arch) && ok(v) => {
                let (architecture, v) = normalize_arch(arch, v);
                let v = if architecture == "arm64" && v.is_empty() { "v8".to_string() } else { v };
                Ok(Platform { os: os(o), architecture, variant: variant(v) })
            }
            _ => Err(Error::invalid(format!("platform {s:?}: expected os/arch[/variant]"))),
        }
    }

    /// The platform normalized (rule 1 of the module doc): the form two platforms are
    /// compared in.
    pub fn normalize(&self) -> Platform {
        let os = match self.os.to_ascii_lowercase().as_str() {
            "" => DEFAULT_OS.to_string(),
            "macos" => "darwin".to_string(),
            other => other.to_string(),
        };
        let (architecture, v) = normalize_arch(&self.architecture, self.variant.as_deref().unwrap_or(""));
        Platform { os, architecture, variant: variant(v) }
    }

    /// Whether `other` is this platform, both normalized (containerd's `NewMatcher`): an
    /// `arm64` matches `arm64/v8`, an `arm` `arm/v7`, an `x86_64` `amd64`.
    pub fn matches(&self, other: &Platform) -> bool {
        self.normalize() == other.normalize()
    }
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

/// What a host of one platform runs, most preferred first (rule 3 of the module doc;
/// containerd's `platforms.Only`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Only {
    /// Normalized, the wanted platform first.
    preferred: Vec<Platform>,
}

impl Only {
    /// The platforms a host of `platform` runs.
    pub fn new(platform: &Platform) -> Only {
        let mut preferred = Vec::new();
        for p in compatible(&platform.normalize()) {
            let p = p.normalize();
            if !preferred.contains(&p) {
                preferred.push(p);
            }
        }
        Only { preferred }
    }

    /// Where `p` stands in the order of preference (0: the wanted platform itself), or
    /// `None` if the host does not run it.
    pub fn rank(&self, p: &Platform) -> Option<usize> {
        let p = p.normalize();
        self.preferred.iter().position(|q| *q == p)
    }

    /// Whether the host runs `p`.
    pub fn matches(&self, p: &Platform) -> bool {
        self.rank(p).is_some()
    }

    /// The platforms, most preferred first.
    pub fn preferred(&self) -> &[Platform] {
        &self.preferred
    }
}

/// The number after `v` in a variant `vN`.
fn level(variant: Option<&str>) -> Option<u32> {
    variant?.strip_prefix('v')?.parse().ok()
}

/// An arm64 variant's (major, minor): `v8` → (8, 0), `v9.3` → (9, 3); only the versions
/// containerd's table knows (v8.0–v8.9, v9.0–v9.7).
fn arm64_version(variant: &str) -> Option<(u32, u32)> {
    let v = variant.strip_prefix('v')?;
    let (major, minor) = v.split_once('.').unwrap_or((v, "0"));
    let (major, minor): (u32, u32) = (major.parse().ok()?, minor.parse().ok()?);
    let known = match major {
        8 => minor <= 9,
        9 => minor <= 7,
        _ => false,
    };
    known.then_some((major, minor))
}

/// `platform` (normalized) and what it runs, in order of preference, not yet normalized.
fn compatible(platform: &Platform) -> Vec<Platform> {
    let with = |arch: &str, variant: Option<String>| Platform {
        os: platform.os.clone(),
        architecture: arch.to_string(),
        variant,
    };
    let mut out = vec![platform.clone()];
    match platform.architecture.as_str() {
        "amd64" => {
            let n = level(platform.variant.as_deref()).unwrap_or(1);
            out.extend((1..n).rev().map(|k| with("amd64", Some(format!("v{k}")))));
            out.push(with("386", None));
        }
        "arm" => {
            let n = level(platform.variant.as_deref()).unwrap_or(0);
            out.extend((5..n).rev().map(|k| with("arm", Some(format!("v{k}")))));
        }
        "arm64" => {
            let Some((major, minor)) = arm64_version(platform.variant.as_deref().unwrap_or("v8")) else {
                return out;
            };
            let name = |major: u32, minor: u32| match minor {
                0 => format!("v{major}"),
                _ => format!("v{major}.{minor}"),
            };
            out.extend((0..minor).rev().map(|m| with("arm64", Some(name(major, m)))));
            if major == 9 {
                out.extend((0..=(minor + 5).min(9)).rev().map(|m| with("arm64", Some(name(8, m)))));
            }
            out.extend(compatible(&with("arm", Some("v8".into()))));
        }
        _ => {}
    }
    out
}

#[cfg(test)]
#[path = "platform_tests.rs"]
mod tests;
