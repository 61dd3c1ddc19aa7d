//! Mount lists with containerd's shapes: a bind mount for a single layer (`rw` when
//! active), an overlay with `lowerdir=` (nearest first) plus `upperdir`/`workdir` for an
//! active snapshot on parents, a read-only overlay of the lowers for a view; native hands
//! out bind mounts of its full copies.

use berth_ipc::Result;
use berth_ipc::snapshot::{Kind, Mount};

use crate::backend::{Backend, BackendKind};
use crate::index::Index;

impl Backend {
    /// `Mounts` of `key`.
    pub fn mounts(&self, key: &str) -> Result<Vec<Mount>> {
        let index = self.lock();
        self.mounts_locked(&index, key)
    }

    pub(crate) fn mounts_locked(&self, index: &Index, key: &str) -> Result<Vec<Mount>> {
        let r = index.get(key)?;
        let own = self.fs_dir(r.id).display().to_string();
        let bind = |src: String, ro: bool| {
            vec![Mount {
                kind: "bind".into(),
                source: src,
                options: vec![if ro { "ro" } else { "rw" }.into(), "rbind".into()],
            }]
        };
        if self.kind() == BackendKind::Native {
            return Ok(bind(own, r.kind != Kind::Active));
        }
        let mut lowers: Vec<String> = index
            .chain(r.parent.as_deref())?
            .into_iter()
            .map(|id| self.fs_dir(id).display().to_string())
            .collect();
        match r.kind {
            Kind::Active if lowers.is_empty() => Ok(bind(own, false)),
            Kind::Active => Ok(vec![Mount {
                kind: "overlay".into(),
                source: "overlay".into(),
                options: vec![
                    format!("workdir={}", self.snap_dir(r.id).join("work").display()),
                    format!("upperdir={own}"),
                    format!("lowerdir={}", lowers.join(":")),
                ],
            }]),
            Kind::Committed => {
                lowers.insert(0, own);
                Ok(ro_mounts(lowers, bind))
            }
            Kind::View if lowers.is_empty() => Ok(bind(own, true)),
            Kind::View => Ok(ro_mounts(lowers, bind)),
        }
    }

    /// Read-only mounts of `key`'s whole view, whatever its kind (for diffs).
    pub fn view_mounts(&self, key: &str) -> Result<Vec<Mount>> {
        let index = self.lock();
        let r = index.get(key)?;
        let mut lowers = vec![self.fs_dir(r.id).display().to_string()];
        lowers.extend(
            index.chain(r.parent.as_deref())?.into_iter().map(|id| self.fs_dir(id).display().to_string()),
        );
        let bind = |src: String, ro: bool| {
            vec![Mount {
                kind: "bind".into(),
                source: src,
                options: vec![if ro { "ro" } else { "rw" }.into(), "rbind".into()],
            }]
        };
        Ok(ro_mounts(lowers, bind))
    }
}

/// Read-only mounts of a stack of layers, nearest first.
fn ro_mounts(lowers: Vec<String>, bind: impl Fn(String, bool) -> Vec<Mount>) -> Vec<Mount> {
    if lowers.len() == 1 {
        return bind(lowers.into_iter().next().unwrap_or_default(), true);
    }
    vec![Mount {
        kind: "overlay".into(),
        source: "overlay".into(),
        options: vec![format!("lowerdir={}", lowers.join(":"))],
    }]
}
