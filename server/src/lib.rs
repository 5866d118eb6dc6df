//! oxcd-server: the etcd v3 server. Issue 3 fills it (raft node, MVCC, gRPC API).
//!
//! Today it holds only the bucket-name registry, which later issues share with the engine's
//! users (`oxutl` and the tests), so every bucket name is spelled in one place.
#![forbid(unsafe_code)]

pub mod api;
pub mod config;
pub mod mvcc;
pub mod pb;
pub mod raft;
pub mod schema;
