//! Benchmarks of berth. Each benchmark is a binary under `src/bin/`; the shared pieces (the
//! protocol a benchmark server speaks, the measuring loops) live in this library so that the
//! server, run in a separate process, and the client agree on them.
//!
//! # Layout
//! - [`ipc`] — the IPC benchmark: a tiny protocol, its server, latency and throughput loops.
//! - [`stats`] — percentiles and rates from raw samples.

pub mod ipc;
pub mod stats;
