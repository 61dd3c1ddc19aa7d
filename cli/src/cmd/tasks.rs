//! `berth tasks ls|start|kill|delete|wait|exec|ps|pause|resume|metrics|attach|logs`.

use std::process::ExitCode;

use berth_ipc::metadata::{ByName, GetContainer};
use berth_ipc::runtime::{
    Attach, CreateTask, DeleteTask, Exec, ExecSpec, GetMetrics, KillTask, ListTasks, Pause, Ps, Resume,
    StartTask, TaskRef, WaitTask,
};
use clap::Subcommand;

use super::Ctx;
use super::namespaces::wire;
use super::run::{code, pump};
use crate::output::{self, Format};

/// `berth tasks …`
#[derive(Debug, Subcommand)]
pub enum TasksCmd {
    /// List tasks
    #[command(alias = "list")]
    Ls,
    /// Start a container's task (creating it first if there is none)
    Start {
        /// Container id
        id: String,
    },
    /// Signal a task
    Kill {
        /// Container id
        id: String,
        /// Signal (name or number)
        #[arg(short, long, default_value = "SIGTERM")]
        signal: String,
        /// Every process of the container
        #[arg(short, long)]
        all: bool,
        /// An exec'd process
        #[arg(long)]
        exec_id: Option<String>,
    },
    /// Delete stopped tasks, printing their exit status
    #[command(alias = "rm")]
    Delete {
        /// Container ids
        #[arg(required = true)]
        ids: Vec<String>,
    },
    /// Wait for a task (or exec) to exit; exits with its status
    Wait {
        /// Container id
        id: String,
        /// An exec'd process
        #[arg(long)]
        exec_id: Option<String>,
    },
    /// Run another process in a running task
    Exec {
        /// The exec id (default: a new one, `exec-<random hex>`); an id may be used again
        /// once its earlier process has exited
        #[arg(long)]
        exec_id: Option<String>,
        /// Return once started
        #[arg(short, long)]
        detach: bool,
        /// Keep its stdin open and feed it this command's stdin (closed at its end)
        #[arg(short = 'i', long = "interactive", conflicts_with = "detach")]
        interactive: bool,
        /// Give it an interactive terminal (stdin, window size, raw local terminal)
        #[arg(short = 't', long = "tty")]
        tty: bool,
        /// Working directory
        #[arg(long)]
        cwd: Option<String>,
        /// Environment KEY=VALUE
        #[arg(short, long = "env")]
        env: Vec<String>,
        /// Container id
        id: String,
        /// Command
        #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
        cmd: Vec<String>,
    },
    /// Pids of a task
    Ps {
        /// Container id
        id: String,
    },
    /// Freeze a task
    Pause {
        /// Container id
        id: String,
    },
    /// Thaw a task
    Resume {
        /// Container id
        id: String,
    },
    /// Cgroup figures of a task
    Metrics {
        /// Container id
        id: String,
    },
    /// Print a task's output so far and follow it until it exits (a task with a terminal:
    /// interactive, exits with its exit code)
    Attach {
        /// Container id
        id: String,
        /// An exec'd process
        #[arg(long)]
        exec_id: Option<String>,
    },
    /// Print a container's kept output (running or exited, until the container is removed)
    Logs {
        /// Container id
        id: String,
        /// Then follow new output until the process exits
        #[arg(short, long)]
        follow: bool,
        /// Only the last N lines
        #[arg(long, value_name = "N")]
        tail: Option<u64>,
        /// Only output since a time: RFC 3339 (2026-12-07T09:30:00Z), Unix seconds, or a
        /// duration ago (10m, 2h)
        #[arg(long, value_name = "T")]
        since: Option<String>,
        /// Print each line's time first (RFC 3339, nanoseconds)
        #[arg(short, long)]
        timestamps: bool,
        /// An exec'd process
        #[arg(long)]
        exec_id: Option<String>,
    },
}

/// A signal by name (`SIGKILL`, `KILL`) or number.
pub fn parse_signal(s: &str) -> anyhow::Result<i32> {
    berth_oci::signal::parse(s).map_err(anyhow::Error::msg)
}

/// Runs a tasks command.
pub async fn run(ctx: &Ctx, cmd: TasksCmd) -> anyhow::Result<ExitCode> {
    let rt = &ctx.services.runtime;
    let ns = ctx.namespace.as_str();
    let task = |id: &str, exec: Option<String>| TaskRef {
        namespace: ns.to_string(),
        id: id.to_string(),
        exec_id: exec,
    };
    match cmd {
        TasksCmd::Ls => {
            let list = rt.call(ListTasks { namespace: ns.to_string() }).await.map_err(wire)?;
            let ips = super::network::container_ips(ctx).await?;
            let ips_of = |id: &str| ips.get(id).cloned().unwrap_or_default();
            if ctx.format == Format::Json {
                let rows: Vec<_> = list
                    .iter()
                    .map(|t| {
                        serde_json::json!({"id": t.id, "pid": t.pid, "status": t.status.as_str(),
                            "exit_status": t.exit.map(|e| e.status), "runtime": t.runtime, "shim_pid": t.shim_pid,
                            "exit_reason": t.exit.filter(|e| e.oom_killed).map(|_| "OOMKilled"),
                            "ips": ips_of(&t.id)})
                    })
                    .collect();
                output::json(&rows)?;
            } else {
                let rows: Vec<Vec<String>> = list
                    .iter()
                    .map(|t| {
                        let exit = match t.exit {
                            Some(e) if e.oom_killed => format!("{} (OOMKilled)", e.status),
                            Some(e) => e.status.to_string(),
                            None => String::new(),
                        };
                        vec![
                            t.id.clone(),
                            t.pid.to_string(),
                            t.status.as_str().into(),
                            exit,
                            t.runtime.clone(),
                            Some(ips_of(&t.id).join(","))
                                .filter(|s| !s.is_empty())
                                .unwrap_or_else(|| "-".into()),
                        ]
                    })
                    .collect();
                output::table(&["TASK", "PID", "STATUS", "EXIT", "RUNTIME", "IP"], &rows);
            }
        }
        TasksCmd::Start { id } => {
            match rt.call(CreateTask(task(&id, None))).await {
                Err(e) if !e.is(berth_ipc::Code::AlreadyExists) => return Err(wire(e)),
                _ => {}
            }
            let info = rt.call(StartTask(task(&id, None))).await.map_err(wire)?;
            println!("{}", info.pid);
        }
        TasksCmd::Kill { id, signal, all, exec_id } => {
            let signal = parse_signal(&signal)?;
            rt.call(KillTask { task: task(&id, exec_id), signal, all }).await.map_err(wire)?;
        }
        TasksCmd::Delete { ids } => {
            let mut failed = false;
            for id in ids {
                match rt.call(DeleteTask(task(&id, None))).await {
                    Ok(exit) => println!("{id} {}", exit.status),
                    Err(e) => {
                        eprintln!("berth: {}", crate::failure::wire_line(e));
                        failed = true;
                    }
                }
            }
            if failed {
                return Ok(ExitCode::FAILURE);
            }
        }
        TasksCmd::Wait { id, exec_id } => {
            let exit = rt.call(WaitTask(task(&id, exec_id))).await.map_err(wire)?;
            return Ok(code(exit.status));
        }
        TasksCmd::Exec { exec_id, detach, interactive, tty, cwd, env, id, cmd } => {
            let generated = exec_id.is_none();
            let exec_id = exec_id.unwrap_or_else(new_exec_id);
            if detach && generated {
                eprintln!("exec id {exec_id}");
            }
            let t = task(&id, Some(exec_id));
            let spec = ExecSpec { args: cmd, env, cwd, stdin: interactive, terminal: tty };
            let pid = rt.call(Exec { task: t.clone(), spec }).await.map_err(wire)?;
            if detach {
                println!("{pid}");
                return Ok(ExitCode::SUCCESS);
            }
            if tty {
                return Ok(code(super::tty::session(rt, &t, false).await?));
            }
            let input = interactive.then(|| tokio::spawn(super::tty::feed_stdin(rt.clone(), t.clone())));
            pump(rt.stream(Attach(t.clone())).await.map_err(wire)?).await?;
            if let Some(input) = input {
                input.abort();
            }
            let exit = rt.call(WaitTask(t)).await.map_err(wire)?;
            return Ok(code(exit.status));
        }
        TasksCmd::Ps { id } => {
            super::task_output::ps(ctx, rt.call(Ps(task(&id, None))).await.map_err(wire)?)?
        }
        TasksCmd::Pause { id } => rt.call(Pause(task(&id, None))).await.map_err(wire)?,
        TasksCmd::Resume { id } => rt.call(Resume(task(&id, None))).await.map_err(wire)?,
        TasksCmd::Metrics { id } => {
            let m = rt.call(GetMetrics(task(&id, None))).await.map_err(wire)?;
            super::task_output::metrics(ctx, &id, &m)?;
        }
        TasksCmd::Attach { id, exec_id } => {
            let by_name = ByName { namespace: ns.to_string(), name: id.clone() };
            let container = ctx.services.metadata.call(GetContainer(by_name)).await.map_err(wire)?;
            if exec_id.is_none() && super::tty::spec_has_terminal(&container.spec) {
                let status = super::tty::session(rt, &task(&id, None), false).await?;
                return Ok(code(status));
            }
            pump(rt.stream(Attach(task(&id, exec_id))).await.map_err(wire)?).await?
        }
        TasksCmd::Logs { id, follow, tail, since, timestamps, exec_id } => {
            super::logs::print(rt, task(&id, exec_id), follow, tail, since.as_deref(), timestamps).await?
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// A fresh exec id: `exec-` and 12 random hex digits (std's per-process random hash keys).
fn new_exec_id() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    format!("exec-{:012x}", h.finish() & 0xffff_ffff_ffff)
}
