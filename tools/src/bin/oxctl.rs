//! `oxctl`: the oxcd client CLI. Not built yet; it arrives with issue 3.
#![forbid(unsafe_code)]

use std::process::ExitCode;

fn main() -> ExitCode {
    eprintln!("oxctl: the client CLI arrives with issue 3; use etcdctl 3.4 meanwhile");
    ExitCode::from(2)
}
