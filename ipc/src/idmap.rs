//! User-namespace id mappings (Kubernetes' `hostUsers: false`): which host uids and gids a
//! pod's user namespace maps, as `/proc/<pid>/uid_map` lines, and their checks.

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// At most this many lines in one map (the kernel's `UID_GID_MAP_MAX_EXTENTS`).
pub const MAX_EXTENTS: usize = 340;

/// One range: `length` ids from `container_id` inside map to `host_id` on the host.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdMapping {
    /// First id inside the namespace.
    pub container_id: u32,
    /// First id on the host.
    pub host_id: u32,
    /// How many ids.
    pub length: u32,
}

/// A user namespace's maps.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdMappings {
    /// The uid map.
    pub uids: Vec<IdMapping>,
    /// The gid map.
    pub gids: Vec<IdMapping>,
}

impl IdMappings {
    /// Checks both maps as the kernel would (`what` names the pod or container): not
    /// empty, container id 0 mapped (a pod's root must be someone), every length above 0, no range past `u32::MAX`, no two ranges overlapping on
    /// either side, at most [`MAX_EXTENTS`] lines.
    pub fn validate(&self, what: &str) -> Result<()> {
        check_map(what, "uid", &self.uids)?;
        check_map(what, "gid", &self.gids)
    }

    /// The host id container uid `id` maps to, if mapped.
    pub fn host_uid(&self, id: u32) -> Option<u32> {
        to_host(&self.uids, id)
    }

    /// The host id container gid `id` maps to, if mapped.
    pub fn host_gid(&self, id: u32) -> Option<u32> {
        to_host(&self.gids, id)
    }
}

impl IdMapping {
    /// The map's file text for one line (`container host length`).
    pub fn line(&self) -> String {
        format!("{} {} {}\n", self.container_id, self.host_id, self.length)
    }
}

/// The text of a `uid_map`/`gid_map` file for `map`.
pub fn map_text(map: &[IdMapping]) -> String {
    map.iter().map(IdMapping::line).collect()
}

fn to_host(map: &[IdMapping], id: u32) -> Option<u32> {
    map.iter().find_map(|m| {
        let offset = id.checked_sub(m.container_id)?;
        (offset < m.length).then(|| m.host_id + offset)
    })
}

fn check_map(what: &str, kind: &str, map: &[IdMapping]) -> Result<()> {
    if map.is_empty() {
        return Err(Error::invalid(format!("{what}: user namespace has no {kind} mappings")));
    }
    if map.len() > MAX_EXTENTS {
        return Err(Error::invalid(format!(
            "{what}: user namespace has {} {kind} mappings; the kernel takes at most {MAX_EXTENTS}",
            map.len()
        )));
    }
    for m in map {
        if m.length == 0 {
            return Err(Error::invalid(format!(
                "{what}: {kind} mapping {}:{}:0 has length 0",
                m.container_id, m.host_id
            )));
        }
        let overflows = |start: u32| u64::from(start) + u64::from(m.length) > u64::from(u32::MAX);
        if overflows(m.container_id) || overflows(m.host_id) {
            return Err(Error::invalid(format!(
                "{what}: {kind} mapping {}:{}:{} runs past the largest id",
                m.container_id, m.host_id, m.length
            )));
        }
    }
    let overlaps = |a: u32, b: u32, la: u32, lb: u32| {
        u64::from(a) < u64::from(b) + u64::from(lb) && u64::from(b) < u64::from(a) + u64::from(la)
    };
    for (i, a) in map.iter().enumerate() {
        for b in &map[i + 1..] {
            if overlaps(a.container_id, b.container_id, a.length, b.length)
                || overlaps(a.host_id, b.host_id, a.length, b.length)
            {
                return Err(Error::invalid(format!(
                    "{what}: {kind} mappings {}:{}:{} and {}:{}:{} overlap",
                    a.container_id, a.host_id, a.length, b.container_id, b.host_id, b.length
                )));
            }
        }
    }
    if to_host(map, 0).is_none() {
        return Err(Error::invalid(format!("{what}: user namespace does not map container {kind} 0 (root)")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(container_id: u32, host_id: u32, length: u32) -> IdMapping {
        IdMapping { container_id, host_id, length }
    }

    #[test]
    fn a_plain_pod_map_passes_and_maps() {
        let maps = IdMappings { uids: vec![m(0, 100_000, 65536)], gids: vec![m(0, 100_000, 65536)] };
        assert!(maps.validate("pod p").is_ok());
        assert_eq!(maps.host_uid(0), Some(100_000));
        assert_eq!(maps.host_gid(65535), Some(165_535));
        assert_eq!(maps.host_uid(65536), None);
        assert_eq!(map_text(&maps.uids), "0 100000 65536\n");
    }

    #[test]
    fn malformed_maps_are_refused_by_name() {
        let good = vec![m(0, 100_000, 65536)];
        let cases = [
            (vec![], "pod p: user namespace has no uid mappings"),
            (vec![m(0, 100_000, 0)], "pod p: uid mapping 0:100000:0 has length 0"),
            (vec![m(0, u32::MAX - 10, 65536)], "runs past the largest id"),
            (vec![m(0, 100_000, 10), m(5, 200_000, 10)], "overlap"),
            (vec![m(0, 100_000, 10), m(10, 100_005, 10)], "overlap"),
            (vec![m(1, 100_000, 10)], "pod p: user namespace does not map container uid 0 (root)"),
        ];
        for (uids, want) in cases {
            let maps = IdMappings { uids, gids: good.clone() };
            let e = maps.validate("pod p").expect_err(want);
            assert!(e.message.contains(want), "{e} does not say {want}");
            assert_eq!(e.code, crate::Code::InvalidArgument);
        }
        let many = (0..341).map(|i| m(i * 10, 100_000 + i * 10, 10)).collect();
        let e = IdMappings { uids: good.clone(), gids: many }.validate("container c").expect_err("341");
        assert!(e.message.contains("container c: user namespace has 341 gid mappings"), "{e}");
        let adjacent = vec![m(0, 100_000, 10), m(10, 100_010, 10)];
        assert!(IdMappings { uids: adjacent, gids: good }.validate("pod p").is_ok());
    }
}
