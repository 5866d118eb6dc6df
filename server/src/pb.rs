//! The etcd v3 wire API, generated at build time from `server/proto/` (see `build.rs`).
//!
//! One module per proto package, named as etcd names them, so gRPC paths and message bytes are
//! etcd's: `etcdserverpb` (KV, Watch, Lease, Cluster, Maintenance, Auth, and the raft envelope
//! `InternalRaftRequest`), `mvccpb` (KeyValue, Event), `authpb` (User, Role, Permission),
//! `v3lockpb` (Lock) and `v3electionpb` (Election). Each holds the prost messages plus tonic
//! `*_client` and `*_server` modules. Nothing here is written by hand except this wrapper; lint
//! allowances are confined to the generated includes.

/// Key-value and event types (etcd's `mvccpb`).
#[allow(clippy::all, clippy::pedantic, missing_docs)]
pub mod mvccpb {
    tonic::include_proto!("mvccpb");
}

/// Auth store records (etcd's `authpb`).
#[allow(clippy::all, clippy::pedantic, missing_docs)]
pub mod authpb {
    tonic::include_proto!("authpb");
}

/// The client API services and the raft request envelope (etcd's `etcdserverpb`).
#[allow(clippy::all, clippy::pedantic, missing_docs)]
pub mod etcdserverpb {
    tonic::include_proto!("etcdserverpb");
}

/// The Lock service (etcd's `v3lockpb`).
#[allow(clippy::all, clippy::pedantic, missing_docs)]
pub mod v3lockpb {
    tonic::include_proto!("v3lockpb");
}

/// The Election service (etcd's `v3electionpb`).
#[allow(clippy::all, clippy::pedantic, missing_docs)]
pub mod v3electionpb {
    tonic::include_proto!("v3electionpb");
}

/// The encoded `google.protobuf.FileDescriptorSet` of every file above, as compiled by
/// `build.rs`: for gRPC reflection and for the tests that compare it with etcd's own protos.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/oxcd_descriptor.bin"));
