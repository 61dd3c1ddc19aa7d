//! `berth network` and `berth run --network`: networks created, listed, inspected and
//! removed (and the refusals: a taken name, an overlapping subnet, a bad CIDR, a conflist
//! berth did not write, a network in use); a container on a network of the test's own,
//! reached from the host through a published port on 127.0.0.1 and from a second container
//! by its address, with its `--dns`, `--add-host` and `--hostname` in its files; `--network
//! none` with loopback only; and removing a container gives back its address, its veth,
//! its network namespace and its attachment record (`rm`, `run --rm`, `run --rm -d`, a
//! `run --rm` client killed); a power cut between a container's sandbox and its record
//! leaves nothing after the next start, and the id runs again.
//!
//! Real CNI plugins (Debian's bridge, host-local, portmap, firewall, tuning). Traffic goes
//! only to the test's subnets (10.214.40.0/24, 10.214.41.0/24) and 127.0.0.1; the test's
//! bridge goes after, `ip_forward` and iptables are put back as they were.

mod power_cut_support;
mod runtime_support;

use std::path::Path;
use std::time::{Duration, Instant};

use berth_ipc::runtime::ListSandboxes;
use berth_system_tests::hostnet::{self, HOST, HostNet, http_get, retry_get, veths};
use berth_system_tests::{Berth, block_on};
use runtime_support::{can_run, import_busybox, out, show};

fn ok(berth: &Berth, args: &[&str]) -> String {
    let o = berth.cli(args);
    assert!(o.status.success(), "berth {args:?}: {}", show(&o));
    out(&o)
}

fn fails(berth: &Berth, args: &[&str], want: &str) {
    let o = berth.cli(args);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && err.contains(want),
        "berth {args:?} should fail with {want:?}: {}",
        show(&o)
    );
}

fn json(berth: &Berth, args: &[&str]) -> serde_json::Value {
    let mut all = vec!["--format", "json"];
    all.extend_from_slice(args);
    serde_json::from_str(&ok(berth, &all)).unwrap_or_else(|e| panic!("berth {args:?}: not JSON: {e}"))
}

fn start(conf: &Path) -> Berth {
    let toml = format!(
        "[network]\nconf_dir = {:?}\ndefault_network = \"berthnt\"\nwrite_default = false\nplugin_timeout_ms = 20000\n",
        conf.display().to_string()
    );
    Berth::start_with(&toml)
}

#[test]
fn networks_are_created_listed_inspected_and_removed() {
    let conf = tempfile::Builder::new().prefix("berth-cni-").tempdir().expect("tmp");
    // A default network to be written at its first use (never: no container runs here).
    let toml = format!(
        "[network]\nconf_dir = {:?}\ndefault_network = \"berthnt\"\nwrite_default = true\n\
         default_bridge = \"bn{}x44\"\ndefault_subnet = \"10.214.44.0/24\"\n",
        conf.path().display().to_string(),
        std::process::id() % 10_000
    );
    let berth = Berth::start_with(&toml);
    let o = ok(&berth, &["network", "create", "tn40", "--subnet", "10.214.40.0/24", "--label", "team=a"]);
    assert_eq!(o.trim(), "tn40");
    let file = conf.path().join("berth-tn40.conflist");
    let written: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&file).expect("conflist written")).expect("JSON");
    assert_eq!(written["berthLabels"]["team"], "a", "{written}");
    assert_eq!(written["plugins"][0]["ipam"]["ranges"][0][0]["gateway"], "10.214.40.1", "{written}");
    let dir_entries: Vec<String> = std::fs::read_dir(conf.path())
        .expect("conf dir")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(dir_entries, vec!["berth-tn40.conflist"], "no temp file left");

    // A conflist of someone else's is listed, and never removed.
    let foreign = serde_json::json!({"cniVersion": "1.0.0", "name": "theirs", "plugins": [
        {"type": "bridge", "bridge": "theirs0", "ipam": {"type": "host-local", "subnet": "10.214.41.0/24"}}]});
    std::fs::write(conf.path().join("50-theirs.conflist"), foreign.to_string()).expect("foreign");

    let list = json(&berth, &["network", "ls"]);
    let names: Vec<&str> =
        list.as_array().expect("array").iter().filter_map(|n| n["name"].as_str()).collect();
    assert_eq!(names, vec!["theirs", "tn40", "berthnt"], "{list}");
    let default = &list[2];
    assert_eq!(
        (&default["default"], &default["file"]),
        (&serde_json::json!(true), &serde_json::json!("")),
        "{default}"
    );
    let bridge = json(&berth, &["network", "inspect", "bridge"]);
    assert_eq!(bridge[0]["name"], "berthnt", "bridge is the default network: {bridge}");
    assert_eq!(bridge[0]["subnets"], serde_json::json!(["10.214.44.0/24"]));
    let table = ok(&berth, &["network", "ls"]);
    assert!(
        table.contains("tn40") && table.contains("10.214.40.0/24") && table.contains("team=a"),
        "{table}"
    );
    let inspect = json(&berth, &["network", "inspect", "tn40"]);
    let n = &inspect[0];
    assert_eq!(n["subnets"], serde_json::json!(["10.214.40.0/24"]), "{n}");
    assert_eq!(n["plugins"], serde_json::json!(["bridge", "portmap", "firewall", "tuning"]), "{n}");
    assert_eq!(n["kind"], "bridge");
    assert!(n["bridge"].as_str().is_some_and(|b| b.starts_with("berth-") && b.len() <= 15), "{n}");
    assert_eq!(n["created_by_berth"], true);
    assert_eq!(n["users"], serde_json::json!([]));
    assert_eq!(n["file"], file.display().to_string());
    let theirs = json(&berth, &["network", "inspect", "theirs"]);
    assert_eq!(theirs[0]["subnets"], serde_json::json!(["10.214.41.0/24"]), "{theirs}");
    assert_eq!(theirs[0]["created_by_berth"], false);

    // Refusals, each naming what is wrong; none writes a file.
    fails(
        &berth,
        &["network", "create", "tn40", "--subnet", "10.214.42.0/24"],
        "network tn40: already exists",
    );
    fails(
        &berth,
        &["network", "create", "tn40b", "--subnet", "10.214.40.128/25"],
        "overlaps network tn40's subnet 10.214.40.0/24",
    );
    fails(&berth, &["network", "create", "tn41", "--subnet", "10.214.0.0/16"], "overlaps network");
    fails(
        &berth,
        &["network", "create", "tn41", "--subnet", "10.214.41.0/24"],
        "overlaps network theirs's subnet",
    );
    fails(
        &berth,
        &["network", "create", "tn44", "--subnet", "10.214.44.0/24"],
        "overlaps network berthnt's subnet",
    );
    fails(
        &berth,
        &["network", "create", "berthnt", "--subnet", "10.214.45.0/24"],
        "the name of the default network",
    );
    fails(&berth, &["network", "create", "tn43", "--subnet", "10.214.43.0/33"], "bad prefix length");
    fails(&berth, &["network", "create", "tn43", "--subnet", "10.214.43.7/24"], "host bits set");
    fails(&berth, &["network", "create", "tn43", "--subnet", "banana"], "expected ADDRESS/PREFIX");
    fails(
        &berth,
        &["network", "create", "tn43", "--subnet", "10.214.43.0/24", "--gateway", "10.214.44.1"],
        "not a host address",
    );
    fails(
        &berth,
        &["network", "create", "tn43", "--subnet", "10.214.43.0/24", "--bridge", "theirs0"],
        "bridge theirs0 is network theirs's",
    );
    fails(&berth, &["network", "create", "bad/name", "--subnet", "10.214.43.0/24"], "network name");
    fails(&berth, &["network", "create", "bridge", "--subnet", "10.214.43.0/24"], "reserved");
    assert_eq!(std::fs::read_dir(conf.path()).expect("dir").count(), 2, "no conflist from a refused create");
    fails(&berth, &["network", "rm", "theirs"], "was not written by berth");
    fails(&berth, &["network", "inspect", "nosuch"], "network nosuch: no such network");
    fails(&berth, &["network", "rm", "nosuch"], "no such network");

    assert_eq!(ok(&berth, &["network", "rm", "tn40"]).trim(), "tn40");
    assert!(!file.exists(), "the conflist is removed");
    assert!(conf.path().join("50-theirs.conflist").exists(), "the foreign one stays");
    let list = json(&berth, &["network", "ls"]);
    assert_eq!(list.as_array().map(Vec::len), Some(2), "{list}");
    // Its subnet is free again.
    ok(&berth, &["network", "create", "tn40c", "--subnet", "10.214.40.0/25", "--gateway", "10.214.40.100"]);
    assert!(!conf.path().join("10-berthnt.conflist").exists(), "listing never writes the default");
    drop(berth);
}

/// Waits until `cond` holds, for up to 20 s.
fn wait_for(what: &str, berth: &Berth, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !cond() {
        assert!(Instant::now() < deadline, "{what}\n{}", berth.log());
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_container_on_a_network_is_reached_and_gives_everything_back() {
    if !hostnet::have_plugins() || !can_run("runc") {
        eprintln!("skipped: needs root, runc, busybox and the CNI plugins in /usr/lib/cni");
        return;
    }
    let _host_lock = HOST.lock().unwrap_or_else(|e| e.into_inner());
    let bridge = format!("bn{}x40", std::process::id() % 10_000);
    let host = HostNet::new(&[&bridge]);
    let berth = start(host.conf.path());
    import_busybox(&berth, "netbox", serde_json::json!({"Cmd": ["sh"]}));
    let data = berth.root.join("cni/networks");
    let allocated = || hostnet::allocated(&data, "tn40");
    let results = || berth.root.join("cni/results").read_dir().map(|d| d.count()).unwrap_or(0);
    let sandbox_dir = |id: &str| berth.state.join("sandboxes/default").join(id);
    ok(&berth, &["network", "create", "tn40", "--subnet", "10.214.40.0/24", "--bridge", &bridge]);

    let port = 20_000 + (std::process::id() % 10_000) as u16;
    let publish = format!("127.0.0.1:{port}:80");
    let script =
        "mkdir -p /srv/www && echo hello from web > /srv/www/index.html && exec httpd -f -p 80 -h /srv/www";
    ok(
        &berth,
        &[
            "run",
            "-d",
            "--network",
            "tn40",
            "-p",
            &publish,
            "--dns",
            "10.214.40.53",
            "--dns-search",
            "example.test",
            "--dns-option",
            "ndots:2",
            "--add-host",
            "db.test:10.214.40.99",
            "--hostname",
            "webhost",
            "netbox",
            "web",
            "sh",
            "-c",
            script,
        ],
    );
    let ips: Vec<String> = allocated().into_iter().collect();
    assert_eq!(ips.len(), 1, "one address allocated: {ips:?}");
    let ip = ips[0].clone();
    assert!(ip.starts_with("10.214.40."), "{ip}");
    assert_eq!(veths(&bridge), 1, "one veth on the bridge");
    assert!(sandbox_dir("web").join("ns/net").exists(), "its own sandbox holds its network namespace");

    // The address in `tasks ls` and `containers info`.
    let tasks = ok(&berth, &["tasks", "ls"]);
    assert!(tasks.lines().next().is_some_and(|h| h.ends_with("IP")), "{tasks}");
    assert!(tasks.lines().any(|l| l.starts_with("web") && l.ends_with(&ip)), "{tasks}");
    let tasks = json(&berth, &["tasks", "ls"]);
    assert_eq!(tasks[0]["ips"], serde_json::json!([ip]), "{tasks}");
    let info = json(&berth, &["containers", "info", "web"]);
    assert_eq!(info["ips"], serde_json::json!([ip]), "{}", info["ips"]);
    assert_eq!(info["network"], "tn40");
    assert_eq!(info["ports"], serde_json::json!([format!("127.0.0.1:{port}->80/tcp")]));
    let net = json(&berth, &["network", "inspect", "tn40"]);
    assert_eq!(net[0]["users"], serde_json::json!(["default/web"]), "{net}");
    fails(&berth, &["network", "rm", "tn40"], "network tn40: in use by sandbox default/web");

    // Reached from the host through the published port.
    retry_get(&format!("127.0.0.1:{port}"), "hello from web");
    // The files and the hostname it was given.
    let exec = |cmd: &str| ok(&berth, &["tasks", "exec", "web", "sh", "-c", cmd]);
    let resolv = exec("cat /etc/resolv.conf");
    assert_eq!(resolv, "search example.test\nnameserver 10.214.40.53\noptions ndots:2\n");
    let hosts = exec("cat /etc/hosts");
    assert!(hosts.contains("10.214.40.99\tdb.test\n") && hosts.contains("\twebhost\n"), "{hosts}");
    assert_eq!(exec("hostname"), "webhost\n");
    assert_eq!(exec("cat /etc/hostname"), "webhost\n");
    let addr = exec("ip -4 -o addr show eth0");
    assert!(addr.contains(&format!("inet {ip}/24")), "{addr}");

    // A second container on the network reaches the first by its address, and `run --rm`
    // gives its own address back.
    // (busybox-static's wget crashes; nc does not.)
    let get = format!("printf 'GET /index.html HTTP/1.0\\r\\n\\r\\n' | busybox nc -w 5 {ip} 80");
    let o = berth.cli(&["run", "--rm", "--network", "tn40", "netbox", "client", "sh", "-c", &get]);
    assert!(o.status.success() && out(&o).contains("hello from web"), "{}", show(&o));
    assert_eq!(allocated(), [ip.clone()].into(), "the client's address is given back");
    assert!(!sandbox_dir("client").exists(), "the client's sandbox is gone");
    assert_eq!(veths(&bridge), 1);

    // Without --dns, the host's name servers that a network namespace can reach.
    let resolv = ok(&berth, &["run", "--rm", "--network", "tn40", "netbox", "r", "cat", "/etc/resolv.conf"]);
    let host_resolv = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    for server in host_resolv.lines().filter_map(|l| l.strip_prefix("nameserver")).map(str::trim) {
        let loopback = server.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback());
        assert_eq!(resolv.contains(&format!("nameserver {server}\n")), !loopback, "{server}: {resolv}");
    }

    // `containers create` takes the same flags; its sandbox goes with `containers rm`.
    ok(&berth, &["containers", "create", "--network", "tn40", "netbox", "made", "sleep", "100"]);
    assert_eq!(allocated().len(), 2, "a created container has its address before its task");
    ok(&berth, &["tasks", "start", "made"]);
    ok(&berth, &["containers", "rm", "-f", "made"]);
    assert_eq!(allocated(), [ip.clone()].into(), "made's address is given back");
    assert!(!sandbox_dir("made").exists());

    // --network none: loopback only (with and without a sandbox for its files).
    let links =
        ok(&berth, &["run", "--rm", "--network", "none", "netbox", "solo", "busybox", "ip", "-o", "link"]);
    assert_eq!(links.lines().count(), 1, "{links}");
    assert!(links.contains(": lo:"), "{links}");
    let o = ok(
        &berth,
        &[
            "run",
            "--rm",
            "--network",
            "none",
            "--dns",
            "10.214.40.54",
            "netbox",
            "solo2",
            "sh",
            "-c",
            "ip -o link; cat /etc/resolv.conf",
        ],
    );
    assert!(o.contains(": lo:") && !o.contains("eth0") && o.contains("nameserver 10.214.40.54"), "{o}");
    assert!(!sandbox_dir("solo2").exists(), "its sandbox went with it");
    // Bad flags are refused before anything is made.
    fails(
        &berth,
        &["run", "--network", "none", "-p", "8080:80", "netbox", "x", "true"],
        "no ports to publish",
    );
    fails(&berth, &["run", "-p", "127.0.0.1:99999:80", "netbox", "x", "true"], "is not 1 to 65535");
    fails(&berth, &["run", "--add-host", "nope", "netbox", "x", "true"], "expected NAME:IP");
    fails(&berth, &["run", "--network", "nosuch", "netbox", "x", "true"], "network nosuch: no such network");
    assert!(!sandbox_dir("x").exists(), "a failed create leaves no sandbox");
    let o = berth.cli(&["containers", "info", "x"]);
    assert!(!o.status.success(), "a failed create leaves no container: {}", show(&o));

    // run --rm -d: the runtime service removes it at its exit, its network with it.
    ok(&berth, &["run", "--rm", "-d", "--network", "tn40", "netbox", "quick", "sleep", "1"]);
    assert_eq!(allocated().len(), 2, "quick has an address");
    wait_for("quick's address given back", &berth, || {
        allocated().len() == 1 && !sandbox_dir("quick").exists()
    });

    // run --rm whose client is killed: its guard has the runtime service remove it, network
    // and all.
    let mut client = std::process::Command::new(berth_system_tests::bin("berth"))
        .arg("--state")
        .arg(&berth.state)
        .args(["run", "--rm", "--network", "tn40", "netbox", "guarded", "sleep", "100"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn berth run");
    wait_for("guarded runs", &berth, || {
        out(&berth.cli(&["tasks", "ls"])).lines().any(|l| l.starts_with("guarded") && l.contains("running"))
    });
    assert_eq!(allocated().len(), 2, "guarded has an address");
    client.kill().expect("kill the client");
    let _ = client.wait();
    wait_for("guarded's address given back", &berth, || {
        allocated().len() == 1 && !sandbox_dir("guarded").exists()
    });

    // Removing the container gives back its address, veth, netns, port and record.
    ok(&berth, &["tasks", "kill", "-s", "KILL", "web"]);
    let _ = berth.cli(&["tasks", "wait", "web"]);
    ok(&berth, &["containers", "rm", "-f", "web"]);
    assert!(allocated().is_empty(), "web's address is given back");
    assert!(!sandbox_dir("web").exists(), "no sandbox dir, no network namespace mount");
    wait_for("web's veth gone", &berth, || veths(&bridge) == 0);
    assert_eq!(results(), 0, "no attachment record left");
    assert!(http_get(&format!("127.0.0.1:{port}")).is_err(), "the host port is closed");
    let sandboxes = berth.cli(&["--format", "json", "tasks", "ls"]);
    assert!(out(&sandboxes).trim() == "[]", "{}", show(&sandboxes));

    ok(&berth, &["network", "rm", "tn40"]);
    assert!(!data.join("tn40").exists(), "host-local's dir of the network goes with it");
    let dev = std::path::Path::new("/sys/class/net").join(&bridge);
    assert!(!dev.exists(), "bridge {bridge} goes with its network");
    drop(berth);
    drop(host);
}

#[test]
fn a_crash_between_a_containers_sandbox_and_its_record_leaves_nothing_after_the_next_start() {
    if !hostnet::have_plugins() || !can_run("runc") {
        eprintln!("skipped: needs root, runc, busybox and the CNI plugins in /usr/lib/cni");
        return;
    }
    let _host_lock = HOST.lock().unwrap_or_else(|e| e.into_inner());
    let bridge = format!("bn{}x41", std::process::id() % 10_000);
    let host = HostNet::new(&[&bridge]);
    let mut berth = start(host.conf.path());
    import_busybox(&berth, "netbox", serde_json::json!({"Cmd": ["sh"]}));
    ok(&berth, &["network", "create", "tn41", "--subnet", "10.214.41.0/24", "--bridge", &bridge]);
    let data = berth.root.join("cni/networks");

    berth.stop();
    let log = berth.dir.path().join("failpoints.log");
    berth.env = vec![
        ("BERTH_FAILPOINTS".into(), "runtime.owned.after_sandbox".into()),
        ("BERTH_FAILPOINT_LOG".into(), log.display().to_string()),
    ];
    berth.launch();
    let o = berth.cli(&["run", "-d", "--network", "tn41", "netbox", "cut", "sleep", "100"]);
    assert!(!o.status.success(), "the create was cut: {}", show(&o));
    let deadline = Instant::now() + Duration::from_secs(20);
    while berth.wait_launcher_exit(Duration::from_millis(20)).is_none() {
        assert!(Instant::now() < deadline, "berthd did not die");
    }
    let fired = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(fired.contains("runtime.owned.after_sandbox"), "fired: {fired}");
    assert_eq!(hostnet::allocated(&data, "tn41").len(), 1, "the cut left an address allocated");
    power_cut_support::unmount_under(berth.dir.path());
    berth.env.clear();
    berth.launch();

    // The start removes the sandbox whose container never came: address, veth, record.
    let services = berth.clients(Duration::from_secs(20));
    let sandboxes =
        || block_on(services.runtime.call(ListSandboxes { namespace: "default".into() })).expect("list");
    wait_for("the orphaned sandbox removed", &berth, || {
        sandboxes().is_empty() && hostnet::allocated(&data, "tn41").is_empty() && veths(&bridge) == 0
    });
    assert!(!berth.state.join("sandboxes/default/cut").exists());
    // The id is free for a container on the network again.
    let o = ok(
        &berth,
        &["run", "--rm", "--network", "tn41", "netbox", "cut", "busybox", "ip", "-4", "-o", "addr"],
    );
    assert!(o.contains("10.214.41."), "{o}");
    assert!(hostnet::allocated(&data, "tn41").is_empty());
    drop(berth);
    drop(host);
}
