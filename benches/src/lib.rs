//! Shared helpers for oxcd's benchmarks.
//!
//! Every benchmark compares oxcd against its anchor in the same run and prints ratios (see
//! `shared/STYLE.md`, "Benchmarks"). This crate holds what the benchmarks share and nothing that
//! knows about a particular engine:
//!
//! - [`workload`]: the benchmark's parameters (read from `OXCD_BENCH_*` variables), etcd's
//!   revision-key encoding, deterministic values and seeded random sequences, and the read
//!   tallies that prove every engine returned the same data;
//! - [`timing`]: wall-clock measurement, latency percentiles and rates;
//! - [`table`]: the plain-text result table with oxcd/anchor ratios;
//! - [`grid`]: plain aligned columns, for tables of another shape (the WAL benchmark's);
//! - [`disk`]: the device and file system a benchmark directory is on;
//! - [`load`]: the `oxbench` server load generator (workloads, runner, etcd-shaped report).
//!
//! The benchmarks themselves live in `benches/` (run with `cargo bench -p oxcd-benches`); the
//! `oxbench` binary (`src/bin/oxbench.rs`) drives any etcd v3 endpoint with the [`load`] module.

#![forbid(unsafe_code)]

pub mod disk;
pub mod grid;
pub mod load;
pub mod table;
pub mod timing;
pub mod workload;
