//! [`super::wait_state_gone`] against a runtime double: what state it keeps is a set the
//! test changes; the real runtimes are exercised by the system tests.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::*;

/// A runtime whose state is a set of (bin, ns, id), with a log of the calls it got.
#[derive(Default)]
struct Fake {
    state: Mutex<BTreeSet<(String, String, String)>>,
    calls: Mutex<Vec<String>>,
}

impl Fake {
    fn with(entries: &[(&str, &str, &str)]) -> Arc<Fake> {
        let fake = Arc::new(Fake::default());
        for (b, n, i) in entries {
            fake.state.lock().expect("state").insert((b.to_string(), n.to_string(), i.to_string()));
        }
        fake
    }
    fn remove(&self, bin: &str, ns: &str, id: &str) {
        self.state.lock().expect("state").remove(&(bin.into(), ns.into(), id.into()));
    }
    fn calls(&self) -> Vec<String> {
        self.calls.lock().expect("calls").clone()
    }
}

impl OciRuntime for Fake {
    fn has_state(&self, bin: &str, ns: &str, id: &str) -> bool {
        self.state.lock().expect("state").contains(&(bin.into(), ns.into(), id.into()))
    }
    fn force_delete(&self, bin: &str, ns: &str, id: &str) {
        self.calls.lock().expect("calls").push(format!("{bin} delete --force {ns}/{id}"));
        self.remove(bin, ns, id);
    }
}

#[test]
fn no_state_no_wait_no_delete() {
    let fake = Fake::with(&[("runc", "default", "other")]);
    let started = std::time::Instant::now();
    assert!(wait_state_gone(fake.as_ref(), "default", "web", Duration::from_secs(3)).is_empty());
    assert!(started.elapsed() < Duration::from_secs(1));
    assert!(fake.calls().is_empty(), "{:?}", fake.calls());
}

#[test]
fn state_the_shim_deletes_in_time_is_not_force_deleted() {
    let fake = Fake::with(&[("runc", "default", "web")]);
    let shim = {
        let fake = fake.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            fake.remove("runc", "default", "web");
        })
    };
    let forced = wait_state_gone(fake.as_ref(), "default", "web", Duration::from_secs(5));
    shim.join().expect("shim thread");
    assert!(forced.is_empty(), "{forced:?}");
    assert!(fake.calls().is_empty(), "{:?}", fake.calls());
}

#[test]
fn state_left_after_the_deadline_is_force_deleted_in_every_runtime_that_has_it() {
    let fake = Fake::with(&[("runc", "default", "web"), ("crun", "default", "web"), ("runc", "b", "web")]);
    let forced = wait_state_gone(fake.as_ref(), "default", "web", Duration::from_millis(20));
    assert_eq!(forced, ["runc", "crun"]);
    assert_eq!(fake.calls(), ["runc delete --force default/web", "crun delete --force default/web"]);
    assert!(fake.has_state("runc", "b", "web"), "another namespace's container is left alone");
}

#[test]
fn runtime_names_map_to_binaries_and_unknown_ones_are_refused_by_name() {
    assert_eq!(runtime_binary("").ok(), Some("runc"));
    assert_eq!(runtime_binary("io.containerd.runc.v2").ok(), Some("runc"));
    assert_eq!(runtime_binary("crun").ok(), Some("crun"));
    let e = runtime_binary("kata").expect_err("unknown runtime");
    assert!(e.to_string().contains("runtime \"kata\": unknown"), "{e}");
}

#[test]
fn the_command_names_its_root_first() {
    let cmd = runtime_command("runc", Path::new("/s/oci/runc/default"));
    let args: Vec<_> = cmd.get_args().map(|a| a.to_string_lossy().into_owned()).collect();
    assert_eq!(args, ["--root", "/s/oci/runc/default"]);
    assert_eq!(runtime_root(Path::new("/s"), "crun", "ns"), Path::new("/s/oci/crun/ns"));
}
