//! The `oxbench` load generator's parts (the binary is `src/bin/oxbench.rs`), after etcd's
//! `tools/benchmark`:
//!
//! - [`workload`]: keys, values and the gRPC request of each request number (pure);
//! - [`runner`]: connections, concurrent clients, progress bar;
//! - [`report`]: latency recording and the etcd-shaped summary (text or JSON);
//! - [`ready`]: waiting until a server serves (`wait-ready`, for restart-to-ready timings);
//! - [`watch`]: the `watch` benchmark's streams, puts and phases, and [`watch_check`], its
//!   pure half: which key each put and watcher uses, the check of every event, the report.

pub mod ready;
pub mod report;
pub mod runner;
pub mod watch;
pub mod watch_check;
pub mod workload;
