//! oxcd-server: the etcd v3 server: configuration (`config`), the raft node and its WAL
//! storage (`raft`), MVCC (`mvcc`), membership (`membership`), the member that ties them
//! together (`etcdserver`), and the etcd v3 gRPC and HTTP API (`api`). `schema` names every
//! bucket and meta key in one place.
#![forbid(unsafe_code)]

pub mod api;
pub mod config;
pub mod etcdserver;
pub mod lease;
pub mod membership;
pub mod mvcc;
pub mod pb;
pub mod raft;
pub mod schema;
