//! Stdin pipes of processes started with `stdin` (`berth run -i`, `berth tasks exec -i`).
//! The shim makes a pipe, gives its read end to the OCI runtime as the process's stdin (runc
//! and crun pass their own stdio through to a detached container's process) and keeps the
//! write end: `Stdin` requests write to it, `CloseStdin` closes it, so the process reads end
//! of file. Both ends are close-on-exec, so no other child of the shim holds the pipe open.

use berth_ipc::sync::lock;
use std::collections::HashMap;
use std::io::{PipeReader, PipeWriter, Write};
use std::sync::{Arc, Mutex};

use berth_ipc::{Error, Result};

/// The write ends, by exec id (`None`: the init process).
#[derive(Default)]
pub struct Inputs {
    pipes: Mutex<HashMap<Option<String>, Arc<PipeWriter>>>,
}

/// How a process is named in errors.
fn name(task: &str, exec_id: Option<&str>) -> String {
    match exec_id {
        Some(e) => format!("exec {e} of task {task}"),
        None => format!("task {task}"),
    }
}

impl Inputs {
    /// A new pipe for the process `exec_id`; answers the read end for the runtime.
    pub fn open(&self, exec_id: Option<&str>) -> Result<PipeReader> {
        let (reader, writer) = std::io::pipe().map_err(|e| Error::internal_cause("stdin pipe", e))?;
        self.lock().insert(exec_id.map(str::to_string), Arc::new(writer));
        Ok(reader)
    }

    /// Whether the process has an open stdin pipe.
    pub fn has(&self, exec_id: Option<&str>) -> bool {
        self.lock().contains_key(&exec_id.map(str::to_string))
    }

    /// Writes all of `data` to the process's stdin, waiting while the pipe is full. The lock
    /// is not held meanwhile, so a close or another process's input is not held up.
    pub fn write(&self, task: &str, exec_id: Option<&str>, data: &[u8]) -> Result<()> {
        let pipe = self.lock().get(&exec_id.map(str::to_string)).cloned();
        let pipe =
            pipe.ok_or_else(|| Error::precondition(format!("{}: stdin is not open", name(task, exec_id))))?;
        (&*pipe).write_all(data).map_err(|e| match e.kind() {
            std::io::ErrorKind::BrokenPipe => {
                Error::precondition(format!("{}: no longer reads its stdin", name(task, exec_id)))
            }
            _ => Error::internal_cause(format_args!("{}: stdin", name(task, exec_id)), e),
        })
    }

    /// Closes the process's stdin pipe (a write in flight finishes first).
    pub fn close(&self, task: &str, exec_id: Option<&str>) -> Result<()> {
        match self.lock().remove(&exec_id.map(str::to_string)) {
            Some(_) => Ok(()),
            None => Err(Error::precondition(format!("{}: stdin is not open", name(task, exec_id)))),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Option<String>, Arc<PipeWriter>>> {
        lock(&self.pipes)
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    #[test]
    fn write_then_close_gives_end_of_file() {
        let inputs = Inputs::default();
        let mut reader = inputs.open(None).expect("pipe");
        assert!(inputs.has(None));
        assert!(!inputs.has(Some("e1")));
        inputs.write("t", None, b"hello").expect("write");
        inputs.close("t", None).expect("close");
        let mut got = String::new();
        reader.read_to_string(&mut got).expect("read to end");
        assert_eq!(got, "hello");
        let e = inputs.write("t", None, b"x").expect_err("closed");
        assert_eq!(e.message, "task t: stdin is not open");
        let e = inputs.close("t", Some("e1")).expect_err("never opened");
        assert_eq!(e.message, "exec e1 of task t: stdin is not open");
    }

    #[test]
    fn a_gone_reader_is_a_clear_error() {
        let inputs = Inputs::default();
        drop(inputs.open(Some("e2")).expect("pipe"));
        let e = inputs.write("t", Some("e2"), b"x").expect_err("no reader");
        assert_eq!(e.message, "exec e2 of task t: no longer reads its stdin");
    }
}
