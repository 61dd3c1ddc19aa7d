//! Each rule of containerd's platform normalization, matching and `Only` order.

use super::*;

fn p(s: &str) -> Platform {
    Platform::parse(s).expect("platform")
}

/// A platform as written in an index entry (not through `parse`).
fn raw(os: &str, arch: &str, variant: Option<&str>) -> Platform {
    Platform { os: os.into(), architecture: arch.into(), variant: variant.map(Into::into) }
}

fn norm(arch: &str, variant: Option<&str>) -> String {
    raw("linux", arch, variant).normalize().to_string()
}

fn preferred(s: &str) -> Vec<String> {
    Only::new(&p(s)).preferred().iter().map(ToString::to_string).collect()
}

#[test]
fn x86_aliases_are_amd64_and_its_v1_is_plain_amd64() {
    assert_eq!(norm("x86_64", None), "linux/amd64");
    assert_eq!(norm("x86-64", None), "linux/amd64");
    assert_eq!(norm("AMD64", Some("v1")), "linux/amd64");
    assert_eq!(norm("x86_64", Some("v3")), "linux/amd64/v3");
}

#[test]
fn aarch64_is_arm64_and_its_v8_is_plain_arm64() {
    assert_eq!(norm("aarch64", None), "linux/arm64");
    for v in ["8", "v8", "v8.0", "V8"] {
        assert_eq!(norm("arm64", Some(v)), "linux/arm64", "{v}");
    }
    for v in ["9", "9.0", "v9.0"] {
        assert_eq!(norm("aarch64", Some(v)), "linux/arm64/v9", "{v}");
    }
    assert_eq!(norm("arm64", Some("v8.2")), "linux/arm64/v8.2");
}

#[test]
fn arm_aliases_and_its_default_variant() {
    assert_eq!(norm("armhf", None), "linux/arm/v7");
    assert_eq!(norm("armhf", Some("v6")), "linux/arm/v7", "armhf is v7 whatever it says");
    assert_eq!(norm("armel", None), "linux/arm/v6");
    assert_eq!(norm("arm", None), "linux/arm/v7");
    assert_eq!(norm("arm", Some("7")), "linux/arm/v7");
    for n in ["5", "6", "8"] {
        assert_eq!(norm("arm", Some(n)), format!("linux/arm/v{n}"));
    }
}

#[test]
fn i386_is_386_without_a_variant_and_other_arches_keep_theirs() {
    assert_eq!(norm("i386", Some("v2")), "linux/386");
    assert_eq!(norm("riscv64", Some("rva22")), "linux/riscv64/rva22");
    assert_eq!(raw("", "s390x", None).normalize().to_string(), "linux/s390x", "no OS is the host's");
    assert_eq!(raw("MacOS", "arm64", None).normalize().to_string(), "darwin/arm64");
}

#[test]
fn parse_normalizes_aliases_but_keeps_the_spelled_default_variant() {
    assert_eq!(p("linux/x86_64"), raw("linux", "amd64", None));
    assert_eq!(p("Linux/AArch64"), raw("linux", "arm64", None));
    assert_eq!(p("linux/aarch64/8"), raw("linux", "arm64", Some("v8")));
    assert_eq!(p("linux/arm"), raw("linux", "arm", None));
    assert_eq!(p("linux/armhf"), raw("linux", "arm", None), "its v7 is arm's default");
    assert_eq!(p("linux/arm/7"), raw("linux", "arm", Some("v7")));
    assert_eq!(p("linux/armel"), raw("linux", "arm", Some("v6")));
    assert_eq!(p("linux/amd64/v1"), raw("linux", "amd64", None));
    assert_eq!(p("linux/arm64/v8.2"), raw("linux", "arm64", Some("v8.2")));
    for bad in ["linux", "linux/../x", "linux/amd64/", "/amd64", "linux/.x", "linux/a/b/c", "linux/a b"] {
        assert!(Platform::parse(bad).is_err(), "{bad:?}");
    }
    for s in ["linux/x86-64", "linux/arm/v7", "linux/arm64/v8", "linux/i386/x", "linux/armhf/v6"] {
        assert_eq!(p(&p(s).to_string()), p(s), "{s} round-trips");
    }
}

#[test]
fn matching_is_equality_once_normalized() {
    assert!(p("linux/arm64").matches(&raw("linux", "arm64", Some("v8"))));
    assert!(p("linux/arm64/v8").matches(&raw("linux", "aarch64", None)));
    assert!(!p("linux/arm64").matches(&raw("linux", "arm64", Some("v7"))));
    assert!(p("linux/arm").matches(&raw("linux", "arm", Some("v7"))));
    assert!(!p("linux/arm/v6").matches(&raw("linux", "arm", None)), "an entry without a variant is v7");
    assert!(p("linux/amd64").matches(&raw("linux", "x86_64", None)));
    assert!(!p("linux/amd64").matches(&raw("windows", "amd64", None)));
    assert!(!p("linux/amd64").matches(&raw("linux", "386", None)), "386 is Only's fallback, not a match");
}

#[test]
fn only_amd64_falls_back_through_lower_levels_to_386() {
    assert_eq!(preferred("linux/amd64"), ["linux/amd64", "linux/386"]);
    assert_eq!(preferred("linux/amd64/v3"), ["linux/amd64/v3", "linux/amd64/v2", "linux/amd64", "linux/386"]);
    let only = Only::new(&p("linux/amd64/v2"));
    assert_eq!(only.rank(&raw("linux", "x86_64", Some("v1"))), Some(1));
    assert_eq!(only.rank(&raw("linux", "amd64", Some("v3"))), None, "a newer level is not run");
}

#[test]
fn only_arm_falls_back_to_older_variants_down_to_v5() {
    assert_eq!(preferred("linux/arm/v7"), ["linux/arm/v7", "linux/arm/v6", "linux/arm/v5"]);
    assert_eq!(preferred("linux/arm"), ["linux/arm/v7", "linux/arm/v6", "linux/arm/v5"]);
    assert_eq!(preferred("linux/arm/v8"), ["linux/arm/v8", "linux/arm/v7", "linux/arm/v6", "linux/arm/v5"]);
    assert_eq!(preferred("linux/arm/v5"), ["linux/arm/v5"]);
    assert_eq!(preferred("linux/armel"), ["linux/arm/v6", "linux/arm/v5"]);
}

#[test]
fn only_arm64_falls_back_through_its_minor_levels_then_to_32_bit_arm() {
    let arm32 = ["linux/arm/v8", "linux/arm/v7", "linux/arm/v6", "linux/arm/v5"];
    assert_eq!(preferred("linux/arm64"), [&["linux/arm64"][..], &arm32].concat());
    assert_eq!(preferred("linux/arm64/v8"), preferred("linux/arm64"));
    let v82 = ["linux/arm64/v8.2", "linux/arm64/v8.1", "linux/arm64"];
    assert_eq!(preferred("linux/arm64/v8.2"), [&v82[..], &arm32].concat());
    let v91 = preferred("linux/arm64/v9.1");
    assert_eq!(v91[..4], ["linux/arm64/v9.1", "linux/arm64/v9", "linux/arm64/v8.6", "linux/arm64/v8.5"]);
    assert_eq!(v91.len(), 2 + 7 + arm32.len(), "v9.1, v9, v8.6 … v8, arm/v8 … arm/v5");
    assert_eq!(preferred("linux/arm64/v9")[..3], ["linux/arm64/v9", "linux/arm64/v8.5", "linux/arm64/v8.4"]);
    assert_eq!(preferred("linux/arm64/v9.5")[6], "linux/arm64/v8.9", "v8.(5+5) capped at v8.9");
    assert_eq!(preferred("linux/arm64/v7"), ["linux/arm64/v7"], "an unknown arm64 variant: itself only");
}

#[test]
fn only_other_arches_are_themselves_only() {
    assert_eq!(preferred("linux/s390x"), ["linux/s390x"]);
    assert_eq!(preferred("linux/386"), ["linux/386"]);
    assert!(!Only::new(&p("linux/386")).matches(&p("linux/amd64")));
}

#[test]
fn parsing_round_trips_and_normalizing_is_idempotent_for_every_alias() {
    let arches =
        ["amd64", "x86_64", "x86-64", "i386", "386", "arm", "armhf", "armel", "arm64", "aarch64", "s390x"];
    let variants =
        ["", "1", "v1", "v2", "5", "7", "v7", "8", "v8", "v8.0", "v8.3", "9", "9.0", "v9", "v9.2", "x"];
    for arch in arches {
        for v in variants {
            let s = if v.is_empty() { format!("linux/{arch}") } else { format!("linux/{arch}/{v}") };
            let parsed = p(&s);
            assert_eq!(p(&parsed.to_string()), parsed, "{s} round-trips");
            let n = parsed.normalize();
            assert_eq!(n.normalize(), n, "{s}: normalizing twice changes nothing");
            assert!(
                parsed.matches(&n) && Only::new(&parsed).rank(&n) == Some(0),
                "{s} matches its normal form"
            );
        }
    }
}
