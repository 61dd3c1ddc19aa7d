//! CRI `Status`'s NetworkReady follows CNI `STATUS`: a default network of `cniVersion` 1.1.0
//! whose plugin answers `STATUS` with an error is not ready (reason `NetworkPluginNotReady`,
//! the plugin's message), and is ready again once the plugin answers without one. The plugin
//! is a shell script of the test's own: no bridge, no address, nothing on the host network.

use berth_system_tests::Berth;
use berth_system_tests::cri::{CriClient, block_on};
use k8s_cri::v1 as cri;

fn network_ready(c: &mut CriClient) -> cri::RuntimeCondition {
    let status = block_on(c.rt.status(cri::StatusRequest { verbose: false })).expect("status").into_inner();
    let conditions = status.status.expect("status").conditions;
    conditions.into_iter().find(|c| c.r#type == "NetworkReady").expect("a NetworkReady condition")
}

#[test]
fn network_ready_is_false_with_the_status_error_while_a_plugin_says_so() {
    let dir = tempfile::tempdir().expect("tmp");
    let (conf, bin, down) = (dir.path().join("conf"), dir.path().join("bin"), dir.path().join("down"));
    std::fs::create_dir_all(&conf).expect("conf dir");
    std::fs::create_dir_all(&bin).expect("bin dir");
    let plugin = bin.join("berth-g-status");
    let script = format!(
        "#!/bin/sh\nif [ \"$CNI_COMMAND\" = STATUS ] && [ -e {} ]; then\n\
         echo '{{\"cniVersion\":\"1.1.0\",\"code\":50,\"msg\":\"no addresses left to give\"}}'; exit 1; fi\nexit 0\n",
        down.display()
    );
    std::fs::write(&plugin, script).expect("write plugin");
    let mut perm = std::fs::metadata(&plugin).expect("meta").permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perm, 0o755);
    std::fs::set_permissions(&plugin, perm).expect("chmod");
    std::fs::write(
        conf.join("10-berthgstat.conflist"),
        r#"{"cniVersion":"1.1.0","name":"berthgstat","plugins":[{"type":"berth-g-status"}]}"#,
    )
    .expect("write conflist");
    std::fs::write(&down, b"").expect("down switch");
    let toml = format!(
        "[network]\nconf_dir = {:?}\nplugin_dirs = [{:?}]\ndefault_network = \"berthgstat\"\nwrite_default = false\n",
        conf.display().to_string(),
        bin.display().to_string()
    );
    let berth = Berth::start_with(&toml);
    let mut c = block_on(CriClient::of(&berth));

    let cond = network_ready(&mut c);
    assert!(!cond.status, "{cond:?}");
    assert_eq!(cond.reason, "NetworkPluginNotReady");
    assert!(
        cond.message.contains("network berthgstat: plugin berth-g-status STATUS: no addresses left to give"),
        "{cond:?}"
    );

    std::fs::remove_file(&down).expect("up again");
    let cond = network_ready(&mut c);
    assert!(cond.status && cond.reason.is_empty() && cond.message.is_empty(), "{cond:?}");
}
