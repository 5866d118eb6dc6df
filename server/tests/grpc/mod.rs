//! Shared by the integration tests that talk gRPC to a member: connecting a channel and
//! starting oxcd with etcd's flags.

#![allow(dead_code)]

use std::path::Path;
use std::time::Duration;

use oxcd_tests::etcd::Flavor;
use oxcd_tests::Etcd;
use tonic::transport::Channel;

/// A channel to `url`, connected (5 s connect timeout).
pub async fn connect(url: &str) -> Channel {
    Channel::from_shared(url.to_string())
        .unwrap()
        .connect_timeout(Duration::from_secs(5))
        .connect()
        .await
        .unwrap()
}

/// The `oxcd` binary of this build, as a flavor of member.
pub fn oxcd_flavor() -> Flavor {
    Flavor::Binary(Path::new(env!("CARGO_BIN_EXE_oxcd")).to_path_buf())
}

/// A fresh oxcd member with `args`.
pub fn start_oxcd(args: &[&str]) -> Etcd {
    Etcd::start_with_args(oxcd_flavor(), args).unwrap()
}
