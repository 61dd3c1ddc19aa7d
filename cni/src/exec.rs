//! Running one CNI plugin: its binary found in the plugin dirs, the `CNI_*` environment,
//! its config on stdin, its answer on stdout (a result, or an error object), killed when it
//! runs past the timeout. Whatever it prints, the error names the network and the plugin.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Instant;

use berth_ipc::{Code, Error, Result};
use serde_json::Value;

use crate::conf::{NetworkList, Plugin};
use crate::{Attachment, Cni};

/// Most a plugin may print on stdout or stderr that is read.
const MAX_OUTPUT: u64 = 1 << 20;

/// The binary of plugin `kind` in `dirs`; `NotFound` naming the dirs searched.
pub fn find_plugin(dirs: &[PathBuf], kind: &str) -> Result<PathBuf> {
    for d in dirs {
        let p = d.join(kind);
        if let Ok(meta) = std::fs::metadata(&p)
            && meta.is_file()
            && std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o111 != 0
        {
            return Ok(p);
        }
    }
    Err(Error::not_found(format!("plugin {kind}: not found in {}", crate::joined(dirs))))
}

/// Runs `plugin` of `net` with `command` (`ADD`, `DEL`, `CHECK`) for `a`; answers its
/// result (`None` when it printed nothing, as `DEL` does).
pub fn run(
    cni: &Cni,
    net: &NetworkList,
    plugin: &Plugin,
    command: &str,
    a: &Attachment,
    stdin: &[u8],
) -> Result<Option<Value>> {
    run_with(cni, net, plugin, command, Some(a), stdin)
}

/// Runs `plugin` of `net` with `STATUS`: the network config only, no container, namespace,
/// interface or arguments in the environment.
pub fn run_status(cni: &Cni, net: &NetworkList, plugin: &Plugin, stdin: &[u8]) -> Result<Option<Value>> {
    run_with(cni, net, plugin, "STATUS", None, stdin)
}

/// Whether a plugin's error says it does not know the command or the config's version (a
/// plugin older than the spec that defines the command): `CNI error 1` (incompatible
/// version), or an `unknown CNI_COMMAND` answer as the reference plugins give (code 4).
pub fn is_unsupported(e: &Error) -> bool {
    let m = e.message.to_ascii_lowercase();
    m.ends_with("[cni error 1]") || m.contains("unknown cni_command") || m.contains("unknown command")
}

fn run_with(
    cni: &Cni,
    net: &NetworkList,
    plugin: &Plugin,
    command: &str,
    a: Option<&Attachment>,
    stdin: &[u8],
) -> Result<Option<Value>> {
    let what = format!("network {}: plugin {} {command}", net.name, plugin.kind);
    let bin = find_plugin(&cni.plugin_dirs, &plugin.kind)
        .map_err(|e| e.context(format!("network {}", net.name)))?;
    let mut cmd = Command::new(&bin);
    cmd.env_clear().env("CNI_COMMAND", command);
    if let Some(a) = a {
        let args: Vec<String> = a.args.iter().map(|(k, v)| format!("{k}={v}")).collect();
        cmd.env("CNI_CONTAINERID", &a.container_id)
            .env("CNI_NETNS", &a.netns)
            .env("CNI_IFNAME", &a.ifname)
            .env("CNI_ARGS", args.join(";"));
    }
    cmd.env("CNI_PATH", crate::joined(&cni.plugin_dirs))
        // portmap and firewall run iptables.
        .env("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child =
        cmd.spawn().map_err(|e| Error::internal(format!("{what}: cannot run {}: {e}", bin.display())))?;
    let mut input = child.stdin.take();
    let data = stdin.to_vec();
    let writer = std::thread::spawn(move || {
        if let Some(i) = input.as_mut() {
            let _ = i.write_all(&data);
        }
    });
    let out = child.stdout.take().map(|o| std::thread::spawn(move || read_capped(o)));
    let err = child.stderr.take().map(|o| std::thread::spawn(move || read_capped(o)));
    let deadline = Instant::now() + cni.timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break s,
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(Error::new(
                    Code::Unavailable,
                    format!("{what}: no answer in {} ms; killed", cni.timeout.as_millis()),
                ));
            }
            Ok(None) => std::thread::sleep(std::time::Duration::from_millis(1)),
            Err(e) => return Err(Error::internal(format!("{what}: wait: {e}"))),
        }
    };
    let _ = writer.join();
    let stdout = out.and_then(|t| t.join().ok()).unwrap_or_default();
    let stderr = err.and_then(|t| t.join().ok()).unwrap_or_default();
    answer(&what, status.success(), &stdout, &stderr)
}

/// The plugin's answer read: success with a JSON result (or nothing), or its error object.
fn answer(what: &str, ok: bool, stdout: &[u8], stderr: &[u8]) -> Result<Option<Value>> {
    let text = String::from_utf8_lossy(stdout);
    let trimmed = text.trim();
    if ok {
        if trimmed.is_empty() {
            return Ok(None);
        }
        return serde_json::from_str::<Value>(trimmed).ok().filter(Value::is_object).map(Some).ok_or_else(
            || Error::internal(format!("{what}: answer is not a JSON object: {}", excerpt(trimmed))),
        );
    }
    // The spec's error: {"cniVersion", "code", "msg", "details"}.
    if let Ok(v) = serde_json::from_str::<Value>(trimmed)
        && let Some(msg) = v.get("msg").and_then(Value::as_str)
    {
        let code = v.get("code").and_then(Value::as_u64).unwrap_or(0);
        let details = v.get("details").and_then(Value::as_str).unwrap_or_default();
        let mut m = format!("{what}: {msg}");
        if !details.is_empty() {
            m.push_str(&format!(" ({details})"));
        }
        m.push_str(&format!(" [CNI error {code}]"));
        // 11: try again later (the spec's transient code).
        return Err(if code == 11 { Error::new(Code::Unavailable, m) } else { Error::internal(m) });
    }
    let err = String::from_utf8_lossy(stderr);
    let said = [trimmed, err.trim()].into_iter().find(|s| !s.is_empty()).unwrap_or("no output");
    Err(Error::internal(format!("{what}: failed: {}", excerpt(said))))
}

/// At most 300 characters of `s`, on one line.
fn excerpt(s: &str) -> String {
    let one: String = s.chars().map(|c| if c.is_control() { ' ' } else { c }).take(300).collect();
    if s.chars().count() > 300 { format!("{one}…") } else { one }
}

fn read_capped(r: impl Read) -> Vec<u8> {
    let mut buf = Vec::new();
    let mut r = r.take(MAX_OUTPUT);
    let _ = r.read_to_end(&mut buf);
    // Drain the rest so the plugin never blocks on a full pipe.
    let mut rest = r.into_inner();
    let _ = std::io::copy(&mut rest, &mut std::io::sink());
    buf
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::plugin;
    use std::time::Duration;

    fn setup(body: &str) -> (tempfile::TempDir, Cni, NetworkList, Attachment) {
        let dir = tempfile::tempdir().expect("tmp");
        plugin(dir.path(), "fake", body);
        let cni = Cni {
            conf_dir: dir.path().join("conf"),
            plugin_dirs: vec![dir.path().join("none"), dir.path().to_path_buf()],
            cache_dir: dir.path().join("cache"),
            timeout: Duration::from_millis(500),
        };
        let net = crate::conf::parse(
            serde_json::json!({"cniVersion":"1.0.0","name":"t","plugins":[{"type":"fake"}]}),
        )
        .expect("list");
        let a = Attachment {
            container_id: "c1".into(),
            netns: "/proc/self/ns/net".into(),
            ifname: "eth0".into(),
            args: vec![("K8S_POD_NAME".into(), "p".into())],
            capabilities: Default::default(),
        };
        (dir, cni, net, a)
    }

    #[test]
    fn the_environment_and_stdin_reach_the_plugin_and_its_result_comes_back() {
        let (_d, cni, net, a) = setup(
            r#"read -r conf
printf '{"cniVersion":"1.0.0","ips":[{"address":"10.9.0.2/24"}],"seen":"%s %s %s %s %s"}' "$CNI_COMMAND" "$CNI_CONTAINERID" "$CNI_IFNAME" "$CNI_ARGS" "${#conf}""#,
        );
        let out =
            run(&cni, &net, &net.plugins[0], "ADD", &a, br#"{"name":"t"}"#).expect("add").expect("result");
        assert_eq!(out["seen"], "ADD c1 eth0 K8S_POD_NAME=p 12", "stdin is the 12 bytes given");
        assert_eq!(crate::ips_of(&out), ["10.9.0.2"]);
    }

    #[test]
    fn errors_name_network_and_plugin() {
        let (_d, cni, net, a) =
            setup(r#"echo '{"code":7,"msg":"no addresses left","details":"range full"}'; exit 1"#);
        let e = run(&cni, &net, &net.plugins[0], "ADD", &a, b"{}").expect_err("fails");
        assert!(e.message.contains("network t: plugin fake ADD: no addresses left (range full)"), "{e}");

        let (_d, cni, net, a) = setup("echo 'garbage{'");
        let e = run(&cni, &net, &net.plugins[0], "ADD", &a, b"{}").expect_err("garbage");
        assert!(e.message.contains("not a JSON object") && e.message.contains("garbage"), "{e}");

        let (_d, cni, net, a) = setup("echo oops >&2; exit 3");
        let e = run(&cni, &net, &net.plugins[0], "DEL", &a, b"{}").expect_err("stderr");
        assert!(e.message.contains("plugin fake DEL: failed: oops"), "{e}");

        let (_d, cni, mut net, a) = setup("true");
        net.plugins[0].kind = "missing".into();
        let e = run(&cni, &net, &net.plugins[0], "ADD", &a, b"{}").expect_err("missing");
        assert!(e.is(Code::NotFound) && e.message.contains("plugin missing: not found"), "{e}");
    }

    #[test]
    fn a_hanging_plugin_is_killed_at_the_timeout() {
        let (_d, cni, net, a) = setup("exec sleep 30");
        let started = Instant::now();
        let e = run(&cni, &net, &net.plugins[0], "ADD", &a, b"{}").expect_err("hangs");
        assert!(e.is(Code::Unavailable), "{e}");
        assert!(started.elapsed() < Duration::from_secs(10), "killed, not waited for");
    }
}
