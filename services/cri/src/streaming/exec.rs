//! Exec and attach, whatever carries them: a process's stdin, stdout, stderr and terminal
//! size as channels, moved through the runtime service's own calls (`Exec`, `Attach`,
//! `WriteStdin`, `CloseStdin`, `ResizePty`, `WaitTask`), so the shim's pipes and pty are the
//! only mechanism, as for `berth tasks exec`.

use berth_ipc::runtime::{
    Attach, CloseStdin, Exec, ExecSpec, KillTask, OutputStream, ResizePty, TaskRef, WaitTask, WriteStdin,
};
use berth_ipc::{Code, Error, Result};
use futures_util::FutureExt;
use tokio::sync::mpsc;

use crate::{Cri, NAMESPACE};

/// Exec ids the streaming server takes turns with per container (`stream-0` …): an id is
/// reused once its process has exited, so the shim keeps at most this many.
pub const STREAM_EXEC_SLOTS: usize = 32;

/// A terminal's size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TermSize {
    /// Columns.
    pub width: u16,
    /// Rows.
    pub height: u16,
}

/// The resize channel's JSON objects (`{"Width":W,"Height":H}`, back to back, split
/// anywhere) as sizes.
#[derive(Default)]
pub struct ResizeParser {
    buf: Vec<u8>,
}

#[derive(serde::Deserialize)]
struct Size {
    #[serde(rename = "Width")]
    width: u16,
    #[serde(rename = "Height")]
    height: u16,
}

impl ResizeParser {
    /// The sizes `data` completes. `None` for malformed JSON or more than 64 KiB without a
    /// whole object: the caller drops the channel (or starts afresh).
    pub fn push(&mut self, data: &[u8]) -> Option<Vec<TermSize>> {
        self.buf.extend_from_slice(data);
        if self.buf.len() > 64 * 1024 {
            return None;
        }
        let mut objects = serde_json::Deserializer::from_slice(&self.buf).into_iter::<Size>();
        let mut found = Vec::new();
        let mut used = 0;
        loop {
            match objects.next() {
                Some(Ok(s)) => {
                    used = objects.byte_offset();
                    found.push(TermSize { width: s.width, height: s.height });
                }
                Some(Err(e)) if e.is_eof() => break,
                Some(Err(_)) => return None,
                None => break,
            }
        }
        self.buf.drain(..used);
        Some(found)
    }
}

/// The client's side of a process, as channels.
#[derive(Default)]
pub struct Stdio {
    /// Input; the sender dropped is end of input.
    pub stdin: Option<mpsc::Receiver<Vec<u8>>>,
    /// Terminal sizes.
    pub resize: Option<mpsc::Receiver<TermSize>>,
    /// Output (with a terminal, everything).
    pub stdout: Option<mpsc::Sender<Vec<u8>>>,
    /// Error output (never with a terminal).
    pub stderr: Option<mpsc::Sender<Vec<u8>>>,
}

/// How a process ended, for the error channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// It exited with this status.
    Exited(i32),
    /// It could not be run, or following it failed.
    Failed(String),
}

/// Starts `cmd` in `container` and runs it with `io` until it exits, or until `gone`
/// resolves (the client vanished), when the process is killed.
pub async fn exec(
    cri: &Cri,
    container: &str,
    cmd: Vec<String>,
    tty: bool,
    io: Stdio,
    gone: impl Future<Output = ()>,
) -> Outcome {
    let spec = ExecSpec { args: cmd, stdin: io.stdin.is_some(), terminal: tty, ..ExecSpec::default() };
    let task = match start(cri, container, spec, "stream", STREAM_EXEC_SLOTS).await {
        Ok(t) => t,
        Err(e) => return Outcome::Failed(e.message.clone()),
    };
    follow(cri, task, tty, io, gone, true, true).await
}

/// Follows `container`'s init with `io` until it exits or `gone` resolves (the container
/// then goes on). The client's end of input closes the init's stdin only when the container
/// was created with `stdin_once`, as the kubelet's runtimes do; otherwise its stdin stays
/// open for the next attach.
pub async fn attach(
    cri: &Cri,
    container: &str,
    tty: bool,
    stdin_once: bool,
    io: Stdio,
    gone: impl Future<Output = ()>,
) -> Outcome {
    follow(cri, TaskRef::init(NAMESPACE, container), tty, io, gone, false, stdin_once).await
}

/// Starts an exec of `spec` in `container` under the first free id `<prefix>-<n>`, n below
/// `slots`. `Unavailable` when all are running.
pub async fn start(
    cri: &Cri,
    container: &str,
    spec: ExecSpec,
    prefix: &str,
    slots: usize,
) -> Result<TaskRef> {
    for slot in 0..slots {
        let task = TaskRef {
            namespace: NAMESPACE.into(),
            id: container.to_string(),
            exec_id: Some(format!("{prefix}-{slot}")),
        };
        match cri.services.runtime.call(Exec { task: task.clone(), spec: spec.clone() }).await {
            Ok(_) => return Ok(task),
            Err(e) if e.is(Code::AlreadyExists) => continue,
            Err(e) => return Err(e),
        }
    }
    Err(Error::unavailable(format!("container {container}: {slots} exec sessions already run in it")))
}

async fn follow(
    cri: &Cri,
    task: TaskRef,
    tty: bool,
    io: Stdio,
    gone: impl Future<Output = ()>,
    kill_when_gone: bool,
    close_stdin: bool,
) -> Outcome {
    let Stdio { stdin, resize, stdout, stderr } = io;
    let rt = &cri.services.runtime;
    let input = async {
        let Some(mut stdin) = stdin else { return std::future::pending::<()>().await };
        while let Some(data) = stdin.recv().await {
            if rt.call(WriteStdin { task: task.clone(), data }).await.is_err() {
                // A closed or absent stdin: what is typed next goes nowhere, as on a terminal.
                while stdin.recv().await.is_some() {}
                break;
            }
        }
        if close_stdin && !tty {
            let _ = rt.call(CloseStdin(task.clone())).await;
        }
        std::future::pending::<()>().await
    };
    let sizes = async {
        if let Some(mut resize) = resize {
            while let Some(s) = resize.recv().await {
                let _ = rt.call(ResizePty { task: task.clone(), cols: s.width, rows: s.height }).await;
            }
        }
        std::future::pending::<()>().await
    };
    let output = async {
        let mut chunks = rt.stream(Attach(task.clone())).await?;
        while let Some(chunk) = chunks.next().await {
            let chunk = chunk?;
            let sink = match chunk.stream {
                OutputStream::Stderr if !tty => stderr.as_ref(),
                _ => stdout.as_ref(),
            };
            if let Some(sink) = sink
                && sink.send(chunk.data).await.is_err()
            {
                return Err(Error::unavailable("the client stopped reading"));
            }
        }
        let exit = rt.call(WaitTask(task.clone())).await?;
        Ok::<_, Error>(i32::try_from(exit.status).unwrap_or(255))
    };
    let gone = gone.fuse();
    tokio::pin!(gone);
    // The input and resize loops never finish on their own: they end when this does.
    let result = tokio::select! {
        r = output => Some(r),
        () = &mut gone => None,
        () = input => None,
        () = sizes => None,
    };
    match result {
        Some(Ok(status)) => Outcome::Exited(status),
        Some(Err(e)) => {
            if kill_when_gone {
                kill(cri, &task).await;
            }
            Outcome::Failed(e.message.clone())
        }
        None => {
            if kill_when_gone {
                kill(cri, &task).await;
            }
            Outcome::Failed("the client went away".into())
        }
    }
}

async fn kill(cri: &Cri, task: &TaskRef) {
    let _ =
        cri.services.runtime.call(KillTask { task: task.clone(), signal: libc::SIGKILL, all: false }).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resize_objects_split_anywhere() {
        let mut p = ResizeParser::default();
        assert_eq!(p.push(br#"{"Width":80,"Hei"#), Some(vec![]));
        let got = p.push(br#"ght":24}{"Width":100,"Height":40}"#).expect("sizes");
        assert_eq!(got, [TermSize { width: 80, height: 24 }, TermSize { width: 100, height: 40 }]);
        assert_eq!(p.push(b"nonsense"), None);
    }
}
