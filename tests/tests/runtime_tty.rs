//! `berth run -t` and `berth tasks attach` of a terminal task, driven from a pty this test
//! opens itself (as a user's terminal would be): the shell inside gets a terminal, what is
//! typed reaches it, its output comes back, window size is passed on, the local terminal is
//! restored, and the CLI exits with the container's exit code — with runc and crun.

mod runtime_support;

use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use berth_system_tests::mounts_under;
use berth_system_tests::{Berth, bin};
use nix::pty::{OpenptyResult, Winsize, openpty};
use nix::sys::termios::{LocalFlags, tcgetattr};
use runtime_support::{berth_with_tiny, can_run, import_busybox, out, show, teardown};

/// The CLI running on the slave side of a fresh pty; the master's output collected.
struct Terminal {
    master: std::fs::File,
    slave: OwnedFd,
    output: Arc<Mutex<Vec<u8>>>,
    child: Child,
}

impl Terminal {
    fn spawn(berth: &Berth, args: &[&str]) -> Terminal {
        let size = Winsize { ws_row: 33, ws_col: 101, ws_xpixel: 0, ws_ypixel: 0 };
        let OpenptyResult { master, slave } = openpty(Some(&size), None).expect("openpty");
        let io = |fd: &OwnedFd| Stdio::from(fd.try_clone().expect("dup slave"));
        let child = Command::new(bin("berth"))
            .arg("--state")
            .arg(&berth.state)
            .args(args)
            .stdin(io(&slave))
            .stdout(io(&slave))
            .stderr(io(&slave))
            .spawn()
            .expect("spawn berth");
        let master = std::fs::File::from(master);
        let output = Arc::new(Mutex::new(Vec::new()));
        let (mut reader, sink) = (master.try_clone().expect("dup master"), output.clone());
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            // Ends with EIO once every slave end is closed (ours is kept until `finish`).
            while let Ok(n) = reader.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock().expect("lock").extend_from_slice(&buf[..n]);
            }
        });
        Terminal { master, slave, output, child }
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.output.lock().expect("lock")).into_owned()
    }

    fn wait_for(&self, needle: &str, timeout: Duration) {
        let start = Instant::now();
        while !self.text().contains(needle) {
            assert!(
                start.elapsed() < timeout,
                "no {needle:?} within {timeout:?}; terminal shows {:?}",
                self.text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits for the shell's prompt, then checks that its stdin is a terminal of the size of
    /// ours (33 rows, 101 columns).
    fn shell_has_our_terminal(&mut self) {
        self.wait_for("# ", Duration::from_secs(30));
        self.type_line("test -t 0 && echo tty-yes; busybox stty size");
        self.wait_for("tty-yes", Duration::from_secs(10));
        self.wait_for("33 101", Duration::from_secs(10));
    }

    fn type_line(&mut self, line: &str) {
        self.master.write_all(line.as_bytes()).expect("type");
        self.master.write_all(b"\r").expect("type");
    }

    /// The CLI's exit code (within `timeout`), whether the local terminal was restored, and
    /// everything it showed.
    fn finish(mut self, timeout: Duration) -> (Option<i32>, bool, String) {
        let start = Instant::now();
        let status = loop {
            if let Some(s) = self.child.try_wait().expect("wait") {
                break s;
            }
            if start.elapsed() > timeout {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!("berth did not exit; terminal shows {:?}", self.text());
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let attrs = tcgetattr(self.slave.as_fd()).expect("tcgetattr");
        let restored = attrs.local_flags.contains(LocalFlags::ICANON | LocalFlags::ECHO);
        // What the CLI wrote before exiting is in the master's buffer: give the reader a moment.
        std::thread::sleep(Duration::from_millis(100));
        (status.code(), restored, self.text())
    }
}

#[test]
fn run_t_gives_an_interactive_terminal_with_runc_and_crun() {
    let Some(berth) = berth_with_tiny(&["runc", "crun"]) else { return };
    for runtime in ["runc", "crun"] {
        let id = format!("tty-{runtime}");
        let mut term =
            Terminal::spawn(&berth, &["run", "--rm", "-t", "--runtime", runtime, "tiny", &id, "sh"]);
        term.shell_has_our_terminal();
        term.type_line("echo hi-$((1+1)); exit 4");
        let (code, restored, text) = term.finish(Duration::from_secs(30));
        assert!(text.contains("hi-2"), "{runtime}: terminal shows {text:?}");
        assert_eq!(code, Some(4), "{runtime}: exit code; {}", term_text_after(&berth, &id));
        assert!(restored, "{runtime}: the local terminal is left in raw mode");
        let ls = berth.cli(&["containers", "ls", "-q"]);
        assert!(!out(&ls).contains(&id), "{runtime}: container left: {}", show(&ls));
    }
    assert!(mounts_under(&berth.state).is_empty(), "mounts left");
    teardown(&berth);
}

/// A short note for failure messages: what `tasks ls` says (the task should be gone).
fn term_text_after(berth: &Berth, id: &str) -> String {
    let ls = berth.cli(&["tasks", "ls"]);
    format!("tasks ls after {id}: {}", out(&ls))
}

#[test]
fn run_t_output_reaches_the_terminal_and_attach_reattaches() {
    if !can_run("runc") {
        return;
    }
    let berth = Berth::start();
    import_busybox(&berth, "tiny", serde_json::json!({"Cmd": ["sh"]}));
    // `echo hi-$((1+1))` typed at a detached terminal task's shell through `tasks attach`.
    let o = berth.cli(&["run", "-d", "-t", "tiny", "att", "sh"]);
    assert!(o.status.success(), "{}", show(&o));
    let mut term = Terminal::spawn(&berth, &["tasks", "attach", "att"]);
    term.wait_for("# ", Duration::from_secs(30));
    term.type_line("echo hi-$((1+1)); exit 5");
    term.wait_for("hi-2", Duration::from_secs(10));
    let (code, restored, text) = term.finish(Duration::from_secs(30));
    assert_eq!(
        code,
        Some(5),
        "attach exit code; terminal shows {text:?}; {}",
        term_text_after(&berth, "att")
    );
    assert!(restored, "the local terminal is left in raw mode");
    // The terminal's output was also logged: a second attach replays it.
    let o = berth.cli(&["tasks", "attach", "att"]);
    assert!(out(&o).contains("hi-2"), "{}", show(&o));
    assert_eq!(o.status.code(), Some(5), "{}", show(&o));
    // A task without a terminal refuses input.
    let o = berth.cli(&["run", "-d", "tiny", "plain", "sleep", "100"]);
    assert!(o.status.success(), "{}", show(&o));
    let services = berth.clients(Duration::from_secs(10));
    let task = berth_ipc::runtime::TaskRef::init("default", "plain");
    let r = berth_system_tests::block_on(
        services.runtime.call(berth_ipc::runtime::WriteStdin { task, data: b"x".to_vec() }),
    );
    assert!(
        r.is_err_and(|e| e.is(berth_ipc::Code::FailedPrecondition)),
        "input to a task without a terminal"
    );
    for id in ["att", "plain"] {
        let _ = berth.cli(&["tasks", "kill", "-s", "KILL", id]);
        let _ = berth.cli(&["tasks", "wait", id]);
        let o = berth.cli(&["tasks", "delete", id]);
        assert!(o.status.success(), "{}", show(&o));
        let o = berth.cli(&["containers", "rm", id]);
        assert!(o.status.success(), "{}", show(&o));
    }
    assert!(mounts_under(&berth.state).is_empty(), "mounts left");
    teardown(&berth);
}

/// `berth tasks exec -t`: a shell with a terminal of its own inside a running container,
/// sized like ours, taking what is typed, its exit code coming back; then `exec` without a
/// terminal refuses a window size. With runc and crun.
#[test]
fn exec_t_gives_a_second_terminal() {
    let Some(berth) = berth_with_tiny(&["runc", "crun"]) else { return };
    for runtime in ["runc", "crun"] {
        let id = format!("exec-tty-{runtime}");
        let o = berth.cli(&["run", "-d", "--runtime", runtime, "tiny", &id, "sleep", "100"]);
        assert!(o.status.success(), "{}", show(&o));
        let mut term = Terminal::spawn(&berth, &["tasks", "exec", "-t", "--exec-id", "sh1", &id, "sh"]);
        term.shell_has_our_terminal();
        term.type_line("echo in-exec-$((2+3)); exit 6");
        let (code, restored, text) = term.finish(Duration::from_secs(30));
        assert!(text.contains("in-exec-5"), "{runtime}: terminal shows {text:?}");
        assert_eq!(code, Some(6), "{runtime}: exec exit code; terminal shows {text:?}");
        assert!(restored, "{runtime}: the local terminal is left in raw mode");

        let o = berth.cli(&["tasks", "exec", "-d", "--exec-id", "plain", &id, "sleep", "100"]);
        assert!(o.status.success(), "{}", show(&o));
        let services = berth.clients(Duration::from_secs(10));
        let task = berth_ipc::runtime::TaskRef {
            namespace: "default".into(),
            id: id.clone(),
            exec_id: Some("plain".into()),
        };
        let r = berth_system_tests::block_on(services.runtime.call(berth_ipc::runtime::ResizePty {
            task,
            cols: 80,
            rows: 24,
        }));
        match r {
            Err(e) => {
                assert!(e.message.contains(&format!("exec plain of task {id}: has no terminal")), "{e}")
            }
            Ok(()) => panic!("{runtime}: a window size for an exec without a terminal was taken"),
        }
        let _ = berth.cli(&["tasks", "kill", "-s", "KILL", "--all", &id]);
        let _ = berth.cli(&["tasks", "wait", &id]);
        let o = berth.cli(&["tasks", "delete", &id]);
        assert!(o.status.success(), "{}", show(&o));
        let o = berth.cli(&["containers", "rm", &id]);
        assert!(o.status.success(), "{}", show(&o));
    }
    assert!(mounts_under(&berth.state).is_empty(), "mounts left");
    teardown(&berth);
}
