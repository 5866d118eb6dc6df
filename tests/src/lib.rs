//! Test harness shared by oxcd's interoperability tests (`tests/tests/*.rs`).
//!
//! It owns five things and touches nothing else:
//! - [`oracle`]: builds and drives the Go program `tests/oracle/bboltoracle`, which uses bbolt
//!   1.3.6 itself to check, dump and write database files — the reference for the file format;
//! - [`spec`]: the JSON model of a whole database shared by both directions (what the oracle
//!   dumps and writes), a sorted in-memory [`Model`] to compare contents, and [`gen`] to make
//!   random contents from a seed;
//! - [`etcd`]: starting a real etcd 3.4.23 on ports the OS picks, in a temporary data dir;
//! - [`proxy`]: a fault-injecting TCP proxy (blackhole, delay, drop, per direction) to put in
//!   front of a member's peer port;
//! - [`cluster`]: clusters of several members (real etcd or oxcd), optionally behind proxies,
//!   and what tests ask of them (`cluster_ops`, re-exported by [`cluster`]).
//!
//! [`engine_io`] applies a [`Spec`] with oxcd's engine exactly as the oracle does with bbolt, and
//! reads a database back into a [`Model`] while cross-checking every cursor direction and lookup.
//!
//! Missing tools (Go, the bbolt sources, etcd) are errors with a message naming the Debian package
//! to install, never a silent skip: `.ci/run` installs them.

// The one exception is sending SIGTERM to etcd (`etcd::signal_term`).
#![deny(unsafe_code)]

pub mod cluster;
mod cluster_ops;
pub mod engine_io;
pub mod error;
pub mod etcd;
pub mod gen;
pub mod oracle;
pub mod proxy;
pub mod spec;

pub use error::{Error, Result};
pub use etcd::Etcd;
pub use oracle::Oracle;
pub use spec::{BucketModel, BucketSpec, ItemSpec, Model, Spec};
