//! `berth run -i` and `berth tasks exec -i`: the CLI's stdin reaches the container's process
//! through a pipe its shim holds, more than a pipe's worth of it (so writes wait for the
//! reader), and its end reaches the process as end of file — with runc and crun. Without
//! `-i` a process's stdin is `/dev/null`, and input sent to it is refused.

mod runtime_support;

use std::time::Duration;

use berth_ipc::runtime::{CloseStdin, TaskRef, WriteStdin};
use berth_system_tests::mounts_under;
use berth_system_tests::{Berth, block_on};
use runtime_support::{can_run, import_busybox, out, show, teardown};

/// 200 KiB after a first line: three times a pipe's buffer.
fn input() -> Vec<u8> {
    let mut data = b"hello there\n".to_vec();
    data.extend((0..200 * 1024).map(|i| b'a' + (i % 26) as u8));
    data
}

fn stdin_reaches_the_process(runtime: &str) {
    if !can_run(runtime) {
        return;
    }
    let berth = Berth::start();
    import_busybox(&berth, "tiny", serde_json::json!({"Cmd": ["sh"]}));
    let rt = ["--runtime", runtime];

    // run -i: the first line, then the count of the rest, then end of file.
    let script = "read first; echo \"first=$first\"; wc -c; exit 7";
    let args = [&["run", "--rm", "-i"][..], &rt, &["tiny", "in1", "sh", "-c", script]].concat();
    let o = berth.cli_with_input(&args, &input());
    assert_eq!(o.status.code(), Some(7), "{}", show(&o));
    let text = out(&o);
    assert!(text.contains("first=hello there"), "{}", show(&o));
    assert!(text.contains(&(200 * 1024).to_string()), "the whole input and its end: {}", show(&o));

    // Without -i, stdin is /dev/null: `cat` ends at once and sees nothing.
    let args = [&["run", "--rm"][..], &rt, &["tiny", "in2", "sh", "-c", "cat; echo done"]].concat();
    let o = berth.cli_with_input(&args, b"not for you\n");
    assert!(o.status.success(), "{}", show(&o));
    assert_eq!(out(&o).trim(), "done", "{}", show(&o));

    // exec -i into a running task; the task itself takes no input.
    let args = [&["run", "-d"][..], &rt, &["tiny", "keep", "sleep", "100"]].concat();
    let o = berth.cli(&args);
    assert!(o.status.success(), "{}", show(&o));
    let exec = ["tasks", "exec", "-i", "--exec-id", "up", "keep", "tr", "a-z", "A-Z"];
    let o = berth.cli_with_input(&exec, b"shout this\n");
    assert!(o.status.success(), "{}", show(&o));
    assert_eq!(out(&o), "SHOUT THIS\n", "{}", show(&o));

    let services = berth.clients(Duration::from_secs(10));
    let init = TaskRef::init("default", "keep");
    let refused = block_on(services.runtime.call(WriteStdin { task: init.clone(), data: b"x".to_vec() }));
    match refused {
        Err(e) => {
            assert!(e.is(berth_ipc::Code::FailedPrecondition), "{e}");
            assert!(e.message.contains("task keep: has no terminal and no open stdin"), "{e}");
        }
        Ok(()) => panic!("input to a task started without -i was taken"),
    }
    let closed = block_on(services.runtime.call(CloseStdin(init)));
    assert!(closed.is_err_and(|e| e.is(berth_ipc::Code::FailedPrecondition)), "close without a pipe");

    // An exec that does not read: its input is refused once it has gone, not hung on.
    let exec = ["tasks", "exec", "-i", "--exec-id", "deaf", "keep", "true"];
    let o = berth.cli_with_input(&exec, &input());
    assert!(o.status.success(), "{}", show(&o));

    let _ = berth.cli(&["tasks", "kill", "-s", "KILL", "keep"]);
    let _ = berth.cli(&["tasks", "wait", "keep"]);
    let o = berth.cli(&["tasks", "delete", "keep"]);
    assert!(o.status.success(), "{}", show(&o));
    let o = berth.cli(&["containers", "rm", "keep"]);
    assert!(o.status.success(), "{}", show(&o));
    assert!(mounts_under(&berth.state).is_empty(), "mounts left");
    teardown(&berth);
}

#[test]
fn stdin_with_runc() {
    stdin_reaches_the_process("runc");
}

#[test]
fn stdin_with_crun() {
    stdin_reaches_the_process("crun");
}
