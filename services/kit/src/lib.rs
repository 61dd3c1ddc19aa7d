//! What every berth service process shares, so that no service writes it again: the TOML
//! configuration, the common flags, logging, the listening socket (inherited or bound),
//! readiness signalling, signal handling and clean exit.
//!
//! # Layout
//! - [`config`] — the configuration and its commented default TOML.
//! - [`args`] — `--root`, `--state`, `--config`.
//! - [`boot`] — a service's `main`, its environment, and `serve`.
//! - [`ready`] — readiness to the launcher (pipe) and systemd (`NOTIFY_SOCKET`).
//! - [`logging`] — tracing set-up.
//! - [`task`] — [`blocking`] and [`blocking_value`]: blocking work off the async threads.
//! - [`time`] — [`time::now_ns`] and RFC 3339 times.
//! - [`fd`] — [`fd::wait_readable`].
//! - `sys` — adopting inherited fds (the crate's only `unsafe`).

pub mod args;
pub mod boot;
pub mod config;
pub mod fd;
pub mod logging;
pub mod ready;
mod sys;
pub mod task;
pub mod time;

pub use args::CommonArgs;
pub use boot::{ServiceEnv, main, serve};
pub use config::Config;
pub use task::{blocking, blocking_value};
