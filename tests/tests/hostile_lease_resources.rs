//! `berth leases add-resource` with hostile input (issue 15, item 8): control characters,
//! bad snapshotter names, over-long keys, unknown types and bad digests are each refused
//! with an error naming the lease and the problem, and nothing lands on the lease.

use berth_system_tests::Berth;

#[test]
fn hostile_lease_resources_are_refused_and_named() {
    let berth = Berth::start();
    let o = berth.cli(&["leases", "create", "--id", "l1"]);
    assert!(o.status.success(), "{o:?}");
    let long = "k".repeat(5000);
    let cases: [(&str, &str, &str); 6] = [
        ("ingests", "bad\u{1}ref", "control character"),
        ("snapshots/ov\u{2}", "k", "is not allowed"),
        ("snapshots/overlayfs", &long, "longer than 4096 bytes"),
        ("snapshots/", "k", "unknown (content, snapshots/<snapshotter>, ingests)"),
        ("../content", "x", "unknown"),
        ("content", "sha256:../../etc/passwd", "not a digest"),
    ];
    for (kind, id, want) in cases {
        let o = berth.cli(&["leases", "add-resource", "l1", kind, id]);
        let e = String::from_utf8_lossy(&o.stderr).into_owned();
        assert!(!o.status.success() && e.contains(want), "{kind:?}: {e}");
        assert_eq!(o.status.code(), Some(1), "an error, not a panic: {e}");
    }
    let o = berth.cli(&["--format", "json", "leases", "resources", "l1"]);
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "[]", "{o:?}");
}
