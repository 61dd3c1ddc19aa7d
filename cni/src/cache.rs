//! Attachment records, one JSON file per network, container id and interface under
//! `<cache_dir>/results/`: written before the first plugin's `ADD` (so a crash part-way
//! leaves the config to undo it with), rewritten with the result once every plugin is done,
//! removed once `DEL` succeeded. Files are written to a temp name and renamed, so a record is
//! whole or absent.

use std::path::{Path, PathBuf};

use berth_ipc::{Error, Result};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::{Attachment, NetworkList};

/// Largest record read.
const MAX_RECORD: u64 = 4 << 20;

/// One attachment as recorded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Entry {
    /// Always `berthCniV1`.
    pub kind: String,
    /// The network's name.
    pub network_name: String,
    /// `CNI_CONTAINERID`.
    pub container_id: String,
    /// `CNI_IFNAME`.
    pub if_name: String,
    /// `CNI_NETNS` at `ADD`.
    pub netns: PathBuf,
    /// `CNI_ARGS` pairs.
    pub cni_args: Vec<(String, String)>,
    /// Capability arguments.
    pub capability_args: Map<String, Value>,
    /// The network list exactly as used.
    pub config: Value,
    /// The final result; `None` while (or if) the `ADD` had not finished.
    pub result: Option<Value>,
}

impl Entry {
    /// The record of `a` on `net`, before its `ADD`.
    pub fn new(net: &NetworkList, a: &Attachment) -> Entry {
        Entry {
            kind: "berthCniV1".into(),
            network_name: net.name.clone(),
            container_id: a.container_id.clone(),
            if_name: a.ifname.clone(),
            netns: a.netns.clone(),
            cni_args: a.args.clone(),
            capability_args: a.capabilities.clone(),
            config: net.raw.clone(),
            result: None,
        }
    }

    /// Its file name.
    pub fn key(&self) -> String {
        key(&self.network_name, &self.container_id, &self.if_name)
    }

    /// The network list it was made with.
    pub fn network(&self) -> Result<NetworkList> {
        crate::conf::parse(self.config.clone())
            .map_err(|e| e.context(format!("CNI record of {} on {}", self.container_id, self.network_name)))
    }

    /// The attachment it records.
    pub fn attachment(&self) -> Attachment {
        Attachment {
            container_id: self.container_id.clone(),
            netns: self.netns.clone(),
            ifname: self.if_name.clone(),
            args: self.cni_args.clone(),
            capabilities: self.capability_args.clone(),
        }
    }
}

/// The record name of an attachment (each part is a CNI name or id: no `/`).
pub fn key(network: &str, container_id: &str, ifname: &str) -> String {
    let clean = |s: &str| s.replace(['/', '\0'], "_");
    format!("{}-{}-{}", clean(network), clean(container_id), clean(ifname))
}

fn dir(cache: &Path) -> PathBuf {
    cache.join("results")
}

/// The file of the record under `key`.
pub fn path(cache: &Path, key: &str) -> PathBuf {
    dir(cache).join(key)
}

/// Writes `entry`, whole or not at all.
pub fn write(cache: &Path, entry: &Entry) -> Result<()> {
    let d = dir(cache);
    crate::make_dir(&d)?;
    let path = d.join(entry.key());
    let tmp = d.join(format!(".{}.tmp", entry.key()));
    let json = serde_json::to_vec(entry).map_err(|e| Error::internal(format!("CNI record: {e}")))?;
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        std::io::Write::write_all(&mut f, &json)?;
        f.sync_all()?;
        std::fs::rename(&tmp, &path)
    };
    write().map_err(|e| Error::io_at("write", &path, e))
}

/// The record under `key`, if any.
pub fn read(cache: &Path, key: &str) -> Result<Option<Entry>> {
    let path = dir(cache).join(key);
    match read_file(&path) {
        Ok(e) => Ok(Some(e)),
        Err(e) if e.is(berth_ipc::Code::NotFound) => Ok(None),
        Err(e) => Err(e),
    }
}

fn read_file(path: &Path) -> Result<Entry> {
    use std::io::Read;
    let f = std::fs::File::open(path).map_err(|e| Error::io_at("open", path, e))?;
    let mut raw = Vec::new();
    f.take(MAX_RECORD).read_to_end(&mut raw).map_err(|e| Error::io_at("read", path, e))?;
    serde_json::from_slice(&raw)
        .map_err(|e| Error::new(berth_ipc::Code::DataLoss, format!("CNI record {}: {e}", path.display())))
}

/// Removes the record under `key` (absent is removed).
pub fn remove(cache: &Path, key: &str) -> Result<()> {
    let path = dir(cache).join(key);
    match std::fs::remove_file(&path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::io_at("remove", &path, e)),
        _ => Ok(()),
    }
}

/// Every readable record (a damaged one is logged and skipped).
pub fn list(cache: &Path) -> Vec<Entry> {
    let Ok(entries) = std::fs::read_dir(dir(cache)) else { return Vec::new() };
    let mut out = Vec::new();
    for e in entries.flatten() {
        let path = e.path();
        if path.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with('.')) {
            continue;
        }
        match read_file(&path) {
            Ok(entry) => out.push(entry),
            Err(err) => tracing::warn!(file = %path.display(), error = %err, "unreadable CNI record"),
        }
    }
    out.sort_by_key(Entry::key);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::plugin;
    use std::time::Duration;

    use crate::Cni;

    /// Two plugins that log each call to `calls`: `first` succeeds, `second` fails its ADD
    /// when the file `fail` exists.
    fn setup() -> (tempfile::TempDir, Cni, NetworkList, Attachment) {
        let dir = tempfile::tempdir().expect("tmp");
        let calls = dir.path().join("calls");
        let fail = dir.path().join("fail");
        plugin(
            dir.path(),
            "first",
            &format!(
                r#"echo "first $CNI_COMMAND" >> {c}; [ "$CNI_COMMAND" = ADD ] && echo '{{"cniVersion":"1.0.0","ips":[{{"address":"10.9.0.7/24"}}]}}'; exit 0"#,
                c = calls.display()
            ),
        );
        plugin(
            dir.path(),
            "second",
            &format!(
                r#"read -r conf; echo "second $CNI_COMMAND $(echo "$conf" | grep -c 10.9.0.7)" >> {c}
if [ "$CNI_COMMAND" = ADD ] && [ -e {f} ]; then echo '{{"code":11,"msg":"busy"}}'; exit 1; fi
[ "$CNI_COMMAND" = ADD ] && echo '{{"cniVersion":"1.0.0","ips":[{{"address":"10.9.0.7/24"}}]}}'; exit 0"#,
                c = calls.display(),
                f = fail.display()
            ),
        );
        let cni = Cni {
            conf_dir: dir.path().join("conf"),
            plugin_dirs: vec![dir.path().to_path_buf()],
            cache_dir: dir.path().join("cache"),
            timeout: Duration::from_secs(5),
        };
        let net = crate::conf::parse(serde_json::json!({"cniVersion":"1.0.0","name":"t",
            "plugins":[{"type":"first"},{"type":"second"}]}))
        .expect("list");
        let a = Attachment {
            container_id: "pod1".into(),
            netns: "/proc/self/ns/net".into(),
            ifname: "eth0".into(),
            args: Vec::new(),
            capabilities: Default::default(),
        };
        (dir, cni, net, a)
    }

    fn calls(dir: &Path) -> Vec<String> {
        std::fs::read_to_string(dir.join("calls")).unwrap_or_default().lines().map(str::to_string).collect()
    }

    #[test]
    fn add_passes_the_previous_result_and_del_runs_in_reverse_from_the_record() {
        let (dir, cni, net, a) = setup();
        let added = cni.add(&net, &a).expect("add");
        assert_eq!(added.ips, ["10.9.0.7"]);
        assert_eq!(calls(dir.path()), ["first ADD", "second ADD 1"], "second saw the first's result");
        let recorded = cni.attachments();
        assert_eq!(recorded.len(), 1);
        assert_eq!(recorded[0].result.as_ref().map(crate::ips_of), Some(vec!["10.9.0.7".to_string()]));
        // The record, not the conf dir (which has no such network), drives the DEL.
        cni.del("t", &a).expect("del");
        assert_eq!(calls(dir.path())[2..], ["second DEL 1", "first DEL"]);
        assert!(cni.attachments().is_empty(), "record removed");
        cni.del("t", &a).expect("a second DEL is a no-op");
        assert_eq!(calls(dir.path()).len(), 4, "nothing left to run");
    }

    #[test]
    fn a_failed_add_undoes_what_ran_and_leaves_no_record() {
        let (dir, cni, net, a) = setup();
        std::fs::write(dir.path().join("fail"), b"").expect("fail switch");
        let e = cni.add(&net, &a).expect_err("second fails");
        assert!(e.is(berth_ipc::Code::Unavailable), "CNI code 11 is try-again: {e}");
        assert!(e.message.contains("network t: plugin second ADD: busy"), "{e}");
        assert_eq!(calls(dir.path()), ["first ADD", "second ADD 1", "second DEL 1", "first DEL"]);
        assert!(cni.attachments().is_empty());
    }

    #[test]
    fn a_record_written_before_a_crash_still_drives_the_del() {
        let (dir, cni, net, a) = setup();
        // What a crash between the record and the ADD's end leaves: the config, no result.
        write(&cni.cache_dir, &Entry::new(&net, &a)).expect("record");
        let left = cni.attachments();
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].result, None);
        cni.del(&left[0].network_name, &left[0].attachment()).expect("del");
        assert_eq!(calls(dir.path()), ["second DEL 0", "first DEL"]);
        assert!(cni.attachments().is_empty());
    }
}
