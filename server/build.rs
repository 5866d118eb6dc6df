//! Compiles oxcd's copy of etcd's .proto files (`proto/`) into Rust at build time, without
//! protoc: `protox` (pure Rust) parses them into a FileDescriptorSet, then tonic-prost-build
//! generates the prost messages and the tonic client and server stubs from that set.
//!
//! Outputs in OUT_DIR: one `<package>.rs` per proto package (included by `src/pb.rs`) and
//! `oxcd_descriptor.bin`, the encoded FileDescriptorSet (exposed for tests and reflection).

use std::path::PathBuf;

use prost::Message;

/// Every file of the API; imports among them are resolved from `proto/`.
const PROTO_FILES: &[&str] = &[
    "mvccpb/kv.proto",
    "authpb/auth.proto",
    "etcdserverpb/rpc.proto",
    "etcdserverpb/raft_internal.proto",
    "etcdserverpb/etcdserver.proto",
    "v3lockpb/v3lock.proto",
    "v3electionpb/v3election.proto",
];
const PROTO_ROOT: &str = "proto";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed={PROTO_ROOT}");
    println!("cargo:rerun-if-changed=build.rs");
    let fds = protox::compile(PROTO_FILES, [PROTO_ROOT])?;
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(out_dir.join("oxcd_descriptor.bin"), fds.encode_to_vec())?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds(fds)?;
    Ok(())
}
