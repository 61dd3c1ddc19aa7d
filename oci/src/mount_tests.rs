use super::*;

fn m(kind: &str, options: &[&str]) -> Mount {
    Mount {
        kind: kind.into(),
        source: "/src".into(),
        options: options.iter().map(|s| s.to_string()).collect(),
    }
}

#[test]
fn a_host_view_is_read_only_nosuid_nodev_whatever_the_list_says() {
    let p = plan(&m("bind", &["rw", "rbind"]), Purpose::HostView);
    let want =
        MsFlags::MS_BIND | MsFlags::MS_REC | MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV;
    assert_eq!(p.flags, want);
    assert_eq!(p.fstype, None);
    // The remount carries the restrictions, not the recursion.
    assert_eq!(p.remount, Some((want & !MsFlags::MS_REC) | MsFlags::MS_REMOUNT));
}

#[test]
fn a_rootfs_keeps_the_lists_options_only() {
    let p = plan(&m("bind", &["rw", "rbind"]), Purpose::Rootfs);
    assert_eq!(p.flags, MsFlags::MS_BIND | MsFlags::MS_REC);
    assert_eq!(p.remount, None, "nothing to restrict, no remount");
    let p = plan(&m("bind", &["ro", "rbind"]), Purpose::Rootfs);
    assert!(p.remount.is_some_and(|r| r.contains(MsFlags::MS_RDONLY | MsFlags::MS_REMOUNT)));
}

#[test]
fn overlay_options_are_data_and_empty_data_is_none() {
    let p = plan(&m("overlay", &["lowerdir=/a:/b", "nodev"]), Purpose::HostView);
    assert_eq!(p.fstype.as_deref(), Some("overlay"));
    assert_eq!(p.data.as_deref(), Some("lowerdir=/a:/b"));
    assert!(p.flags.contains(MsFlags::MS_NODEV | MsFlags::MS_RDONLY));
    assert_eq!(p.remount, None);
    let p = plan(&m("tmpfs", &["ro"]), Purpose::Rootfs);
    assert_eq!(p.data, None);
}

#[test]
fn a_bind_option_on_another_type_is_a_bind() {
    let p = plan(&m("none", &["bind"]), Purpose::Rootfs);
    assert!(p.flags.contains(MsFlags::MS_BIND));
    assert_eq!(p.fstype, None);
}

#[test]
fn mountinfo_paths_are_compared_escaped() {
    assert_eq!(escape("/a b\\c"), "/a\\040b\\134c");
}

#[test]
fn unmounting_what_is_not_mounted_or_not_there_is_fine() {
    let dir = tempfile::tempdir().expect("tempdir");
    assert!(unmount_all(dir.path(), Busy::Fail).is_ok());
    assert!(unmount_all(&dir.path().join("missing"), Busy::Detach).is_ok());
}

/// Needs root (mounts): a host view of a bind is read-only and nosuid, and comes down.
#[test]
fn a_host_view_mounts_restricted_and_comes_down() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let src = tempfile::tempdir().expect("tempdir");
    std::fs::write(src.path().join("f"), b"x").expect("write");
    let dir = tempfile::tempdir().expect("tempdir");
    let list = [Mount {
        kind: "bind".into(),
        source: src.path().display().to_string(),
        options: vec!["rw".into(), "rbind".into()],
    }];
    mount_all(&list, dir.path(), Purpose::HostView).expect("mount");
    assert!(is_mounted(dir.path()));
    let st = nix::sys::statvfs::statvfs(dir.path()).expect("statvfs");
    let down = unmount_all(dir.path(), Busy::Fail);
    assert!(st.flags().contains(nix::sys::statvfs::FsFlags::ST_RDONLY));
    assert!(st.flags().contains(nix::sys::statvfs::FsFlags::ST_NOSUID));
    down.expect("unmount");
    assert!(!is_mounted(dir.path()));
    assert!(std::fs::write(src.path().join("g"), b"y").is_ok(), "the source stays writable");
}
