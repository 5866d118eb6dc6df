//! The etcd v3 gRPC API: what clients see of the server.
//!
//! One file per gRPC service (KV, Watch, Lease, Cluster, Maintenance, Lock, Election; Auth
//! later), each translating requests into calls on the member
//! ([`crate::etcdserver::EtcdServer`]) and the store, and their results back into etcd's
//! responses. Lock and Election run etcd's concurrency recipes on an in-process client over
//! the KV and Lease services (`recipes`). `serve` binds the client listeners, with HTTP
//! `/health` and `/version`.
//!
//! [`errors`] is the one place where a failure becomes a client-visible status: every error a
//! client can see is a variant of [`EtcdError`] carrying etcd's exact gRPC code and message,
//! and every internal error reaches a client through [`to_status`], as in etcd's
//! `v3rpc/util.go`. Service handlers never build a `tonic::Status` by hand for an etcd error.
//!
//! This module may use every subsystem of the server; no subsystem uses it. Stores need not
//! import it to have their errors mapped: [`to_status`] maps an internal error by its text.

pub mod authority;
pub mod cluster;
pub mod election;
pub mod errors;
pub mod kv;
pub mod lease;
pub mod lock;
pub mod maintenance;
pub mod recipes;
pub mod serve;
pub mod watch;

pub use errors::{to_status, ErrorSpec, EtcdError, InternalError, Since, INTERNAL_ERRORS};
