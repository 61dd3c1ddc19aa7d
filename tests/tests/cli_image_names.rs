//! One name normalization for every command, acting as the user did: an image imported as
//! `mytiny` is run, tagged, labelled, checked, listed and removed by that short name, and a
//! tag given as `mytiny2` is stored as `docker.io/library/mytiny2:latest`, so `run mytiny2`
//! finds it.

mod runtime_support;

use berth_system_tests::Berth;
use berth_system_tests::dist::{LayoutImage, berth_err, berth_ok, busybox_rootfs, layout_tar};
use runtime_support::{can_run, out, show, teardown};

const FULL: &str = "docker.io/library/mytiny:latest";
const FULL2: &str = "docker.io/library/mytiny2:latest";

#[test]
fn short_names_mean_the_same_image_for_every_command() {
    let berth = Berth::start();
    let work = berth.dir.path();
    let rootfs = work.join("rootfs");
    busybox_rootfs(&rootfs, "names");
    let archive = work.join("mytiny.tar");
    let image = LayoutImage {
        name: "mytiny",
        layers: std::slice::from_ref(&rootfs),
        fake_diff_ids: None,
        index: None,
    };
    layout_tar(work, &[image], &archive);
    let imported = berth_ok(&berth, &["images", "import", archive.to_str().expect("utf8")]);
    assert!(imported.starts_with(FULL), "{imported}");

    // ls with a name filter, check and label, by the short name.
    assert_eq!(berth_ok(&berth, &["images", "ls", "-q", "name==mytiny"]).trim(), FULL);
    let check = berth_ok(&berth, &["images", "check", "mytiny"]);
    assert!(check.starts_with(FULL) && check.contains("\tcomplete\t"), "{check}");
    berth_ok(&berth, &["images", "label", "mytiny", "tried=yes"]);

    // A tag given short is stored normalized; a tag that is no reference is refused.
    assert_eq!(berth_ok(&berth, &["images", "tag", "mytiny", "mytiny2"]).trim(), FULL2);
    let names = berth_ok(&berth, &["images", "ls", "-q"]);
    let mut names: Vec<&str> = names.lines().collect();
    names.sort_unstable();
    assert_eq!(names, [FULL2, FULL]); // sorted: `2` comes before `:`
    let err = berth_err(&berth, &["images", "tag", "mytiny", "Not A Name"]);
    assert!(err.contains("Not A Name"), "{err}");

    if can_run("runc") {
        for (name, id) in [("mytiny", "n1"), ("mytiny2", "n2")] {
            let o = berth.cli(&["run", "--rm", name, id, "/bin/busybox", "cat", "/etc/berth-test"]);
            assert!(o.status.success(), "run {name}: {}", show(&o));
            assert_eq!(out(&o), "names", "run {name}");
        }
        let o = berth.cli(&["containers", "create", "mytiny2", "n3", "/bin/busybox", "true"]);
        assert!(o.status.success(), "{}", show(&o));
        let info = berth_ok(&berth, &["--format", "json", "containers", "ls"]);
        assert!(info.contains(FULL2), "{info}");
        berth_ok(&berth, &["containers", "rm", "n3"]);
    }

    // Export and remove by the short names.
    let exported = work.join("out.tar");
    berth_ok(&berth, &["images", "export", exported.to_str().expect("utf8"), "mytiny2"]);
    assert!(std::fs::metadata(&exported).is_ok_and(|m| m.len() > 0));
    assert_eq!(berth_ok(&berth, &["images", "rm", "mytiny"]).trim(), FULL);
    assert_eq!(berth_ok(&berth, &["images", "rm", "mytiny2"]).trim(), FULL2);
    assert_eq!(berth_ok(&berth, &["images", "ls", "-q"]).trim(), "");
    let err = berth_err(&berth, &["images", "rm", "mytiny"]);
    assert!(err.contains(FULL) && err.contains("not found"), "{err}");
    teardown(&berth);
}
